"""End to end: a duplicate found at intake, merged by staff, counted once (issue 15 item 3).

Two near-identical phone reports of 垃圾扰民 (100102) come in at one place; the second's answer lists
the first as a possible duplicate (docs/classifier.md §4); both are accepted; staff merge the second
into the first (``merge_duplicate``: dispatch cancels it with outcome ``duplicate`` and the
original's id, docs/domain.md §3(c)5); the first is filed and closed by its department. The figures
of ``GET /v1/kpis`` then count the matter once and show the merged duplicate apart
(docs/kpis.md §2 "Duplicates", §3.1). Every expected value is worked out by hand in the comments.

Isolation: the reports are at a building code of their own under 和平社区第3网格 (a fresh code per
run: no other case shares the place, so no other case is a possible duplicate and no other test's
figures read with their own place prefix move), and every figure is read with that place prefix
over all time.
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from datetime import UTC, datetime

import pytest

from tests import api
from tests.e2e.test_closed_loop import (
    ask,
    close_case,
    do,
    eventually,
    kpis,
    matches,
    stats,
)
from tests.e2e.test_lifecycle import view, wait_for

pytestmark = pytest.mark.e2e

TENANT = "demo-grid"
GRID = "990102001002003"  # 和平社区第3网格 (Heping community, grid 3)
#: 17 characters, every adjacent pair distinct: 16 character bigrams.
FIRST_TEXT = "和平小区东门垃圾桶满溢三天无人清运"
#: The first, and 请尽快处理: punctuation is dropped, so 5 bigrams more (运请 请尽 尽快 快处 处理), 21 in all.
SECOND_TEXT = FIRST_TEXT + "，请尽快处理"


def post_report(stack, place: str, text: str) -> dict:
    body = {"tenant": TENANT, "category_code": "100102", "place_code": place, "channel": "phone",
            "description": text, "reported_at": datetime.now(UTC).isoformat()}
    resp = api.post(f"{stack.url('intake')}/v1/reports", json=body, timeout=10)
    assert resp.status_code == 202, resp.text
    return resp.json()


def reporting_fact(infra, case_id: str) -> dict | None:
    """The case's row of ``reporting.case_facts`` (state, outcome, duplicate_of), or ``None``."""
    import asyncpg

    from shared.platform.db import libpq_url

    async def main():
        conn = await asyncpg.connect(libpq_url(infra.database_url))
        try:
            return await conn.fetchrow("SELECT state, outcome, duplicate_of FROM reporting.case_facts "
                                       "WHERE case_id = $1", uuid.UUID(case_id))
        finally:
            await conn.close()

    row = asyncio.run(main())
    return dict(row) if row is not None else None


