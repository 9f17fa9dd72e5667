"""Regression tests for hostile input found by fuzzing intake (issue 6 item 4): each input once
made intake answer 5xx or do unbounded work; now it is a clean 4xx / rejected row."""

from __future__ import annotations

import pytest
from fastapi import Request
from pydantic import ValidationError

from services.intake.schemas import ReportIn

BASE = {"tenant": "demo-grid", "category_code": "100401", "place_code": "990102001002001",
        "reported_at": "2024-05-01T09:00:00+08:00"}


def test_nul_in_a_recorded_transfer_department_is_refused():
    """``history.transfers[].to_department`` with NUL reached PostgreSQL's JSONB (500:
    "unsupported Unicode escape sequence"); the other history text was already checked."""
    with pytest.raises(ValidationError, match="control character U\\+0000"):
        ReportIn.model_validate({**BASE, "history": {"transfers": [{"to_department": "a\x00b"}]}})


def _rows(fmt: str, text: str, tenant: str = "demo-grid"):
    import io

    from services.intake.importers.formats import iter_records

    return list(iter_records(fmt, io.StringIO(text, newline=""), tenant))


@pytest.mark.parametrize("line", ["[" * 10_000 + "]" * 10_000, '{"a":' * 10_000 + "1" + "}" * 10_000])
def test_a_jsonl_line_nested_10000_deep_is_a_rejected_row(line):
    """``json.loads`` raised RecursionError, which ended the whole import with 500."""
    from services.intake.schemas import RowError

    rows = _rows("jsonl", line + "\n" + '{"category_code": "100401", "place_code": "990102001002001", '
                 '"reported_at": "2024-05-01T09:00:00+08:00"}\n')
    assert [n for n, _ in rows] == [1, 2]
    assert isinstance(rows[0][1], RowError) and "nested too deeply" in rows[0][1].errors[0]["problem"]
    assert isinstance(rows[1][1], ReportIn)


FUZHOU_HEADER = "标题,投诉件内容,区域,时间,信息来源,性质,转处理次数,最终回复-投诉事件\n"


def _fuzhou(transfers: str = "0", days: str = "1") -> str:
    return FUZHOU_HEADER + f"t,c,鼓楼区,2020-01-02,网站,投诉,{transfers},{days}\n"


@pytest.mark.parametrize("days", ["1e300", "-1e6", "1e9"])
def test_a_fuzhou_reply_delay_beyond_the_calendar_is_a_rejected_row(days):
    """``reported_at + timedelta(days=1e300)`` raised OverflowError: the import answered 500."""
    from services.intake.schemas import RowError

    [(n, row)] = _rows("fuzhou12345", _fuzhou(days=days), "fuzhou")
    assert isinstance(row, RowError), row


def test_a_fuzhou_transfer_count_of_1e8_is_a_rejected_row_not_1e8_objects():
    """``转处理次数`` = ``1e8`` built a list of 10⁸ transfers (MemoryError, or gigabytes of RAM
    in the intake process) from a one-line file."""
    from services.intake.importers.sources.fuzhou12345 import MAX_RECORDED_TRANSFERS
    from services.intake.schemas import RowError

    [(_, row)] = _rows("fuzhou12345", _fuzhou(transfers="1e8"), "fuzhou")
    assert isinstance(row, RowError) and row.errors[0]["field"] == "转处理次数"
    [(_, row)] = _rows("fuzhou12345", _fuzhou(transfers=str(MAX_RECORDED_TRANSFERS)), "fuzhou")
    assert isinstance(row, ReportIn) and len(row.history.transfers) == MAX_RECORDED_TRANSFERS


PATROL = {"tenant": "demo-grid", "place_code": "990102001002001", "kind": "routine", "points": 3,
          "started_at": "2024-05-01T09:00:00+08:00"}


@pytest.mark.parametrize("ended_at", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+08:00"])
def test_a_patrol_ending_in_year_9999_or_year_1_is_refused(ended_at):
    """``ended_at`` was not checked like ``started_at``: POST /v1/patrols answered 202 and the
    event carried the year-9999 time as its ``occurred_at``."""
    from services.intake.schemas import PatrolIn

    PatrolIn.model_validate({**PATROL, "ended_at": "2024-05-01T11:00:00+08:00"})
    with pytest.raises(ValidationError, match="outside 1990-01-01"):
        PatrolIn.model_validate({**PATROL, "ended_at": ended_at})


@pytest.mark.parametrize("field", ["worker_ref", "source_id"])
def test_control_characters_in_patrol_text_are_refused(field):
    """NUL in ``worker_ref`` was accepted (202) into the patrol event; report text refuses it."""
    from services.intake.schemas import PatrolIn

    with pytest.raises(ValidationError, match="control character U\\+0000"):
        PatrolIn.model_validate({**PATROL, field: "w\x00"})


async def test_a_chunked_body_without_content_length_is_bounded_too():
    """``POST /v1/reports`` checked only the Content-Length header: a chunked 70 KB body (no
    such header) was read and parsed whole. shared/platform/http.py ``BodyLimit`` counts the bytes."""
    import httpx
    from fastapi import FastAPI

    from shared.platform.http import BodyLimit

    app = FastAPI()
    app.add_middleware(BodyLimit, paths=("/in",), limit=1000)

    @app.post("/in")
    async def take(request: Request) -> dict:
        return {"n": len(await request.body())}

    async def chunked(size: int):
        for _ in range(size // 100):
            yield b"x" * 100

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        big = await client.post("/in", content=chunked(70_000))
        small = await client.post("/in", content=chunked(900))
        other = await client.post("/other", content=chunked(70_000))
    assert big.status_code == 413 and big.json()["error"] == "too_large"
    assert small.status_code == 200 and small.json() == {"n": 900}
    assert other.status_code == 404
