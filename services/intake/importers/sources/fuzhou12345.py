"""The ``fuzhou12345`` import format: the Fuzhou 12345 black-odorous-water work orders ("every
record had at least one reply"; ``转处理次数`` re-routings). Rules from
``/work/shared/data/README.md``, section "fuzhou12345…" (Columns, Quirks).

Memory: the ``source_id`` needs the number of earlier identical rows, so one 20-byte digest and a
count per distinct row is kept (the one exception to constant memory among the formats).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TextIO
from zoneinfo import ZoneInfo

from services.intake.importers.readers import (
    DESCRIPTION_MAX,
    build,
    finite_float,
    read_csv,
    row_error,
)
from services.intake.schemas import ReportIn, RowError

_FUZHOU_REQUIRED = (
    "区域",
    "性质",
    "信息来源",
    "标题",
    "时间",
    "投诉件内容",
    "转处理次数",
    "最终回复-投诉事件",
)
#: GB/T 2260 codes of the five Fuzhou districts named by the README's 区域 column.
_FUZHOU_DISTRICT_CODE = {
    "鼓楼区": "350102",
    "台江区": "350103",
    "仓山区": "350104",
    "马尾区": "350105",
    "晋安区": "350111",
}
_FUZHOU_CATEGORY_CODE = "200401"
_FUZHOU_CATEGORY_NAME = "黑臭水体 black and odorous water"
#: The README's Fuzhou section: "The spreadsheet has no per-row status; every record had at
#: least one reply." Every row is therefore closed, with this status.
_FUZHOU_STATUS = "已回复"

#: Most recorded transfers one imported row may carry: each becomes an object in the report and an
#: event in dispatch, so a cell like ``1e8`` must not be taken at its word.
MAX_RECORDED_TRANSFERS = 1000


def _map_fuzhou(
    n: int,
    row: dict[str, str],
    values: list[str],
    tenant: str,
    zone: ZoneInfo,
    counts: dict[bytes, int],
) -> ReportIn | RowError:
    """Map one Fuzhou 12345 work order (README "fuzhou12345…" Columns and Quirks).

    - ``source_id``: the file has no id column, so it is the first 16 hex digits of the SHA-1 of
      the row's raw values joined by ``"\x1f"`` (header order), ``-k`` where ``k`` counts earlier
      identical rows in the file (the README notes a complaint naming several rivers appears
      once per river; fully identical rows stay distinct). Re-importing a file gives the same ids.
    - ``reported_at``: ``时间`` (YYYY-MM-DD) at 00:00 in ``zone``.
    - ``history``: closed with status ``已回复`` (every record had a reply); ``closed_at`` =
      ``reported_at`` + ``最终回复-投诉事件`` days when that cell is a finite number, else ``None``;
      one empty :class:`RecordedTransfer` per ``转处理次数`` (an empty cell counts as 0; a
      negative, fractional or non-numeric count is a RowError).
    """
    digest = hashlib.sha1("\x1f".join(values).encode("utf-8")).digest()
    k = counts.get(digest, 0)
    counts[digest] = k + 1
    source_id = f"{digest.hex()[:16]}-{k}"

    problems: list[tuple[str, str]] = []
    district = row["区域"].strip()
    place_code = _FUZHOU_DISTRICT_CODE.get(district)
    if place_code is None:
        known = ", ".join(_FUZHOU_DISTRICT_CODE)
        problems.append(("区域", f"unknown district {district!r}; expected one of {known}"))
    day_text = row["时间"].strip()
    try:
        day = datetime.strptime(day_text, "%Y-%m-%d")
        reported_at: datetime | None = day.replace(tzinfo=zone)
    except ValueError:
        reported_at = None
        problems.append(("时间", f"cannot parse {day_text!r} as YYYY-MM-DD"))
    transfers_text = row["转处理次数"].strip()
    transfer_count = finite_float(transfers_text or "0")
    if transfer_count is None or transfer_count < 0 or not transfer_count.is_integer():
        problems.append(("转处理次数", f"not a non-negative whole number: {transfers_text!r}"))
    elif transfer_count > MAX_RECORDED_TRANSFERS:
        problems.append(("转处理次数", f"more than {MAX_RECORDED_TRANSFERS} transfers: {transfers_text!r}"))
    if problems:
        return row_error(n, problems)
    assert reported_at is not None and transfer_count is not None

    days = finite_float(row["最终回复-投诉事件"].strip())
    try:
        closed_at = reported_at + timedelta(days=days) if days is not None else None
    except OverflowError:  # e.g. 1e300 or -1e6 days: no date
        return row_error(n, [("最终回复-投诉事件", f"not a plausible number of days: {row['最终回复-投诉事件'].strip()!r}")])
    description = f"{row['标题']}\n{row['投诉件内容']}"[:DESCRIPTION_MAX]
    return build(
        n,
        {
            "tenant": tenant,
            "source": "fuzhou12345",
            "source_id": source_id,
            "category_code": _FUZHOU_CATEGORY_CODE,
            "category_name": _FUZHOU_CATEGORY_NAME,
            "description": description,
            "channel": row["信息来源"].strip(),
            "request_type": row["性质"].strip(),
            "place_code": place_code,
            "reported_at": reported_at,
            "history": {
                "department": None,
                "status": _FUZHOU_STATUS,
                "closed": True,
                "closed_at": closed_at,
                "transfers": [{} for _ in range(int(transfer_count))],
            },
        },
    )



def read(stream: TextIO, tenant: str, zone: ZoneInfo) -> Iterator[tuple[int, ReportIn | RowError]]:
    """Read a Fuzhou 12345 file (header checked now, rows as they are iterated)."""
    counts: dict[bytes, int] = {}
    return read_csv(
        stream,
        "fuzhou12345",
        _FUZHOU_REQUIRED,
        lambda n, row, values: _map_fuzhou(n, row, values, tenant, zone, counts),
    )
