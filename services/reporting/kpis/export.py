"""The KPI table as a spreadsheet (``GET /v1/kpis.csv``, ``GET /v1/kpis.xlsx``): Chinese and
English headers, rates in per cent, and every text cell neutralised against formula injection."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

from services.reporting.kpis.catalogue import KPIS, Kpi

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def sanitize_cell(value: Any) -> Any:
    """A value safe to put in a spreadsheet cell: text starting with ``= + - @`` TAB or CR gets a
    leading apostrophe, so Excel/LibreOffice show it as text and never run it as a formula (CSV
    injection, OWASP); other values unchanged (numbers stay numbers, even negative ones)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _export_value(kpi: Kpi | None, value: Any) -> Any:
    if value is None:
        return None
    if kpi is not None and kpi.unit == "rate":
        return round(value * 100, 2)
    if isinstance(value, float):
        return round(value, 2)
    return value


def export_table(result: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of a KPI answer (:func:`services.reporting.kpis.queries.query_kpis`) for
    CSV/XLSX: columns 分组 group (key), 名称 label, for period rows 开始 start / 结束 end, then every
    KPI with a Chinese and English header (rates in per cent, times in hours); the total row
    last. Every text cell is passed through :func:`sanitize_cell`."""
    period = str(result.get("group_by") or "").startswith("period:")
    header = ["分组 group", "名称 label"] + (["开始 start", "结束 end"] if period else [])
    for k in KPIS:
        suffix = {"rate": " (%)", "hours": "", "working_hours": ""}.get(k.unit, "")
        header.append(f"{k.label}{suffix}")
    rows = []
    for r in [*result["rows"], result["total"]]:
        line = [r.get("key") if r is not result["total"] else "合计 total", r["label"]]
        if period:
            line += [r.get("start"), r.get("end")]
        line += [_export_value(k, r.get(k.name)) for k in KPIS]
        rows.append([sanitize_cell(v) for v in line])
    return [sanitize_cell(h) for h in header], rows


def to_csv(result: Mapping[str, Any]) -> bytes:
    """The KPI table as CSV: UTF-8 with a byte-order mark (so Excel detects UTF-8 and shows the
    Chinese headers), CRLF line ends, text cells sanitised (:func:`sanitize_cell`)."""
    header, rows = export_table(result)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return "\ufeff".encode() + buf.getvalue().encode("utf-8")


def to_xlsx(result: Mapping[str, Any]) -> bytes:
    """The KPI table as an XLSX workbook (openpyxl): sheet ``KPI 指标`` with the header row bold
    and frozen, text cells sanitised and stored as text (never as formulas), a second sheet
    ``说明 about`` with tenant, period, grouping, time zone and the composite score's weights.

    Raises:
        ImportError: openpyxl is not installed.
    """
    from openpyxl import Workbook  # noqa: PLC0415
    from openpyxl.styles import Font  # noqa: PLC0415

    header, rows = export_table(result)
    wb = Workbook()
    ws = wb.active
    ws.title = "KPI 指标"
    ws.append(header)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in rows:
        ws.append(row)
    for line in ws.iter_rows(min_row=1):
        for cell in line:
            if isinstance(cell.value, str):
                cell.data_type = "s"
    ws.freeze_panes = "C2"
    about = wb.create_sheet("说明 about")
    weights = result.get("weights") or {}
    for item in (("租户 tenant", result.get("tenant")), ("开始 start", result.get("start")), ("结束 end", result.get("end")),
                 ("分组 group by", result.get("group_by")), ("时区 timezone", result.get("timezone")),
                 ("综合评分权重 score weights (响应率 response / 解决率 resolution / 满意率 satisfaction)",
                  " / ".join(str(weights[k]) for k in ("response", "resolution", "satisfaction")) if weights else None)):
        about.append([sanitize_cell(v) for v in item])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
