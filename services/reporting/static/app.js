/*
 * 指挥中心看板 · operations-centre dashboard (services/reporting/dashboard.py serves this file).
 *
 * Plain JavaScript, no build step. Reads the reporting API of the same origin:
 *   /dashboard/tenants.json                      tenants and their place drill levels
 *   /v1/kpis?group_by=…                          totals (办结率, 解决率, 满意率, 响应率), trend (period:day|week|month),
 *                                                departments, categories
 *   /v1/stats?group_by=place&place_depth&place_prefix   place breakdown, street → community → grid
 *   /v1/cases/overdue, /v1/cases/supervised      case lists
 *   /v1/summary                                  the work-summary paragraph
 *   /v1/hotspots                                 hot issues (热点问题): place, heat, count, reporters, sample
 *   /v1/summary/document?format=docx|md          the whole work summary of the place and period
 *                                                on screen (links; fetched with the credential)
 * Every text that comes from the API goes into the page through textContent (the el() helper);
 * nothing is ever assigned to innerHTML. Chart tooltips render on the canvas (renderMode
 * 'richText'), not as HTML.
 */
(function () {
  "use strict";

  var PAGE = 50; // rows of each case list
  var CHART_TOP = 12; // bars in the department / category / place charts
  var FONT = '"Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", sans-serif';

  var STATE_LABELS = {
    reported: "已上报 reported", accepted: "已受理 accepted", rejected: "不予受理 rejected", filed: "已立案 filed",
    dispatched: "已派遣 dispatched", acknowledged: "已签收 acknowledged", in_progress: "处置中 in progress",
    resolved: "已处置 resolved", checking: "核查中 checking", closed: "已结案 closed", cancelled: "已作废 cancelled",
    shelved: "已挂账 shelved", mediating: "调解中 mediating"
  };
  var SUPERVISION_LABELS = { 0: "—", 1: "督办 supervised", 2: "提级督办 escalated" };

  var state = {
    tenants: [],
    tenant: null, // the tenant object of tenants.json
    start: "", // yyyy-mm-dd (tenant-local), "" = open
    end: "", // yyyy-mm-dd inclusive, "" = open
    scope: [], // drilled places, top down: [{code, label}]
    gen: 0, // load generation: answers of an older load are dropped
    caller: null, // who is signed in: {role, tenant, scope, department} (tenants.json)
    charts: {}
  };

  // ------------------------------------------------------------------ DOM helpers (text only)

  function $(id) { return document.getElementById(id); }

  /** An element with properties and children; string children become text nodes. */
  function el(tag, props, children) {
    var node = document.createElement(tag);
    if (props) {
      Object.keys(props).forEach(function (k) {
        var v = props[k];
        if (v === undefined || v === null) return;
        if (k === "className") node.className = v;
        else if (k === "text") node.textContent = String(v);
        else if (k === "title") node.title = String(v);
        else if (k === "dataset") Object.keys(v).forEach(function (d) { node.dataset[d] = String(v[d]); });
        else if (k === "onclick") node.addEventListener("click", v);
        else if (k === "type") node.type = v;
        else throw new Error("el(): unsupported property " + k);
      });
    }
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    });
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function setText(id, text) { $(id).textContent = text === null || text === undefined ? "" : String(text); }

  /** "中文 English": the Chinese part, then the English part in a lighter span. */
  function bilingual(zh, en) {
    var span = el("span", null, [zh + " "]);
    span.appendChild(el("span", { className: "en", text: en }));
    return span;
  }

  // ------------------------------------------------------------------ formatting

  function fmtInt(n) { return n === null || n === undefined ? "—" : Number(n).toLocaleString("zh-CN"); }
  function fmtPct(r) { return r === null || r === undefined ? "—" : (r * 100).toFixed(2) + "%"; }
  function fmtHours(h) { return h === null || h === undefined ? "—" : Number(h).toFixed(2); }

  function fmtTime(iso) {
    if (!iso) return "—";
    var d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    try {
      return new Intl.DateTimeFormat("zh-CN", {
        timeZone: state.tenant ? state.tenant.timezone : undefined, year: "numeric", month: "2-digit",
        day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false
      }).format(d);
    } catch (e) { return String(iso); }
  }

  function pad2(n) { return (n < 10 ? "0" : "") + n; }

  /** Minutes east of UTC of time zone ``tz`` at the instant ``utcMs``. */
  function tzOffsetMinutes(tz, utcMs) {
    var parts = new Intl.DateTimeFormat("en-US", {
      timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit"
    }).formatToParts(new Date(utcMs));
    var get = function (t) { return Number(parts.filter(function (p) { return p.type === t; })[0].value); };
    var asUtc = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour") % 24, get("minute"), get("second"));
    return Math.round((asUtc - utcMs) / 60000);
  }

  /** ISO 8601 of local midnight starting ``ymd`` (yyyy-mm-dd) in ``tz``, plus ``addDays`` days. */
  function localMidnight(ymd, tz, addDays) {
    var p = ymd.split("-").map(Number);
    var wall = Date.UTC(p[0], p[1] - 1, p[2] + (addDays || 0));
    var off = tzOffsetMinutes(tz, wall);
    var off2 = tzOffsetMinutes(tz, wall - off * 60000);
    var d = new Date(wall);
    var sign = off2 >= 0 ? "+" : "-";
    var a = Math.abs(off2);
    return d.getUTCFullYear() + "-" + pad2(d.getUTCMonth() + 1) + "-" + pad2(d.getUTCDate()) +
      "T00:00:00" + sign + pad2(Math.floor(a / 60)) + ":" + pad2(a % 60);
  }

  // ------------------------------------------------------------------ API

  function apiUrl(path, params) {
    var url = new URL(path, document.baseURI);
    Object.keys(params || {}).forEach(function (k) {
      var v = params[k];
      if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, String(v));
    });
    return url;
  }

  // The caller's API key or token (issued with `gridcase auth issue-key|issue-token`), kept for
  // this browser tab only (sessionStorage) and sent as Authorization: Bearer.
  var CREDENTIAL = "gridcase.credential";

  function credential() {
    try { return window.sessionStorage.getItem(CREDENTIAL) || ""; } catch (e) { return ""; }
  }

  function showLogin(message) {
    document.body.dataset.state = "login";
    $("login").hidden = false;
    setStatus(message || "请输入访问凭证 enter your API key or token", true);
  }

  function api(path, params) {
    var headers = { Accept: "application/json" };
    if (credential()) headers.Authorization = "Bearer " + credential();
    return fetch(apiUrl(path, params), { headers: headers }).then(function (resp) {
      return resp.json().catch(function () { return null; }).then(function (body) {
        if (resp.status === 401) {
          showLogin("凭证无效或已过期 credential missing, invalid or expired");
        }
        if (!resp.ok) {
          var msg = body && (body.message || body.error) ? (body.message || body.error) : resp.statusText;
          throw new Error(resp.status + " " + msg + " (" + path + ")");
        }
        return body;
      });
    });
  }

  /** Query parameters shared by every figure: tenant, period and the drilled place. */
  function common() {
    var tz = state.tenant.timezone;
    return {
      tenant: state.tenant.tenant,
      start: state.start ? localMidnight(state.start, tz, 0) : null,
      end: state.end ? localMidnight(state.end, tz, 1) : null,
      place_prefix: state.scope.length ? state.scope[state.scope.length - 1].code : null
    };
  }

  function extend(a, b) {
    var out = {};
    [a, b].forEach(function (o) { Object.keys(o || {}).forEach(function (k) { out[k] = o[k]; }); });
    return out;
  }

  // ------------------------------------------------------------------ charts

  function chart(id) {
    if (!window.echarts) return null;
    if (!state.charts[id]) state.charts[id] = window.echarts.init($(id), null, { renderer: "canvas" });
    return state.charts[id];
  }

  function baseOption() {
    return {
      animation: false,
      textStyle: { fontFamily: FONT },
      tooltip: { trigger: "axis", renderMode: "richText", axisPointer: { type: "shadow" } },
      legend: { top: 0, textStyle: { fontFamily: FONT } }
    };
  }

  /** Horizontal stacked bars (completed + open = accepted) of the top rows; click → onPick(row). */
  function barChart(id, rows, closedKey, totalKey, onPick) {
    var c = chart(id);
    if (!c) return;
    var top = rows.slice(0, CHART_TOP).reverse();
    var names = top.map(function (r) { return r.label; });
    var closed = top.map(function (r) { return { value: r[closedKey], row: r }; });
    var open = top.map(function (r) { return { value: r[totalKey] - r[closedKey], row: r }; });
    var opt = baseOption();
    opt.grid = { left: 8, right: 24, top: 30, bottom: 8, containLabel: true };
    opt.xAxis = { type: "value", minInterval: 1 };
    opt.yAxis = { type: "category", data: names, axisLabel: { width: 190, overflow: "truncate", fontFamily: FONT } };
    opt.series = [
      { name: "办结 completed", type: "bar", stack: "all", barMaxWidth: 28, data: closed, itemStyle: { color: "#2f7d5b" } },
      { name: "未办结 open", type: "bar", stack: "all", barMaxWidth: 28, data: open, itemStyle: { color: "#d9a13b" } }
    ];
    c.setOption(opt, true);
    c.off("click");
    if (onPick) c.on("click", function (p) { if (p.data && p.data.row) onPick(p.data.row); });
  }

  function trendChart(rows) {
    var c = chart("trend-chart");
    if (!c) return;
    var opt = baseOption();
    opt.grid = { left: 56, right: 64, top: 40, bottom: 36 };
    opt.xAxis = { type: "category", data: rows.map(function (r) { return r.key; }) };
    opt.yAxis = [
      { type: "value", name: "件/日 cases", minInterval: 1 },
      { type: "value", name: "在办 open", minInterval: 1, splitLine: { show: false } }
    ];
    opt.series = [
      { name: "受理量 accepted", type: "bar", barMaxWidth: 36, data: rows.map(function (r) { return r.accepted; }), itemStyle: { color: "#2b6cb0" } },
      { name: "办结量 completed", type: "bar", barMaxWidth: 36, data: rows.map(function (r) { return r.closed; }), itemStyle: { color: "#2f7d5b" } },
      { name: "在办（含转办） in progress incl. transferred (期末 at end)", type: "line", yAxisIndex: 1, symbolSize: 5,
        data: rows.map(function (r) { return r.in_progress; }), itemStyle: { color: "#c05621" } }
    ];
    c.setOption(opt, true);
  }

  function emptyChart(id, text) {
    var c = chart(id);
    if (!c) return;
    c.setOption({
      animation: false, xAxis: { show: false }, yAxis: { show: false }, series: [],
      graphic: { type: "text", left: "center", top: "middle", style: { text: text, fill: "#888", font: "14px " + FONT } }
    }, true);
  }

  // ------------------------------------------------------------------ tables

  function fillTable(tableId, columns, rows, opts) {
    var table = $(tableId);
    var thead = table.tHead;
    var tbody = table.tBodies[0];
    clear(thead);
    clear(tbody);
    thead.appendChild(el("tr", null, columns.map(function (c) {
      return el("th", { className: c.num ? "num" : "" }, [bilingual(c.zh, c.en)]);
    })));
    if (!rows.length) {
      tbody.appendChild(el("tr", { className: "empty" }, [
        el("td", { text: (opts && opts.empty) || "无数据 no data" })
      ]));
      tbody.rows[0].cells[0].colSpan = columns.length;
      return;
    }
    rows.forEach(function (r) {
      var tr = el("tr", { dataset: { key: r.key === null || r.key === undefined ? "" : r.key } });
      columns.forEach(function (c) {
        var content = c.render ? c.render(r) : c.value(r);
        var td = el("td", { className: (c.num ? "num " : "") + (c.cls || ""), dataset: { col: c.name } });
        if (content instanceof Node) td.appendChild(content); else td.textContent = content;
        tr.appendChild(td);
      });
      tbody.appendChild(tr);
    });
  }

  function kpiColumns(nameZh, nameEn) {
    return [
      { name: "label", zh: nameZh, en: nameEn, value: function (r) { return r.label; }, cls: "label" },
      { name: "accepted", zh: "受理量", en: "accepted", num: true, value: function (r) { return fmtInt(r.accepted); } },
      { name: "closed", zh: "办结量", en: "completed", num: true, value: function (r) { return fmtInt(r.closed); } },
      { name: "in_progress", zh: "在办（含转办）", en: "in progress incl. transferred", num: true, value: function (r) { return fmtInt(r.in_progress); } },
      { name: "transferred", zh: "转办", en: "transferred", num: true, value: function (r) { return fmtInt(r.transferred); } },
      { name: "completion_rate", zh: "办结率", en: "rate", num: true, value: function (r) { return fmtPct(r.completion_rate); } },
      { name: "close_hours_median", zh: "时长中位数(小时)", en: "median h", num: true,
        value: function (r) { return fmtHours(r.close_hours_median); } }
    ];
  }

  // ------------------------------------------------------------------ sections

  function renderTotals(t) {
    setText("kpi-accepted", fmtInt(t.accepted));
    // merged duplicates are outside 受理量 (each counts as its original): shown beside it (docs/kpis.md §3.1)
    setText("kpi-accepted-sub", "立案 filed " + fmtInt(t.filed) + " · 合并重复件 merged duplicates " +
      fmtInt(t.merged_duplicates));
    setText("kpi-closed", fmtInt(t.closed));
    setText("kpi-closed-sub", "按期办结 on time " + fmtInt(t.closed_on_time));
    setText("kpi-in_progress", fmtInt(t.in_progress));
    setText("kpi-in_progress-sub", "未转办 own " + fmtInt(t.in_progress_own) + " · 已转办 transferred " +
      fmtInt(t.in_progress_transferred));
    setText("kpi-transferred", fmtInt(t.transferred));
    setText("kpi-transferred-sub", "转办率 transfer rate " + fmtPct(t.transfer_rate));
    setText("kpi-completion_rate", fmtPct(t.completion_rate));
    setText("kpi-completion_rate-sub", "办结 " + fmtInt(t.closed) + " ÷ 应办结 due " + fmtInt(t.due) +
      " · 按期办结率 on time " + fmtPct(t.on_time_rate));
    // the 12345 rates (docs/kpis.md): resident-judged resolution, satisfaction at callback, response in time
    setText("kpi-resolution_rate", fmtPct(t.resolution_rate));
    setText("kpi-resolution_rate-sub", "认为已解决 resolved " + fmtInt(t.callbacks_resolved) + " ÷ 评价 rated " +
      fmtInt(t.callbacks_rated) + " · 解决量 " + fmtInt(t.resolved));
    setText("kpi-satisfaction_rate", fmtPct(t.satisfaction_rate));
    setText("kpi-satisfaction_rate-sub", "满意 satisfied " + fmtInt(t.callbacks_satisfied) + " ÷ 回访 callbacks " +
      fmtInt(t.callbacks) + " · 综合评分 score " + fmtHours(t.assessment_score));
    setText("kpi-response_rate", fmtPct(t.response_rate));
    setText("kpi-response_rate-sub", "按时签收 in time " + fmtInt(t.responded) + " ÷ 派遣 handed over " +
      fmtInt(t.handovers) + " · 重办 reopened " + fmtInt(t.reopened));
    var median = t.close_hours_median;
    var value = $("kpi-close_hours_median");
    clear(value);
    if (median === null || median === undefined) value.textContent = "—";
    else value.appendChild(el("span", null, [fmtHours(median), el("span", { className: "unit", text: " 小时 h" })]));
    var sub = "中位数 median · 平均 mean " + fmtHours(t.close_hours_mean) + " · P90 " + fmtHours(t.close_hours_p90) +
      " · n=" + fmtInt(t.close_n);
    if (t.close_working_hours_mean !== null && t.close_working_hours_mean !== undefined) {
      sub += " · 工作日平均 working-day mean " + fmtHours(t.close_working_hours_mean);
    }
    setText("kpi-close_hours_median-sub", sub);
    setText("kpi-overdue", fmtInt(t.overdue));
    setText("kpi-overdue-sub", "超期率 overdue rate " + fmtPct(t.overdue_rate) + " · 督办案件 supervised " +
      fmtInt(t.supervised_cases));
  }

  function loadTotals(gen, q) {
    return api("../v1/kpis", q).then(function (res) {
      if (gen !== state.gen) return;
      renderTotals(res.total);
    });
  }

  function loadSummary(gen, q) {
    showDocumentLinks(q);
    return api("../v1/summary", q).then(function (res) {
      if (gen !== state.gen) return;
      setText("summary-text", res.paragraph || "");
    });
  }

  /** Links to the whole work summary (/v1/summary/document) of the place and period on screen;
   * a document needs both ends of the period. */
  function showDocumentLinks(q) {
    var whole = q.start && q.end;
    ["docx", "md"].forEach(function (fmt) {
      var a = $("summary-doc-" + fmt);
      a.hidden = !whole;
      if (whole) {
        a.href = apiUrl("../v1/summary/document", {
          tenant: q.tenant, place: q.place_prefix, start: q.start, end: q.end, format: fmt
        }).href;
        a.setAttribute("download", ["gridcase-summary", q.tenant, q.place_prefix || "all", state.start, state.end]
          .join("-") + "." + fmt);
      } else {
        a.removeAttribute("href");
      }
    });
    setText("summary-doc-note", whole ? "" : "选择起止日期后可下载 choose a start and an end date to download");
  }

  /** A document link is fetched with the credential (a plain link would not carry it) and saved. */
  function downloadDocument(event) {
    var a = event.currentTarget;
    if (!a.href) return;
    event.preventDefault();
    var headers = {};
    if (credential()) headers.Authorization = "Bearer " + credential();
    fetch(a.href, { headers: headers }).then(function (resp) {
      if (!resp.ok) throw new Error(resp.status + " " + resp.statusText);
      return resp.blob();
    }).then(function (blob) {
      var url = URL.createObjectURL(blob);
      var save = document.createElement("a");
      save.href = url;
      save.download = a.getAttribute("download");
      document.body.appendChild(save);
      save.click();
      save.remove();
      setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
    }).catch(function (err) {
      setStatus("下载失败 download failed: " + err.message, true);
    });
  }

  /** The trend: whole-period buckets by day (by week when P is longer than a year). With an
   * open period, the months with activity are found first and the days between them shown. */
  function loadTrend(gen, q) {
    var range;
    if (q.start && q.end) {
      range = Promise.resolve({ start: q.start, end: q.end, trim: false });
    } else {
      range = api("../v1/kpis", extend(q, { group_by: "period:month" })).then(function (res) {
        var active = res.rows.filter(function (r) { return r.accepted || r.closed; });
        if (!active.length) return null;
        return { start: q.start || active[0].start, end: q.end || active[active.length - 1].end, trim: true };
      });
    }
    return range.then(function (r) {
      if (gen !== state.gen) return;
      if (!r) { setText("trend-note", ""); emptyChart("trend-chart", "无数据 no data"); return; }
      var days = (Date.parse(r.end) - Date.parse(r.start)) / 86400000;
      var unit = days <= 370 ? "day" : days <= 7000 ? "week" : "month";
      return api("../v1/kpis", extend(q, { start: r.start, end: r.end, group_by: "period:" + unit })).then(function (res) {
        if (gen !== state.gen) return;
        var rows = res.rows;
        if (r.trim) {
          var active = function (x) { return x.accepted || x.closed; };
          var first = 0;
          var last = rows.length - 1;
          while (first < last && !active(rows[first])) first++;
          while (last > first && !active(rows[last])) last--;
          rows = rows.slice(first, last + 1);
        }
        setText("trend-note", { day: "按日 daily", week: "按周 weekly (超过一年 period over a year)",
          month: "按月 monthly" }[unit] + " · " + (rows.length ? rows[0].key + " — " + rows[rows.length - 1].key : ""));
        $("trend").dataset.unit = unit;
        $("trend").dataset.points = String(rows.length);
        if (rows.length) trendChart(rows); else emptyChart("trend-chart", "无数据 no data");
      });
    });
  }

  function loadBreakdown(gen, q, groupBy, chartId, tableId, zh, en) {
    return api("../v1/kpis", extend(q, { group_by: groupBy })).then(function (res) {
      if (gen !== state.gen) return;
      fillTable(tableId, kpiColumns(zh, en), res.rows);
      if (res.rows.length) barChart(chartId, res.rows, "closed", "accepted", null);
      else emptyChart(chartId, "无数据 no data");
    });
  }

  function drillLevels() { return state.tenant.drill || []; }

  /** The place level shown now: the level below the last drilled place (or the last level). */
  function currentLevel() {
    var levels = drillLevels();
    if (!levels.length) return null;
    return levels[Math.min(state.scope.length, levels.length - 1)];
  }

  function canDrill(row) {
    var levels = drillLevels();
    var k = state.scope.length;
    return row.key !== null && row.key !== undefined && k < levels.length - 1 &&
      String(row.key).length === levels[k].depth;
  }

  function drillInto(row) {
    if (!canDrill(row)) return;
    state.scope.push({ code: String(row.key), label: row.label });
    load();
  }

  function renderCrumbs() {
    var nav = $("place-crumbs");
    clear(nav);
    var items = [{ code: null, label: "全部 All" }].concat(state.scope);
    items.forEach(function (item, i) {
      if (i > 0) nav.appendChild(el("span", { className: "sep", text: "›" }));
      if (i === items.length - 1) {
        nav.appendChild(el("span", { className: "crumb current", text: item.label, dataset: { code: item.code || "" } }));
      } else {
        nav.appendChild(el("button", {
          type: "button", className: "crumb", text: item.label, dataset: { code: item.code || "" },
          onclick: function () { state.scope = state.scope.slice(0, i); load(); }
        }));
      }
    });
    var parts = [state.tenant.label].concat(state.scope.map(function (s) { return s.label; }));
    setText("scope-text", parts.join(" › "));
  }

  function loadPlaces(gen, q) {
    var level = currentLevel();
    renderCrumbs();
    var section = $("places");
    section.dataset.prefix = q.place_prefix || "";
    if (!level) {
      fillTable("place-table", [{ name: "label", zh: "地区", en: "place", value: function () { return ""; } }], [],
        { empty: "该租户未配置地区层级 no place levels configured" });
      emptyChart("place-chart", "无数据 no data");
      return Promise.resolve();
    }
    section.dataset.depth = String(level.depth);
    setText("place-path", drillLevels().map(function (l) { return l.label; }).join(" → "));
    var levelNote = "当前层级 level: " + level.label;
    if (state.scope.length >= drillLevels().length) levelNote += " (最底层 lowest level)";
    setText("place-level", levelNote);
    var params = { tenant: q.tenant, start: q.start, end: q.end, place_prefix: q.place_prefix,
      group_by: "place", place_depth: level.depth };
    return api("../v1/stats", params).then(function (res) {
      if (gen !== state.gen) return;
      var rows = res.groups.map(function (g) {
        return {
          key: g.key, label: g.label, reported: g.reported, closed: g.closed, in_progress: g.in_progress,
          transferred: g.transferred, closure_rate: g.closure_rate,
          median: g.time_to_close_hours ? g.time_to_close_hours.median : null
        };
      });
      var columns = [
        { name: "label", zh: "地区", en: "place", cls: "label", render: function (r) {
          if (canDrill(r)) {
            return el("button", { type: "button", className: "drill", text: r.label, title: "查看下级 show places inside",
              dataset: { code: r.key }, onclick: function () { drillInto(r); } });
          }
          return el("span", { text: r.label, title: r.key === null ? "" : String(r.key) });
        } },
        { name: "reported", zh: "受理量", en: "reported", num: true, value: function (r) { return fmtInt(r.reported); } },
        { name: "closed", zh: "办结量", en: "completed", num: true, value: function (r) { return fmtInt(r.closed); } },
        { name: "in_progress", zh: "在办(未转办)", en: "in progress", num: true, value: function (r) { return fmtInt(r.in_progress); } },
        { name: "transferred", zh: "转办", en: "transferred", num: true, value: function (r) { return fmtInt(r.transferred); } },
        { name: "closure_rate", zh: "办结率", en: "closed ÷ reported", num: true, value: function (r) { return fmtPct(r.closure_rate); } },
        { name: "median", zh: "时长中位数(小时)", en: "median h", num: true, value: function (r) { return fmtHours(r.median); } }
      ];
      fillTable("place-table", columns, rows);
      if (rows.length) barChart("place-chart", rows, "closed", "reported", drillInto);
      else emptyChart("place-chart", "无数据 no data");
    });
  }

  function loadCases(gen, q, kind) {
    var params = { tenant: q.tenant, place_prefix: q.place_prefix, limit: PAGE };
    return api("../v1/cases/" + kind, params).then(function (res) {
      if (gen !== state.gen) return;
      var columns = [
        { name: "case_id", zh: "案件", en: "case", render: function (r) {
          return el("span", { className: "mono", text: String(r.case_id).slice(0, 8), title: r.case_id });
        } },
        { name: "category", zh: "类别", en: "category", value: function (r) { return r.category_label || r.category || "—"; } },
        { name: "department", zh: "部门", en: "department", value: function (r) { return r.department_label || r.department || "—"; } },
        { name: "place", zh: "地区", en: "place", value: function (r) { return r.place_label || r.place || "—"; } },
        { name: "deadline", zh: "期限", en: "deadline", value: function (r) { return fmtTime(r.deadline); } },
        { name: "hours_overdue", zh: "超期(小时)", en: "h overdue", num: true, value: function (r) { return fmtHours(r.hours_overdue); } },
        { name: "supervision_level", zh: "督办", en: "supervision", value: function (r) {
          return SUPERVISION_LABELS[r.supervision_level] || String(r.supervision_level);
        } },
        { name: "state", zh: "状态", en: "state", value: function (r) { return STATE_LABELS[r.state] || r.state || "—"; } }
      ];
      var rows = res.cases.map(function (c) { var o = extend(c, {}); o.key = c.case_id; return o; });
      fillTable(kind + "-table", columns, rows, { empty: kind === "overdue" ? "无超期案件 no overdue cases" : "无督办案件 no supervised cases" });
      var shown = rows.length < res.total ? " · 显示前 " + rows.length + " 件 showing first " + rows.length : "";
      setText(kind + "-count", "共 " + fmtInt(res.total) + " 件 total" + shown);
      $(kind).dataset.total = String(res.total);
    });
  }

  /** Hot issues (热点问题) of the place and period on screen (GET /v1/hotspots, docs/classifier.md §5). */
  function loadHotspots(gen, q) {
    var params = { tenant: q.tenant, place_prefix: q.place_prefix, start: q.start, end: q.end, limit: 10 };
    return api("../v1/hotspots", params).then(function (res) {
      if (gen !== state.gen) return;
      var columns = [
        { name: "place", zh: "地区", en: "place", value: function (r) { return r.place_label || r.place_code; } },
        { name: "heat", zh: "热度", en: "heat", num: true, value: function (r) { return Number(r.heat).toFixed(2); } },
        { name: "count", zh: "件数", en: "reports", num: true, value: function (r) { return fmtInt(r.count); } },
        { name: "reporters", zh: "反映人数", en: "reporters", num: true, value: function (r) { return fmtInt(r.reporters); } },
        { name: "period", zh: "时段", en: "period", value: function (r) { return fmtTime(r.first_at) + " – " + fmtTime(r.last_at); } },
        { name: "category", zh: "类别", en: "category", value: function (r) { return r.category_label || r.category_code || "—"; } },
        { name: "sample", zh: "问题描述", en: "description", cls: "label", value: function (r) { return r.sample; } }
      ];
      var rows = res.hotspots.map(function (h, i) { var o = extend(h, {}); o.key = String(i + 1); return o; });
      fillTable("hotspots-table", columns, rows, { empty: "无热点问题 no hot issues" });
      setText("hotspots-note", "共 " + fmtInt(res.cases) + " 件案件 cases");
    });
  }

  function setExports(q) {
    ["csv", "xlsx"].forEach(function (ext) {
      $("export-" + ext).href = apiUrl("../v1/kpis." + ext, extend(q, { group_by: "department" })).href;
    });
  }

  function setStatus(text, isError) {
    var s = $("status");
    s.textContent = text || "";
    s.className = "status" + (isError ? " error" : "");
  }

  // ------------------------------------------------------------------ load cycle

  function load() {
    if (!state.tenant) return Promise.resolve();
    var gen = ++state.gen;
    var q = common();
    document.body.dataset.state = "loading";
    setStatus("加载中… Loading…");
    setExports(q);
    writeUrl();
    var jobs = [
      loadTotals(gen, q),
      loadSummary(gen, q),
      loadTrend(gen, q),
      loadBreakdown(gen, q, "department", "dept-chart", "dept-table", "部门", "department"),
      loadBreakdown(gen, q, "category", "cat-chart", "cat-table", "类别", "category"),
      loadPlaces(gen, q),
      loadCases(gen, q, "overdue"),
      loadCases(gen, q, "supervised"),
      loadHotspots(gen, q)
    ];
    return Promise.all(jobs).then(function () {
      if (gen !== state.gen) return;
      setStatus(window.echarts ? "" : "图表库未加载，仅显示表格 charts unavailable, tables only", !window.echarts);
      setText("updated", "更新于 updated " + new Date().toLocaleTimeString("zh-CN", { hour12: false }));
      document.body.dataset.loaded = [q.tenant, q.place_prefix || "", state.start, state.end].join("|");
      document.body.dataset.state = "ready";
    }, function (err) {
      if (gen !== state.gen) return;
      document.body.dataset.state = "error";
      setStatus("加载失败 failed to load: " + err.message, true);
    });
  }

  function writeUrl() {
    var url = new URL(window.location.href);
    url.search = "";
    url.searchParams.set("tenant", state.tenant.tenant);
    if (state.start) url.searchParams.set("start", state.start);
    if (state.end) url.searchParams.set("end", state.end);
    window.history.replaceState(null, "", url.href);
  }

  function selectTenant(name) {
    state.tenant = state.tenants.filter(function (t) { return t.tenant === name; })[0] || state.tenants[0] || null;
    state.scope = [];
    // Start at the caller's own place scope: the drill levels it already fixes are skipped.
    var own = (state.caller && state.caller.scope) || "";
    if (state.tenant && own) {
      (state.tenant.drill || []).forEach(function (level) {
        if (level.depth <= own.length) state.scope.push({ code: own.slice(0, level.depth), label: own.slice(0, level.depth) });
      });
    }
    if (state.tenant) {
      $("tenant").value = state.tenant.tenant;
      setText("tenant-text", state.tenant.label + " (" + state.tenant.tenant + ")");
      document.title = state.tenant.label + " · 网格化服务管理指挥中心 Operations centre";
    }
  }

  function validDate(s) { return /^\d{4}-\d{2}-\d{2}$/.test(s || "") ? s : ""; }

  function init() {
    var params = new URLSearchParams(window.location.search);
    state.start = validDate(params.get("start"));
    state.end = validDate(params.get("end"));
    $("start").value = state.start;
    $("end").value = state.end;

    $("filters").addEventListener("submit", function (ev) {
      ev.preventDefault();
      state.start = validDate($("start").value);
      state.end = validDate($("end").value);
      if (state.start && state.end && state.end < state.start) {
        setStatus("结束日期早于开始日期 the end date is before the start date", true);
        return;
      }
      load();
    });
    $("tenant").addEventListener("change", function () { selectTenant($("tenant").value); load(); });
    $("all-time").addEventListener("click", function () {
      state.start = state.end = "";
      $("start").value = $("end").value = "";
      load();
    });
    $("refresh").addEventListener("click", function () { load(); });
    $("summary-doc-docx").addEventListener("click", downloadDocument);
    $("summary-doc-md").addEventListener("click", downloadDocument);
    $("login").addEventListener("submit", function (ev) {
      ev.preventDefault();
      try { window.sessionStorage.setItem(CREDENTIAL, $("credential").value.trim()); } catch (e) { /* private mode */ }
      $("credential").value = "";
      $("login").hidden = true;
      start(params);
    });
    $("logout").addEventListener("click", function () {
      try { window.sessionStorage.removeItem(CREDENTIAL); } catch (e) { /* private mode */ }
      window.location.reload();
    });
    if (!credential()) { showLogin(); return; }
    start(params);
  }

  function start(params) {
    window.addEventListener("resize", function () {
      Object.keys(state.charts).forEach(function (k) { state.charts[k].resize(); });
    });

    api("tenants.json").then(function (doc) {
      state.tenants = doc.tenants || [];
      state.caller = doc.caller || null;
      if (state.caller) setText("caller-text", state.caller.role + (state.caller.scope ? " · " + state.caller.scope : "") +
        (state.caller.department ? " · " + state.caller.department : ""));
      var select = $("tenant");
      clear(select);
      state.tenants.forEach(function (t) {
        var opt = el("option", { text: t.label + " (" + t.tenant + ")" });
        opt.value = t.tenant;
        select.appendChild(opt);
      });
      if (!state.tenants.length) {
        document.body.dataset.state = "error";
        setStatus("未配置租户 no tenants configured", true);
        return;
      }
      // The URL's tenant, else the one tenants.json opens on (the caller's tenant with the most
      // recent case, or REPORTING_DASHBOARD_OPENING), else the first.
      selectTenant(params.get("tenant") || doc.opening || state.tenants[0].tenant);
      load();
    }, function (err) {
      if (document.body.dataset.state === "login") return;
      document.body.dataset.state = "error";
      setStatus("加载失败 failed to load: " + err.message, true);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
