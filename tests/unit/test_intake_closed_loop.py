"""What intake shows of the closed loop (issue 12), without a database: when a case counts as
closed (services/intake/caseview.py ``closed_now``; Open311 ``is_closed``), Open311's
``status_notes`` with the outcome, what the view's fold writes for an event (shared/domain/casefacts.py
``CaseFold`` and the rung of services/intake/caseview.py), and the shape checks of
an action request (services/intake/schemas.py ``ActionIn``) and the answers about an action
(services/intake/api/actions.py ``action_answer``)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.intake import db
from services.intake.api.actions import action_answer
from services.intake.caseview import closed_now, view_values
from services.intake.open311.translate import OUTCOME_NOTES_EN, is_closed, status_notes
from services.intake.schemas import ActionIn
from shared.contract.actions import OUTCOMES
from shared.contract.events import CaseDispatched, CaseTransitioned
from shared.domain.casefacts import CaseFold

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("state, closed, reopens, expected", [
    ("closed", True, 0, True),
    ("in_progress", True, 0, True),     # a history case closed by its source, whatever its state
    ("dispatched", False, 0, False),
    ("dispatched", True, 1, False),     # reopened: the fold's flag stays set, the case is open
    ("closed", True, 2, True),          # closed again after reopening
    (None, None, None, False),          # no view row yet
])
def test_closed_now(state, closed, reopens, expected):
    assert closed_now(state, closed, reopens) is expected


@pytest.mark.parametrize("row, expected", [
    ({"state": "rejected", "closed": False, "reopen_count": 0}, True),
    ({"state": "cancelled", "closed": None, "reopen_count": None}, True),
    ({"state": "dispatched", "closed": True, "reopen_count": 1}, False),
    ({"state": None, "closed": None, "reopen_count": None}, False),
])
def test_open311_closed_includes_the_ending_states(row, expected):
    assert is_closed(row) is expected


def test_status_notes_name_the_outcome_of_a_closed_case():
    assert status_notes("closed", True, "resolved") == "已结案 closed: 已解决 resolved"
    assert status_notes("closed", True, "not_remit") == "已结案 closed: 非职责 not within remit"
    assert status_notes("rejected", True, "unfounded") == "不予受理 rejected: 不属实 unfounded"
    assert status_notes("closed", True, None) == "已结案 closed"
    assert status_notes("dispatched", False, "resolved") == "已派遣 dispatched"  # open: no outcome


def test_every_outcome_has_an_english_note():
    assert set(OUTCOME_NOTES_EN) == set(OUTCOMES)


def _step(seq: int, action: str, from_state: str, to_state: str, **extra) -> CaseTransitioned:
    return CaseTransitioned(event_id=uuid.uuid4(), occurred_at=T0, case_id=uuid.uuid4(), tenant="demo-grid",
                            place_code="990102001001001", action=action, from_state=from_state, to_state=to_state,
                            actor_role="city_ops", sequence=seq, **extra)


def view_row(ev) -> dict:
    """What the case-view consumer writes for ``ev``: the shared fold's values, then the rung."""
    return {**CaseFold(db.case_view).values(ev), **{k.removeprefix("p_"): v for k, v in view_values(ev).items()}}


def test_view_values_of_an_ending_step_a_callback_and_a_dispatch():
    closing = view_row(_step(5, "verify_pass", "checking", "closed", outcome="resolved", unit="990102001"))
    assert (closing["outcome_seq"], closing["outcome"], closing["callback_seq"]) == (5, "resolved", None)
    assert (closing["rung_seq"], closing["unit"], closing["category_seq"]) == (5, "990102001", None)
    # resolve records the department's outcome, but does not end the case: the view waits for the closure
    assert view_row(_step(4, "resolve", "in_progress", "checking", outcome="resolved"))["outcome_seq"] is None
    callback = view_row(_step(6, "callback", "closed", "closed", satisfaction="satisfied", resident_resolved=True))
    assert (callback["outcome_seq"], callback["callback_seq"], callback["satisfaction"]) == (None, 6, "satisfied")
    dispatch = view_row(CaseDispatched(event_id=uuid.uuid4(), occurred_at=T0, case_id=uuid.uuid4(),
                                       tenant="demo-grid", place_code="990102001001001", target_kind="department",
                                       department="urban_management", rule="r", sequence=3, category_code="100110"))
    assert (dispatch["category_seq"], dispatch["category_code"], dispatch.get("reopen_count")) == (3, "100110", None)


def test_action_in_accepts_the_closed_loop_fields():
    body = ActionIn(action="callback", satisfaction="basically_satisfied", resident_resolved=True)
    assert body.satisfaction == "basically_satisfied"
    merge = ActionIn(action="merge_duplicate", outcome="duplicate", duplicate_of=str(uuid.UUID(int=7)))
    assert merge.duplicate_of == uuid.UUID(int=7)
    assert ActionIn(action="recategorize", category_code="100110", to_place_code="990102001001").to_place_code


@pytest.mark.parametrize("fields", [
    {"outcome": "fixed"},                   # not an outcome
    {"satisfaction": "happy"},              # not a rating
    {"resident_resolved": "perhaps"},
    {"duplicate_of": "case-12"},            # not a case id
    {"category_code": ""},
    {"category_code": "1\x00"},
    {"to_place_code": "99-01"},             # not a place code
    {"extension_days": 0},
    {"rating": "satisfied"},                # unknown field
])
def test_action_in_refuses_malformed_fields(fields):
    with pytest.raises(ValidationError):
        ActionIn(action="callback", **fields)


def _action(status: str, **extra) -> dict:
    return {"action_id": str(uuid.UUID(int=1)), "case_id": str(uuid.UUID(int=2)), "action": "verify_pass",
            "status": status, "reason": "", "state": None, "allowed_actions": None, "requested_at": T0,
            "decided_at": None, **extra}


def test_action_answers_by_status():
    case_id = uuid.UUID(int=2)
    pending = action_answer(case_id, _action("pending"), None, duplicate=False)
    assert pending.status_code == 202 and "preference-applied" not in pending.headers
    assert pending.headers["location"] == f"/v1/cases/{case_id}/actions/{uuid.UUID(int=1)}"
    applied = action_answer(case_id, _action("applied", state="accepted"), 10)
    assert applied.status_code == 200 and applied.headers["preference-applied"] == "wait=10"
    refused = action_answer(case_id, _action("refused", state="dispatched", reason="not allowed in dispatched",
                                             allowed_actions=["acknowledge"]), 10, duplicate=False)
    body = json.loads(refused.body)
    assert refused.status_code == 409 and refused.headers["preference-applied"] == "wait=10"
    assert (body["error"], body["status"], body["reason"], body["state"]) == (
        "action_refused", "refused", "not allowed in dispatched", "dispatched")
    assert body["allowed_actions"] == ["acknowledge"] and body["action_id"] == str(uuid.UUID(int=1))
    assert body["requested_at"] == T0.isoformat()
