"""End to end: the operations-centre dashboard (/dashboard/) in headless Chromium.

- NYC 311 sample through the running services, then the page for tenant nyc: the totals, the
  closure rate, the time to close, the department rows and the daily trend equal what the API
  answers (and the figures of ../shared/data/README.md: 4000 accepted, 1373 closed, 34.33 %);
  drilling borough → community district shows what ``/v1/stats?group_by=place&place_depth&
  place_prefix`` answers and narrows the whole page to the place.
- Seed scenario A (tenant demo-market): the Chinese drill street → community → grid.
- A stub API whose labels are HTML: the page shows them as text and runs none of it.

The browser is Debian's ``chromium`` (``apt-get install chromium``) driven by Playwright for Python
through ``executable_path`` (no ``playwright install``); the tests skip when either is missing.
``GRIDCASE_CHROMIUM`` names another binary. A screenshot of each page is saved in the test's tmp
dir (``dashboard-*.png``).

Until reporting's create_app mounts the dashboard itself, the tests serve it from a wrapper app
(``services.reporting.dashboard.install`` + a proxy of ``/v1/*`` to the running reporting).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
import warnings
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import docx
import httpx
import pytest

from gridcase.demo import REPO
from gridcase.infra import free_port
from services.reporting.kpis.sketch import ALPHA as SKETCH_ALPHA
from tests import api as http

pytestmark = pytest.mark.e2e

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_binary() -> str | None:
    """The Chromium to drive: ``$GRIDCASE_CHROMIUM``, else Debian's ``/usr/bin/chromium``, else one on PATH."""
    for candidate in (os.environ.get("GRIDCASE_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


# --------------------------------------------------------------------------- servers


class ServerThread:
    """An ASGI app served by uvicorn on a free port in a daemon thread (started and stopped here)."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test web server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def proxy_app(reporting_url: str):
    """The dashboard (``install``) plus ``GET /v1/*`` passed through to the running reporting."""
    from fastapi import FastAPI
    from starlette.responses import Response

    from services.reporting.dashboard import install

    async def forward(request):  # a plain Starlette endpoint: no annotations for FastAPI to resolve
        async with httpx.AsyncClient(base_url=reporting_url, timeout=120) as client:
            resp = await client.get(request.url.path, params=list(request.query_params.multi_items()),
                                    headers={k: v for k, v in request.headers.items() if k == "authorization"})
        return Response(resp.content, status_code=resp.status_code, media_type=resp.headers.get("content-type"))

    app = FastAPI()
    app.add_route("/v1/{path:path}", forward, methods=["GET"])
    install(app)
    return app


@pytest.fixture(scope="module")
def site(stack):
    """Base URL serving ``/dashboard/`` and ``/v1/*`` of the running stack."""
    reporting = stack.url("reporting")
    resp = http.get(f"{reporting}/dashboard/", timeout=10)
    if resp.status_code == 200 and "指挥中心" in resp.text:
        yield reporting
        return
    warnings.warn("reporting does not mount /dashboard yet (create_app without install_dashboard): "
                  "the dashboard tests serve it through a wrapper app", stacklevel=1)
    with ServerThread(proxy_app(reporting)) as server:
        yield server.url


@pytest.fixture(scope="module")
def nyc(stack):
    from tests.e2e.test_pipeline_real_data import run_import

    # importing again is idempotent (the same source ids land on the same cases)
    return run_import(stack, REPO / "data" / "nyc311_2018-10-21_sample.csv", "nyc311", "nyc")


@pytest.fixture(scope="module")
def seed_a(stack, tmp_path_factory):
    from gridcase.seeds import write_seed_a
    from tests.e2e.test_pipeline_real_data import run_import

    path = tmp_path_factory.mktemp("seed") / "seed_a.jsonl"
    write_seed_a(path)
    return run_import(stack, path, "jsonl", "demo-market")


# --------------------------------------------------------------------------- browser


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    """A Playwright persistent context on the system Chromium, with a fresh user-data-dir."""
    binary = chromium_binary()
    if binary is None:
        pytest.skip("no Chromium binary found (apt-get install -y chromium, or set GRIDCASE_CHROMIUM)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=binary, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1440, "height": 1000}, locale="zh-CN", timezone_id="Asia/Shanghai",
        )
        try:
            yield context
        finally:
            context.close()


class Page:
    """One browser tab on the dashboard, recording console errors, page errors and every request."""

    def __init__(self, context, base: str, credential: str | None = http.ADMIN_KEY) -> None:
        self.base = base
        self.page = context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        # signed in as the session's admin (the page keeps the credential in sessionStorage)
        if credential:
            self.page.add_init_script(f"window.sessionStorage.setItem('gridcase.credential', {json.dumps(credential)})")

    def open(self, query: str) -> None:
        self.page.goto(f"{self.base}/dashboard/?{query}")

    def wait_loaded(self, tenant: str, prefix: str = "") -> None:
        """Wait until every section of the page has loaded for ``tenant`` and place ``prefix``."""
        self.page.wait_for_function(
            "([t, p]) => document.body.dataset.state === 'error' || (document.body.dataset.state === 'ready' && "
            "(document.body.dataset.loaded || '').startsWith(t + '|' + p + '|'))",
            arg=[tenant, prefix], timeout=60_000,
        )
        if self.page.evaluate("() => document.body.dataset.state") == "error":
            raise AssertionError(f"the page reports an error: {self.text('#status')!r}; {self.errors}")

    def text(self, selector: str) -> str:
        return self.page.locator(selector).inner_text().strip()

    def table(self, table_id: str) -> list[dict]:
        """Rows of a data table: ``{"key": data-key, <data-col>: cell text, …}``."""
        return self.page.evaluate(
            """id => Array.from(document.querySelectorAll('#' + id + ' tbody tr:not(.empty)')).map(tr => {
                   const row = {key: tr.dataset.key};
                   tr.querySelectorAll('td').forEach(td => { row[td.dataset.col] = td.textContent.trim(); });
                   return row;
               })""",
            table_id,
        )

    def screenshot(self, path: Path) -> Path:
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def assert_clean(self) -> None:
        """No script error, no CSP violation, nothing fetched from another origin."""
        assert self.errors == []
        foreign = [u for u in self.requests if not u.startswith(self.base + "/")]
        assert foreign == []

    def close(self) -> None:
        self.page.close()


@pytest.fixture
def tab(browser_context, site):
    page = Page(browser_context, site)
    yield page
    page.close()


# --------------------------------------------------------------------------- helpers


def as_int(text: str) -> int:
    """A count as the page shows it (``"4,000"``)."""
    return int(text.replace(",", "").strip())


def fixed(x: float) -> str:
    """``x`` with two decimals as JavaScript's ``toFixed(2)`` writes it: rounded from the exact
    binary value, an exact tie (e.g. 1.125) upwards, where Python's format rounds it to even."""
    return str(Decimal(x).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def pct(rate: float | None) -> str:
    return "—" if rate is None else f"{fixed(rate * 100)}%"


def count_text(n: int) -> str:
    return f"{n:,}"


def hours(h: float | None) -> str:
    return "—" if h is None else fixed(h)


def api(site: str, path: str, **params) -> dict:
    resp = http.get(f"{site}{path}", params={k: v for k, v in params.items() if v is not None}, timeout=60)
    resp.raise_for_status()
    return resp.json()


def expected_kpi_rows(rows: list[dict]) -> list[dict]:
    """The department/category table as the page must show it, from ``/v1/kpis`` rows."""
    return [{
        "key": "" if r["key"] is None else r["key"], "label": r["label"], "accepted": count_text(r["accepted"]),
        "closed": count_text(r["closed"]), "in_progress": count_text(r["in_progress"]),
        "transferred": count_text(r["transferred"]), "completion_rate": pct(r["completion_rate"]),
        "close_hours_median": hours(r["close_hours_median"]),
    } for r in rows]


def expected_place_rows(groups: list[dict]) -> list[dict]:
    """The place table as the page must show it, from ``/v1/stats?group_by=place`` groups."""
    return [{
        "key": "" if g["key"] is None else g["key"], "label": g["label"], "reported": count_text(g["reported"]),
        "closed": count_text(g["closed"]), "in_progress": count_text(g["in_progress"]),
        "transferred": count_text(g["transferred"]), "closure_rate": pct(g["closure_rate"]),
        "median": hours(g["time_to_close_hours"]["median"]),
    } for g in groups]


def check_totals(tab: Page, total: dict) -> None:
    assert as_int(tab.text("#kpi-accepted")) == total["accepted"]
    # 合并重复件 beside 受理量 (issue 15)
    assert tab.text("#kpi-accepted-sub").endswith(f"合并重复件 merged duplicates {count_text(total['merged_duplicates'])}")
    assert as_int(tab.text("#kpi-closed")) == total["closed"]
    assert as_int(tab.text("#kpi-in_progress")) == total["in_progress"]
    assert as_int(tab.text("#kpi-transferred")) == total["transferred"]
    assert tab.text("#kpi-completion_rate") == pct(total["completion_rate"])
    for rate in ("resolution_rate", "satisfaction_rate", "response_rate"):  # beside 办结率 (issue 12)
        assert tab.text(f"#kpi-{rate}") == pct(total.get(rate))


def check_place_table(tab: Page, site: str, tenant: str, depth: int, prefix: str | None) -> list[dict]:
    stats = api(site, "/v1/stats", tenant=tenant, group_by="place", place_depth=depth, place_prefix=prefix)
    assert stats["groups"], "the place breakdown is empty"
    rows = tab.table("place-table")
    assert rows == expected_place_rows(stats["groups"])
    return rows


def drill(tab: Page, code: str, tenant: str) -> None:
    tab.page.locator(f'#place-table button.drill[data-code="{code}"]').click()
    tab.wait_loaded(tenant, code)


# --------------------------------------------------------------------------- tests


def test_opens_on_the_tenant_with_the_most_recent_case_and_names_it(nyc, seed_a, tab, site, infra):
    """Without ``?tenant=`` the admin's page opens on the tenant with the most recently reported case
    (services/reporting/dashboard.py; nyc's are of 2018, the others' later) and says which."""
    import asyncio
    import concurrent.futures

    import sqlalchemy as sa

    from shared.platform.db import make_engine

    async def newest() -> dict:
        engine = make_engine(infra.database_url)
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(sa.text("SELECT tenant, max(reported_at) FROM reporting.case_facts "
                                                  "WHERE reported_at IS NOT NULL GROUP BY tenant"))
                return dict(rows.all())
        finally:
            await engine.dispose()

    doc = api(site, "/dashboard/tenants.json")
    # Playwright's sync API keeps an event loop running in this thread: query from another one
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        found = pool.submit(asyncio.run, newest()).result()
    latest = {t: when for t, when in found.items() if t in {d["tenant"] for d in doc["tenants"]}}
    expected = min(latest, key=lambda t: (-latest[t].timestamp(), t))
    assert doc["opening"] == expected != "nyc"
    tab.open("")
    tab.wait_loaded(expected)
    assert tab.page.input_value("#tenant") == expected
    label = next(t["label"] for t in doc["tenants"] if t["tenant"] == expected)
    assert tab.text("#tenant-text") == f"{label} ({expected})"
    tab.assert_clean()


def test_nyc_figures_on_the_page_equal_the_api(nyc, tab, site, tmp_path):
    assert nyc["accepted"] == 4000
    tab.open("tenant=nyc")
    tab.wait_loaded("nyc")

    # the tenant selector lists every configured tenant and has nyc selected
    options = tab.page.eval_on_selector_all("#tenant option", "os => os.map(o => o.value)")
    assert {"nyc", "demo-market", "demo-grid"} <= set(options)
    assert tab.page.input_value("#tenant") == "nyc"

    kpis = api(site, "/v1/kpis", tenant="nyc")
    total = kpis["total"]
    # ../shared/data/README.md: 4000 requests, 1373 closed, share closed 0.3432 (34.33 %)
    assert (total["accepted"], total["closed"]) == (4000, 1373)
    check_totals(tab, total)
    assert as_int(tab.text("#kpi-accepted")) == 4000
    assert as_int(tab.text("#kpi-closed")) == 1373
    assert tab.text("#kpi-completion_rate") == "34.33%"
    stats_total = api(site, "/v1/stats", tenant="nyc")["total"]
    assert (stats_total["reported"], stats_total["closed"]) == (4000, 1373)
    # time to close: README median 1.95 h, mean 2.76 h, p90 5.97 h over n = 1372
    assert tab.text("#kpi-close_hours_median") == f"{hours(total['close_hours_median'])} 小时 h" == "1.95 小时 h"
    sub = tab.text("#kpi-close_hours_median-sub")
    assert "2.76" in sub and "n=1,372" in sub
    # p90: by the scan exactly 5.97; read from the rollups' quantile sketch it would be within
    # relative α (docs/kpis.md §10), so either passes; shown to 2 decimals (± 0.005 more)
    p90 = float(re.search(r"P90 (\d+\.\d+)", sub).group(1))
    assert abs(p90 - 5.97) <= SKETCH_ALPHA * 5.97 + 0.005, sub

    # department rows: exactly the API's, in its order; README "count by Agency"
    by_dept = api(site, "/v1/kpis", tenant="nyc", group_by="department")
    rows = tab.table("dept-table")
    assert rows == expected_kpi_rows(by_dept["rows"])
    assert {r["key"]: as_int(r["accepted"]) for r in rows} == {
        "HPD": 1458, "NYPD": 1406, "DSNY": 419, "DEP": 170, "DPR": 168, "DOT": 143, "DOHMH": 73, "DOB": 57,
        "TLC": 48, "DHS": 30, "DCA": 12, "HRA": 9, "EDC": 3, "DOF": 1, "DOE": 1, "DCAS": 1, "DFTA": 1,
    }
    by_cat = api(site, "/v1/kpis", tenant="nyc", group_by="category")
    assert tab.table("cat-table") == expected_kpi_rows(by_cat["rows"])

    # the daily trend: every case reported and closed on the days shown
    trend = tab.page.evaluate("""() => {
        const opt = echarts.getInstanceByDom(document.getElementById('trend-chart')).getOption();
        return {days: opt.xAxis[0].data, accepted: opt.series[0].data, closed: opt.series[1].data};
    }""")
    assert tab.page.get_attribute("#trend", "data-unit") == "day"
    assert "2018-10-21" in trend["days"]
    assert sum(trend["accepted"]) == 4000 and sum(trend["closed"]) == 1373

    # case lists: what the API answers (NYC history keeps its Due Date: open requests past it are overdue now)
    for kind in ("overdue", "supervised"):
        listed = api(site, f"/v1/cases/{kind}", tenant="nyc", limit=50)
        assert tab.page.get_attribute(f"#{kind}", "data-total") == str(listed["total"])
        assert [r["key"] for r in tab.table(f"{kind}-table")] == [c["case_id"] for c in listed["cases"]]
    assert tab.text("#summary-text").startswith("共受理")

    shot = tab.screenshot(tmp_path / "dashboard-nyc.png")
    print(f"\nscreenshot: {shot}")
    assert shot.stat().st_size > 20_000
    tab.assert_clean()


def test_nyc_drill_borough_to_community_district(nyc, tab, site, tmp_path):
    tab.open("tenant=nyc")
    tab.wait_loaded("nyc")
    boroughs = check_place_table(tab, site, "nyc", 1, None)  # nyc.yaml: borough codes are 1 character
    target = max((r for r in boroughs if r["key"] not in ("", "0")), key=lambda r: as_int(r["reported"]))

    drill(tab, target["key"], "nyc")
    rows = check_place_table(tab, site, "nyc", 3, target["key"])  # community districts: 3 characters
    assert all(r["key"].startswith(target["key"]) for r in rows)
    assert sum(as_int(r["reported"]) for r in rows) == as_int(target["reported"])
    assert tab.page.locator("#place-table button.drill").count() == 0  # the lowest level
    crumbs = tab.page.locator("#place-crumbs .crumb").all_inner_texts()
    assert crumbs == ["全部 All", target["label"]]
    assert target["label"] in tab.text("#scope-text")
    # the whole page follows the place: totals and department rows for the borough
    check_totals(tab, api(site, "/v1/kpis", tenant="nyc", place_prefix=target["key"])["total"])
    assert tab.table("dept-table") == expected_kpi_rows(
        api(site, "/v1/kpis", tenant="nyc", group_by="department", place_prefix=target["key"])["rows"])
    tab.screenshot(tmp_path / "dashboard-nyc-borough.png")

    # back to the whole city through the breadcrumb
    tab.page.locator("#place-crumbs button.crumb", has_text="全部 All").click()
    tab.wait_loaded("nyc", "")
    assert as_int(tab.text("#kpi-accepted")) == 4000
    check_place_table(tab, site, "nyc", 1, None)
    tab.assert_clean()


def test_drill_street_community_grid(seed_a, tab, site, tmp_path):
    assert seed_a["accepted"] == 5410
    tab.open("tenant=demo-market")
    tab.wait_loaded("demo-market")
    assert as_int(tab.text("#kpi-accepted")) == 5410  # docs/seeds.md block A
    assert tab.text("#kpi-completion_rate") == "67.36%"
    assert "街道 street" in tab.text("#place-level")
    streets = check_place_table(tab, site, "demo-market", 9, None)
    assert all(len(r["key"]) == 9 for r in streets)

    street = streets[0]
    drill(tab, street["key"], "demo-market")
    assert "社区 community" in tab.text("#place-level")
    communities = check_place_table(tab, site, "demo-market", 12, street["key"])
    assert all(len(r["key"]) == 12 and r["key"].startswith(street["key"]) for r in communities)
    check_totals(tab, api(site, "/v1/kpis", tenant="demo-market", place_prefix=street["key"])["total"])

    community = communities[0]
    drill(tab, community["key"], "demo-market")
    assert "网格 grid" in tab.text("#place-level")
    grids = check_place_table(tab, site, "demo-market", 15, community["key"])
    assert all(len(r["key"]) == 15 and r["key"].startswith(community["key"]) for r in grids)
    assert sum(as_int(r["reported"]) for r in grids) == as_int(community["reported"])
    assert tab.page.locator("#place-table button.drill").count() == 0
    assert tab.page.locator("#place-crumbs .crumb").all_inner_texts() == ["全部 All", street["label"], community["label"]]
    check_totals(tab, api(site, "/v1/kpis", tenant="demo-market", place_prefix=community["key"])["total"])
    tab.screenshot(tmp_path / "dashboard-demo-market-grids.png")

    # a breadcrumb goes back up one level
    tab.page.locator(f'#place-crumbs button.crumb[data-code="{street["key"]}"]').click()
    tab.wait_loaded("demo-market", street["key"])
    check_place_table(tab, site, "demo-market", 12, street["key"])
    tab.assert_clean()


def test_period_filter(seed_a, tab, site):
    """Dates picked on the page are local days of the tenant's timezone (Asia/Shanghai): March 2026
    is P = [2026-03-01T00:00+08:00, 2026-04-01T00:00+08:00)."""
    tab.open("tenant=demo-market")
    tab.wait_loaded("demo-market")
    tab.page.fill("#start", "2026-03-01")
    tab.page.fill("#end", "2026-03-31")
    tab.page.click("#apply")
    tab.page.wait_for_function("() => (document.body.dataset.loaded || '').endsWith('|2026-03-01|2026-03-31')")
    tab.wait_loaded("demo-market")
    period = {"start": "2026-03-01T00:00:00+08:00", "end": "2026-04-01T00:00:00+08:00"}
    march = api(site, "/v1/kpis", tenant="demo-market", **period)["total"]
    assert 0 < march["accepted"] < 5410
    check_totals(tab, march)
    assert tab.table("dept-table") == expected_kpi_rows(
        api(site, "/v1/kpis", tenant="demo-market", group_by="department", **period)["rows"])
    assert tab.page.get_attribute("#trend", "data-unit") == "day"
    assert tab.page.get_attribute("#trend", "data-points") == "31"
    assert "start=2026-03-01" in tab.page.url and "end=2026-03-31" in tab.page.url
    tab.page.click("#all-time")
    tab.page.wait_for_function("() => (document.body.dataset.loaded || '') === 'demo-market|||'")
    assert as_int(tab.text("#kpi-accepted")) == 5410
    tab.assert_clean()


def test_work_summary_document_of_the_place_and_period_on_screen(seed_a, tab, site):
    """The summary panel links to the whole work summary (issue 19) of the place and period on
    screen; the Word link downloads, with the page's credential, the document the API gives."""
    tab.open("tenant=demo-market")
    tab.wait_loaded("demo-market")
    # P open: no document (it needs both ends), the page says so
    assert not tab.page.is_visible("#summary-doc-docx")
    assert "选择起止日期" in tab.text("#summary-doc-note")
    tab.page.fill("#start", "2026-03-01")
    tab.page.fill("#end", "2026-03-31")
    tab.page.click("#apply")
    tab.page.wait_for_function("() => (document.body.dataset.loaded || '').endsWith('|2026-03-01|2026-03-31')")
    street = tab.table("place-table")[0]["key"]
    drill(tab, street, "demo-market")
    href = tab.page.get_attribute("#summary-doc-docx", "href")
    q = httpx.URL(href).params
    assert httpx.URL(href).path == "/v1/summary/document"
    # March 2026 in Asia/Shanghai, the drilled street, Word
    assert dict(q) == {"tenant": "demo-market", "place": street, "start": "2026-03-01T00:00:00+08:00",
                       "end": "2026-04-01T00:00:00+08:00", "format": "docx"}
    with tab.page.expect_download() as info:
        tab.page.click("#summary-doc-docx")
    saved = docx.Document(info.value.path())
    assert saved.paragraphs[0].text.endswith("工作总结（2026年3月1日至2026年3月31日）")
    md = http.get(f"{site}/v1/summary/document", params={**dict(q), "format": "md"}, timeout=120).text
    assert md.startswith(f"# {saved.paragraphs[0].text}\n")
    tab.assert_clean()


# --------------------------------------------------------------------------- escaping (stub API)

EVIL = '<img src=x onerror="window.__xss=1">'
EVIL_2 = "<script>window.__xss=2</script>"


def stub_app():
    """The dashboard with a stub API whose every label is HTML (a hostile department code from an
    import, a hostile tenant name): the page must show the text and run none of it."""
    from fastapi import FastAPI

    from services.reporting.dashboard import install
    from shared.domain.tenants import Place, RoutingConfig, TenantConfig

    tenant = TenantConfig(
        tenant="evil", name_zh=EVIL, name_en=EVIL_2, timezone="Asia/Shanghai", levels=("street", "community", "grid"),
        places=(Place("990102001", "street", EVIL, "", None), Place("990102001001", "community", EVIL_2, "", "990102001")),
        routing=RoutingConfig(),
    )
    row = {"key": EVIL, "label": EVIL, "accepted": 3, "filed": 3, "closed": 1, "closed_on_time": 1, "due": 3,
           "completion_rate": 1 / 3, "on_time_rate": 1 / 3, "in_progress": 2, "in_progress_own": 1,
           "in_progress_transferred": 1, "transferred": 1, "transfer_rate": 0.5, "overdue": 1, "overdue_rate": 1 / 3,
           "supervised_cases": 1, "close_n": 1, "close_hours_median": 2.0, "close_hours_mean": 2.0, "close_hours_p90": 2.0,
           "close_working_hours_mean": None, "start": "2026-03-01T00:00:00+08:00", "end": "2026-04-01T00:00:00+08:00"}
    case = {"case_id": EVIL_2, "category": EVIL, "category_label": EVIL, "department": EVIL, "department_label": EVIL_2,
            "place": "990102001", "place_label": EVIL, "deadline": "2026-03-02T10:00:00+08:00", "hours_overdue": 5.5,
            "supervision_level": 1, "state": EVIL_2, "reported_at": "2026-03-01T10:00:00+08:00"}
    app = FastAPI()

    @app.get("/v1/kpis")
    async def kpis(group_by: str | None = None):
        rows = [] if group_by is None else [dict(row, key="2026-03" if group_by.startswith("period") else EVIL)]
        return {"total": dict(row, key=None, label=EVIL), "rows": rows}

    @app.get("/v1/summary")
    async def summary():
        return {"paragraph": EVIL_2 + EVIL}

    @app.get("/v1/stats")
    async def stats():
        return {"groups": [{"key": "990102001", "label": EVIL, "reported": 3, "closed": 1, "in_progress": 1,
                            "transferred": 1, "closure_rate": 1 / 3, "time_to_close_hours": {"median": 2.0}}]}

    @app.get("/v1/cases/{kind}")
    async def cases(kind: str):
        return {"total": 1, "cases": [case]}

    @app.get("/v1/hotspots")
    async def hotspots():
        return {"cases": 2, "hotspots": [{"place_code": "990102001001", "place_label": EVIL, "heat": 2.0, "count": 2,
                                          "reporters": 2, "first_at": "2026-03-01T10:00:00+08:00",
                                          "last_at": "2026-03-02T10:00:00+08:00", "category_code": EVIL,
                                          "category_label": EVIL_2, "sample": EVIL}]}

    class StubAuth:  # the stub serves everyone as the admin of every tenant
        async def principal(self, request):
            from shared.platform.auth import Principal

            return Principal("kstub", "*", "admin")

    app.state.auth = StubAuth()
    install(app, {"evil": tenant})
    return app


def test_api_text_is_shown_as_text_never_as_html(browser_context, tmp_path):
    with ServerThread(stub_app()) as server:
        tab = Page(browser_context, server.url)
        try:
            tab.open("tenant=evil")
            tab.wait_loaded("evil")
            assert tab.page.evaluate("() => window.__xss") is None
            # no element came from the data: the only <img>/<script> are the page's own
            assert tab.page.locator("img").count() == 0
            assert tab.page.evaluate("() => Array.from(document.scripts).map(s => s.getAttribute('src'))") == [
                "vendor/echarts.min.js", "app.js"]
            assert tab.text("#summary-text") == EVIL_2 + EVIL
            assert tab.table("dept-table")[0]["label"] == EVIL
            assert tab.table("place-table")[0]["label"] == EVIL
            overdue = tab.table("overdue-table")[0]
            assert (overdue["category"], overdue["department"], overdue["place"], overdue["state"]) == (EVIL, EVIL_2, EVIL, EVIL_2)
            hot = tab.table("hotspots-table")[0]
            assert (hot["place"], hot["category"], hot["sample"]) == (EVIL, EVIL_2, EVIL)
            assert EVIL in tab.text("#scope-text")
            assert EVIL in tab.page.locator("#tenant option").first.inner_text()
            headers = http.get(f"{server.url}/dashboard/", timeout=10).headers
            assert "script-src 'self'" in headers["content-security-policy"]
            tab.screenshot(tmp_path / "dashboard-escaping.png")
            tab.assert_clean()
        finally:
            tab.close()


def test_dashboard_is_packaged_with_its_files():
    """The static files the page needs are where dashboard.py serves them from (package data)."""
    from services.reporting.dashboard import STATIC_DIR

    for name in ("index.html", "app.js", "style.css", "vendor/echarts.min.js", "vendor/LICENSE", "vendor/README.md"):
        assert (STATIC_DIR / name).is_file(), name
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "the page must not load anything from a CDN"
    assert "innerHTML" not in (STATIC_DIR / "app.js").read_text(encoding="utf-8").replace("nothing is ever assigned to innerHTML", "")


# --------------------------------------------------------------------------- signed-in scope (issue 6)

COMMUNITY_2 = "990101001002"  # demo-market 东风街道第二社区


def test_a_community_sees_its_own_figures_and_nothing_else(seed_a, browser_context, site, infra):
    """Signed in as community staff of one demo-market community, the page offers that tenant
    only, starts at the community and shows the figures the API gives that credential; the
    signed-out page asks for a credential and shows no figures."""
    import asyncio
    import concurrent.futures

    from shared.platform.authstore import issue
    from shared.platform.db import make_engine

    async def make_key() -> str:
        engine = make_engine(infra.database_url)
        try:
            return (await issue(engine, kind="api_key", tenant="demo-market", role="community_staff",
                                scope=COMMUNITY_2, label="dashboard scope test")).secret
        finally:
            await engine.dispose()

    # Playwright's sync API runs an event loop in this thread: issue the key from another one
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        key = pool.submit(asyncio.run, make_key()).result()
    mine = http.get(f"{site}/v1/kpis", params={"tenant": "demo-market"}, headers=http.bearer(key), timeout=60).json()["total"]
    assert 0 < mine["accepted"] < 5410
    assert mine["accepted"] == api(site, "/v1/kpis", tenant="demo-market", place_prefix=COMMUNITY_2)["total"]["accepted"]

    tab = Page(browser_context, site, credential=key)
    try:
        tab.open("tenant=demo-market")
        tab.wait_loaded("demo-market", COMMUNITY_2)
        assert tab.page.eval_on_selector_all("#tenant option", "os => os.map(o => o.value)") == ["demo-market"]
        check_totals(tab, mine)
        assert "community_staff" in tab.text("#caller-text") and COMMUNITY_2 in tab.text("#caller-text")
        rows = tab.table("place-table")
        assert rows and all(r["key"].startswith(COMMUNITY_2) for r in rows)
        tab.assert_clean()
    finally:
        tab.close()

    anonymous = Page(browser_context, site, credential=None)
    try:
        anonymous.open("tenant=demo-market")
        anonymous.page.wait_for_function("() => document.body.dataset.state === 'login'", timeout=30_000)
        assert anonymous.page.is_visible("#credential")
        assert anonymous.text("#kpi-accepted") == "—"
        assert not [u for u in anonymous.requests if "/v1/" in u]
        anonymous.page.fill("#credential", key)
        anonymous.page.click("#sign-in")
        anonymous.wait_loaded("demo-market", COMMUNITY_2)
        check_totals(anonymous, mine)
    finally:
        anonymous.close()