def test_a_near_identical_report_is_listed_merged_and_counted_once(stack, infra):
    place = f"{GRID}{uuid.uuid4().int % 10**6:06d}"  # a building under the grid, new to this run
    first = post_report(stack, place, FIRST_TEXT)
    original = first["case_id"]
    assert first["possible_duplicates"] == []  # nothing else at this place
    # dispatch holds the first before the second asks to be merged into it
    wait_for(stack, original, lambda v: v["state"] == "reported")

    second = post_report(stack, place, SECOND_TEXT)
    duplicate = second["case_id"]
    # Same category, same place, reported just now: the first is the one candidate. The second's
    # bigrams hold all 16 of the first's and 5 more: cosine = 16 / sqrt(16 × 21) = 0.87287… → 0.8729.
    (listed,) = second["possible_duplicates"]
    assert (listed["case_id"], listed["similarity"], listed["state"]) == (original, 0.8729, "reported")
    assert [d["case_id"] for d in view(stack, duplicate)["possible_duplicates"]] == [original]

    for case in (original, duplicate):
        do(stack, case, "accept", "accepted")
    # a merge needs an original that dispatch holds, not the case itself
    refused = ask(stack, duplicate, "merge_duplicate")
    assert refused.status_code == 409 and "duplicate_of" in refused.json()["reason"], refused.text
    refused = ask(stack, duplicate, "merge_duplicate", duplicate_of=duplicate)
    assert refused.status_code == 409 and "itself" in refused.json()["reason"], refused.text
    # an original that is no case the caller can see: refused by intake before dispatch
    # (services/intake/api/actions.py original_refusal)
    refused = ask(stack, duplicate, "merge_duplicate", duplicate_of=str(uuid.uuid4()))
    assert refused.status_code == 422 and refused.json()["error"] == "unknown_original", refused.text
    assert view(stack, duplicate)["state"] == "accepted"  # refusals change nothing

    merged = do(stack, duplicate, "merge_duplicate", "cancelled", duplicate_of=original, note="合并重复件")
    assert merged["action"] == "merge_duplicate"
    v = view(stack, duplicate)
    assert (v["state"], v["outcome"], v["duplicate_of"]) == ("cancelled", "duplicate", original)
    # the original goes on: filed (→ urban_management), closed resolved by the department
    do(stack, original, "file", "dispatched")
    close_case(stack, original, "resolved")

    # reporting's facts carry the outcome and the original (the event's duplicate_of)
    eventually(lambda: matches(reporting_fact(infra, duplicate) or {},
                               {"state": "cancelled", "outcome": "duplicate", "duplicate_of": uuid.UUID(original)}))

    # By hand (P = all time, this place): the original is the one case of the universe — accepted
    # and filed (受理量 1, 立案数 1), closed resolved (办结 1, 解决量 1; outcome breakdown: resolved 1,
    # every other outcome 0, so `duplicate` 0), due because closed in P (应办结 1), 办结率 1/1 = 1.0,
    # closed seconds after dispatch, inside 垃圾扰民's 4 working hours (按期办结 1, 按期办结率 1.0),
    # nothing open (在办 0). The merged duplicate, cancelled, is outside all of these and shown
    # apart: 合并重复件 1. Without the merge both would count: 受理量 2, 应办结 2.
    expected = {
        "accepted": 1, "filed": 1, "closed": 1, "resolved": 1, "duplicate": 0, "merged_duplicates": 1,
        "due": 1, "completion_rate": 1.0, "closed_on_time": 1, "on_time_rate": 1.0, "in_progress": 0,
        "dispatched": 1, "dispatches": 1,
    }
    eventually(lambda: matches(kpis(stack, place)["total"], expected))
    # grouped by category, the same: one row, 垃圾扰民
    (row,) = kpis(stack, place, "category")["rows"]
    matches(row, {"key": "100102", "accepted": 1, "closed": 1, "merged_duplicates": 1})
    # /v1/stats: one report counted (the original, closed); the merged duplicate among the cancelled
    matches(stats(stack, place)["total"], {"reported": 1, "closed": 1, "closure_rate": 1.0, "cancelled": 1})
    # the export carries the column: header 合并重复件 merged duplicates, the total row's value 1
    resp = api.get(f"{stack.url('reporting')}/v1/kpis.csv", params={"tenant": TENANT, "place_prefix": place},
                   timeout=60)
    assert resp.status_code == 200, resp.text
    header, *rows = csv.reader(io.StringIO(resp.content.decode("utf-8-sig")))
    column = header.index("合并重复件 merged duplicates")
    assert rows[-1][column] == "1"


def test_an_original_with_a_merged_duplicate_is_closed_not_cancelled(stack):
    """The original keeps its duplicate (docs/domain.md §3(c)5 "An original keeps its duplicates"):
    cancelling it is refused, naming the duplicate; it is closed through the check as 不属实
    (unfounded) instead, and the figures count the matter once. A place of its own, as above."""
    place = f"{GRID}{uuid.uuid4().int % 10**6:06d}"
    original = post_report(stack, place, FIRST_TEXT)["case_id"]
    duplicate = post_report(stack, place, SECOND_TEXT)["case_id"]
    for case in (original, duplicate):
        do(stack, case, "accept", "accepted")
    do(stack, duplicate, "merge_duplicate", "cancelled", duplicate_of=original, note="合并重复件")

    refused = ask(stack, original, "cancel", note="作废")
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["error"] == "action_refused" and "原件有合并重复件 1 case(s)" in body["reason"], body
    assert duplicate not in body["reason"], body  # counted, not named: it may lie outside the caller's place
    assert "cancel" not in body["allowed_actions"], body
    assert view(stack, original)["state"] == "accepted"  # the refusal changes nothing

    do(stack, original, "file", "dispatched")
    close_case(stack, original, "unfounded")
    # By hand (P = all time, this place): the original is the one counted case — 受理量 1, 立案数 1,
    # closed (办结 1) as 不属实 (unfounded 1, 解决量 resolved 0), due because closed in P (应办结 1),
    # 办结率 1/1 = 1.0, nothing open (在办 0); the duplicate apart: 合并重复件 1. Had the cancel
    # applied: 受理量 0, 办结 0, and the two residents' reports would count only as 合并重复件 1.
    expected = {"accepted": 1, "filed": 1, "closed": 1, "unfounded": 1, "resolved": 0, "due": 1,
                "completion_rate": 1.0, "in_progress": 0, "merged_duplicates": 1}
    eventually(lambda: matches(kpis(stack, place)["total"], expected))
