"""The 泰迪杯 2020 C题 (Teddy Cup) sources. ``teddycup_labelled`` (附件2 full release, labelled
bodies only) is mapped here by hand; ``teddycup_messages`` (附件2) and ``teddycup_replies`` (附件4)
are described by ``importers/mappings/<format>.yaml`` (sources/mapped.py). Rules from
``/work/shared/data/README.md``, the Teddy Cup sections."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TextIO
from zoneinfo import ZoneInfo

from services.intake.importers.codes import category_code, digest
from services.intake.importers.readers import (
    DESCRIPTION_MAX,
    build,
    read_csv,
    row_error,
)
from services.intake.schemas import ReportIn, RowError

#: Place code of every Teddy Cup record: the files carry no place column (places appear only as
#: pseudonyms inside the text), so all go to the tenant's one place ``"0"`` (unspecified).
TEDDYCUP_PLACE = "0"

_TEDDY_LABELLED_REQUIRED = ("留言详情", "一级标签")
#: 附件2 full release: "the files have no time, title or user". Every record is reported at this
#: fixed, documented moment (the release year of the competition data), so that the rows can be
#: imported at all; time figures of this tenant mean nothing.
TEDDYCUP_LABELLED_REPORTED_AT = datetime(2020, 1, 1, tzinfo=ZoneInfo("Asia/Shanghai"))


def _map_teddycup_labelled(n: int, row: dict[str, str], tenant: str) -> ReportIn | RowError:
    """Map one 附件2-full row (README "teddycup2020c_fj2full_labelled_details_sample.csv").

    - ``source_id``: ``fj2full-`` + the first 20 hex digits of the SHA-1 of ``留言详情`` (the
      file has no id; the source dropped exact-duplicate texts, so the text identifies the
      message, and a repeated text is the same message: it lands on the same case). Memory
      stays constant (no per-row state).
    - ``category``: ``一级标签``; ``reported_at``: :data:`TEDDYCUP_LABELLED_REPORTED_AT`;
      place :data:`TEDDYCUP_PLACE`; no history (plain reports: live cases awaiting 受理).
    """
    text = row["留言详情"]
    label = row["一级标签"].strip()
    problems: list[tuple[str, str]] = []
    if not text.strip():
        problems.append(("留言详情", "empty message text"))
    if not label:
        problems.append(("一级标签", "missing label"))
    if problems:
        return row_error(n, problems)
    return build(
        n,
        {
            "tenant": tenant,
            "source": "teddycup",
            "source_id": f"fj2full-{digest(text, 20)}",
            "category_code": category_code(label),
            "category_name": label,
            "description": text[:DESCRIPTION_MAX],
            "place_code": TEDDYCUP_PLACE,
            "reported_at": TEDDYCUP_LABELLED_REPORTED_AT,
        },
    )


def read_labelled(stream: TextIO, tenant: str, zone: ZoneInfo) -> Iterator[tuple[int, ReportIn | RowError]]:
    """Read a 附件2-full file (header checked now, rows as they are iterated); ``zone`` is not
    used (the file has no times)."""
    return read_csv(stream, "teddycup_labelled", _TEDDY_LABELLED_REQUIRED,
                    lambda n, row, values: _map_teddycup_labelled(n, row, tenant))
