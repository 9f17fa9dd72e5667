"""The closed loop's pure parts (issue 12): the KPI formulas, the composite score and its tenant
weights, the fold's per-event values (shared/domain/casefacts.py, shared/domain/casesteps.py), the
summary sentence and the exports. Expected values are worked out by hand in the comments; the SQL
rules are checked on PostgreSQL in tests/integration/test_closed_loop_kpis.py.
"""

from __future__ import annotations

import io
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from services.reporting.filters import COUNTED_SQL
from services.reporting.kpis.catalogue import KPI_BY_NAME, KPIS
from services.reporting.kpis.export import to_csv, to_xlsx
from services.reporting.kpis.formulas import (
    accurate_dispatch_rate,
    assessment_score,
    derive,
    mediation_success_rate,
    reopen_rate,
    resolution_rate,
    response_rate,
    satisfaction_rate,
)
from services.reporting.kpis.rules import STEP_RULES, response_in_time_sql
from services.reporting.kpis.summary import closed_loop_sentence
from shared.contract.events import (
    CaseDispatched,
    CaseReported,
    CaseTransferred,
    CaseTransitioned,
    RecordedOutcome,
)
from shared.domain.casefacts import closed_loop_values, is_closing
from shared.domain.casesteps import step_values
from shared.domain.tenants import AssessmentWeights, TenantConfigError, parse_tenant

T = datetime(2026, 3, 2, 10, 0, tzinfo=timezone(timedelta(hours=8)))
BASE = {"case_id": uuid.UUID(int=1), "tenant": "t", "place_code": "990102001001001"}


# --------------------------------------------------------------------------- formulas


@pytest.mark.parametrize(("fn", "args", "expected"), [
    (response_rate, (5, 8), 0.625),            # 5 of 8 hand-overs acknowledged in time
    (satisfaction_rate, (3, 4), 0.75),         # 满意 + 基本满意 3 of 4 callbacks that reached the resident
    (resolution_rate, (2, 3), 2 / 3),          # 2 of 3 ratings say resolved
    (reopen_rate, (1, 6), 1 / 6),              # 1 reopen, 6 completions
    (mediation_success_rate, (1, 1), 0.5),     # 1 agreement ÷ (1 agreement + 1 hand-off)
    (mediation_success_rate, (3, 0), 1.0),
    (accurate_dispatch_rate, (8, 2), 0.75),    # 8 dispatches, 2 returned or recategorized
])
def test_closed_loop_rates(fn, args, expected):
    assert fn(*args) == pytest.approx(expected)


@pytest.mark.parametrize("fn", [response_rate, satisfaction_rate, resolution_rate, reopen_rate,
                                mediation_success_rate])
def test_rates_of_nothing_are_none(fn):
    assert fn(0, 0) is None


def test_inaccurate_dispatches_beyond_dispatches_are_an_error():
    with pytest.raises(ValueError):
        accurate_dispatch_rate(2, 3)


def test_assessment_score_by_hand():
    # default 30/35/35 [P23]: 100 × (0.30 × 0.625 + 0.35 × 2/3 + 0.35 × 0.75) = 18.75 + 23.333… + 26.25
    assert assessment_score(0.625, 2 / 3, 0.75) == pytest.approx(68.3333333)
    # a tenant's own 50/25/25: 31.25 + 16.666… + 18.75
    assert assessment_score(0.625, 2 / 3, 0.75, AssessmentWeights(0.5, 0.25, 0.25)) == pytest.approx(66.6666667)
    assert assessment_score(1.0, 1.0, 1.0) == pytest.approx(100.0)
    assert assessment_score(None, 1.0, 1.0) is None  # a missing rate is neither 0 % nor left out


def test_derive_closed_loop_row():
    raw = {"closed": 6, "dispatches": 8, "inaccurate_dispatches": 2, "handovers": 8, "responded": 5, "callbacks": 4,
           "callbacks_satisfied": 3, "callbacks_rated": 3, "callbacks_resolved": 2, "reopened": 1,
           "mediation_agreements": 1, "mediation_handoffs": 1, "mediation_agreements_community": 1,
           "mediation_handoffs_linked": 1, "mediation_escalations_grid": 1, "mediation_hours_grid": 48}
    row = derive(raw)
    assert row["accurate_dispatch_rate"] == pytest.approx(6 / 8)
    assert (row["response_rate"], row["satisfaction_rate"], row["resolution_rate"]) == \
        (pytest.approx(5 / 8), pytest.approx(3 / 4), pytest.approx(2 / 3))
    assert row["reopen_rate"] == pytest.approx(1 / 6)
    assert row["assessment_score"] == pytest.approx(68.3333333)
    # per rung: community 1/(1+0), linked 0/(0+1), grid only escalated: no rate
    assert (row["mediation_success_rate"], row["mediation_success_rate_community"],
            row["mediation_success_rate_linked"], row["mediation_success_rate_grid"]) == (0.5, 1.0, 0.0, None)
    assert row["mediation_hours_grid"] == 48.0 and row["mediation_hours_street"] is None


def test_catalogue_has_the_closed_loop_figures_labelled_zh_first():
    names = [k.name for k in KPIS]
    for name in ("resolved", "partly_resolved", "unresolved", "unfounded", "duplicate", "not_remit",
                 "outcome_unrecorded", "callbacks", "satisfaction_rate", "resolution_rate", "response_rate",
                 "reopened", "reopen_rate", "assessment_score", "transfers_out", "transfers_in", "mediated",
                 "mediation_escalations", "mediation_success_rate", "final_close_hours_mean"):
        assert name in names
    for rung in ("grid", "community", "street", "linked"):
        for stem in ("mediated", "mediation_agreements", "mediation_escalations", "mediation_handoffs",
                     "mediation_success_rate", "mediation_hours"):
            assert f"{stem}_{rung}" in names
    assert KPI_BY_NAME["resolved"].label == "解决量 resolved"
    assert KPI_BY_NAME["satisfaction_rate"].label == "满意率 satisfaction rate"
    assert KPI_BY_NAME["mediation_success_rate_community"].label == "调解成功率·社区 mediation success rate, community"
    # every per-event rule is a column
    assert set(STEP_RULES) <= set(names)


def test_response_limits_come_from_the_urgency_table():
    sql = response_in_time_sql("a", "b", "u")
    # 特急 30 min = 1800 s, 紧急 2 h = 7200 s natural; 一般 and 复杂 1 WD = 86400 s of working time
    assert "WHEN '特急' THEN date_part('epoch', b - a) <= 1800" in sql
    assert "WHEN '紧急' THEN date_part('epoch', b - a) <= 7200" in sql
    assert sql.count("<= 86400") == 2 and ":cum::bigint[]" in sql


def test_counted_cases():
    assert COUNTED_SQL == ("cf.reported_at IS NOT NULL AND cf.accepted_at IS NOT NULL AND "
                           "(cf.state IS NULL OR (cf.state NOT IN ('rejected', 'cancelled')))")


# --------------------------------------------------------------------------- tenant weights


def _tenant_file(tmp_path, extra: str):
    path = tmp_path / "wt.yaml"
    path.write_text('tenant: wt\nname_zh: 测试\nname_en: Test\ntimezone: Asia/Shanghai\n'
                    'places:\n  - {code: "990102", level: district, name_zh: 区, name_en: District}\n' + extra,
                    encoding="utf-8")
    return path


def test_tenant_weights_default_and_own(tmp_path):
    assert parse_tenant(_tenant_file(tmp_path, "")).assessment_weights == AssessmentWeights(0.30, 0.35, 0.35)
    own = parse_tenant(_tenant_file(tmp_path, "assessment_weights: {response: 0.2, resolution: 0.4, satisfaction: 0.4}\n"))
    assert own.assessment_weights == AssessmentWeights(0.2, 0.4, 0.4)


@pytest.mark.parametrize("weights", ["{response: 0.5, resolution: 0.5, satisfaction: 0.5}",  # sums to 1.5
                                     "{response: 1}",                                            # keys missing
                                     "{response: -0.2, resolution: 0.6, satisfaction: 0.6}",
                                     "{response: 0.3, resolution: 0.35, satisfaction: 0.35, speed: 0}"])
def test_bad_tenant_weights_name_the_line(tmp_path, weights):
    with pytest.raises(TenantConfigError, match=r"wt.yaml:7"):
        parse_tenant(_tenant_file(tmp_path, f"assessment_weights: {weights}\n"))


# --------------------------------------------------------------------------- fold values


def _transition(action, from_state, to_state, seq=5, **kw):
    return CaseTransitioned(event_id=uuid.uuid4(), occurred_at=T, action=action, from_state=from_state,
                            to_state=to_state, actor_role="x", sequence=seq, **BASE, **kw)


def test_acceptance_signs():
    report = lambda **kw: CaseReported(event_id=uuid.uuid4(), occurred_at=T, reported_at=T,  # noqa: E731
                                       category_code="100401", **BASE, **kw)
    assert closed_loop_values(report(channel="phone"))["accepted_at"] is None  # waits for the clerk
    assert closed_loop_values(report(channel="grid_worker"))["accepted_at"] == T
    assert closed_loop_values(report(channel="12345", history=RecordedOutcome()))["accepted_at"] == T
    assert closed_loop_values(_transition("accept", "reported", "accepted"))["accepted_at"] == T
    assert closed_loop_values(_transition("reject", "reported", "rejected"))["accepted_at"] is None
    assert closed_loop_values(_transition("cancel", "reported", "cancelled"))["accepted_at"] is None
    assert closed_loop_values(_transition("file", "accepted", "filed"))["accepted_at"] == T  # left reported


def test_closure_callback_and_reopen_values():
    close = closed_loop_values(_transition("verify_pass", "checking", "closed", outcome="partly_resolved"))
    assert (close["close_seq"], close["final_closed_at"], close["outcome_seq"], close["outcome"]) == \
        (5, T, 5, "partly_resolved")
    callback = _transition("callback", "closed", "closed", seq=6, satisfaction="unreachable")
    assert not is_closing(callback)  # closed → closed is no closure
    values = closed_loop_values(callback)
    assert (values["close_seq"], values["outcome_seq"], values["callback_seq"], values["satisfaction"]) == \
        (None, None, 6, "unreachable")
    reopen = closed_loop_values(_transition("reopen", "closed", "dispatched", seq=7, reopen_count=1))
    assert (reopen["reopen_seq"], reopen["reopen_count"], reopen["close_seq"]) == (7, 1, None)
    merge = closed_loop_values(_transition("merge_duplicate", "filed", "cancelled", outcome="duplicate",
                                           duplicate_of=uuid.UUID(int=2)))
    assert (merge["outcome"], merge["duplicate_of"]) == ("duplicate", uuid.UUID(int=2))


def test_recategorization_writes_the_category_with_its_sequence():
    values = closed_loop_values(_transition("recategorize", "dispatched", "filed", category_code="100110"))
    assert (values["category_seq"], values["category_code"], values["category_name"]) == (5, "100110", None)
    assert closed_loop_values(_transition("acknowledge", "dispatched", "acknowledged"))["category_seq"] is None


def test_step_rows_number_history_apart():
    live = CaseDispatched(event_id=uuid.uuid4(), occurred_at=T, target_kind="department", department="housing",
                          rule="r", sequence=3, from_department=None, **BASE)
    recorded = CaseDispatched(event_id=uuid.uuid4(), occurred_at=T, target_kind="department", department="housing",
                              rule="history", history=True, **BASE)
    transfer = CaseTransferred(event_id=uuid.uuid4(), occurred_at=T, from_department="housing",
                               to_department="health", sequence=1, history=True, **BASE)
    assert (step_values(live)["sequence"], step_values(live)["from_state"], step_values(live)["history"]) == \
        (3, "filed", False)
    assert (step_values(recorded)["sequence"], step_values(recorded)["history"]) == (0, True)
    assert {k: step_values(transfer)[k] for k in ("sequence", "action", "department", "from_department")} == \
        {"sequence": 1, "action": "transfer", "department": "health", "from_department": "housing"}
    callback = step_values(_transition("callback", "closed", "closed", satisfaction="satisfied",
                                       resident_resolved=True, department="housing"))
    assert (callback["action"], callback["satisfaction"], callback["resident_resolved"]) == ("callback", "satisfied",
                                                                                              True)
    assert len({frozenset(step_values(e)) for e in (live, recorded, transfer)}) == 1  # same keys every time


# --------------------------------------------------------------------------- summary and exports


def test_closed_loop_sentence_names_what_is_not_zero():
    total = derive({"returned": 2, "transfers_out": 3, "reopened": 1, "closed": 4, "callbacks": 4,
                    "callbacks_satisfied": 3, "callbacks_rated": 0, "mediated": 2, "mediation_agreements": 1,
                    "mediation_handoffs": 1})
    # 重办率 1/4 = 25.0 %; 满意率 3/4; no rating: no 解决率; 调解成功率 1/(1+1); no escalation
    assert closed_loop_sentence(total, "件") == ("退回2次，转办3次，重办1次，重办率25.0%，回访4次，满意率75.0%，"
                                                 "调解2件，达成调解协议1件，移交1件，调解成功率50.0%。")
    assert closed_loop_sentence(derive({"closed": 3}), "件") == ""


def test_exports_carry_the_new_columns_and_the_weights():
    from openpyxl import load_workbook

    row = {"key": "housing", "label": "housing", **derive({"callbacks": 4, "callbacks_satisfied": 3})}
    result = {"tenant": "t", "group_by": "department", "start": None, "end": None, "timezone": "Asia/Shanghai",
              "weights": {"response": 0.3, "resolution": 0.35, "satisfaction": 0.35}, "rows": [row],
              "total": {"key": None, "label": "合计 total", **row}}
    header = to_csv(result).decode("utf-8-sig").splitlines()[0].split(",")
    assert "满意率 satisfaction rate (%)" in header and "响应率 response rate (%)" in header
    assert "解决率 resolution rate (%)" in header and "综合评分 composite score" in header
    wb = load_workbook(io.BytesIO(to_xlsx(result)))
    sheet = wb["KPI 指标"]
    cells = dict(zip([c.value for c in sheet[1]], [c.value for c in sheet[2]], strict=True))
    assert cells["满意率 satisfaction rate (%)"] == 75.0  # 3 / 4 in per cent
    about = {r[0]: r[1] for r in wb["说明 about"].iter_rows(values_only=True)}
    assert about["综合评分权重 score weights (响应率 response / 解决率 resolution / 满意率 satisfaction)"] == "0.3 / 0.35 / 0.35"


def test_working_clock_cut_to_a_window_keeps_its_values():
    from datetime import date
    from zoneinfo import ZoneInfo

    from services.reporting.kpis.clock import (
        working_clock_params,
        working_clock_params_between,
    )

    tz = ZoneInfo("Asia/Shanghai")
    full = working_clock_params(tz)
    cut = working_clock_params_between(tz, datetime(2026, 3, 1, 12, tzinfo=tz), datetime(2026, 4, 1, tzinfo=tz))
    # Mar 1 .. Apr 1 local: 32 days, each with the full table's cumulative seconds and working flag
    assert len(cut["cum"]) == len(cut["wk"]) == 32
    day = (date(2026, 3, 2) - date(1970, 1, 1)).days
    assert cut["cum"][day - cut["day0"]] == full["cum"][day - full["day0"]]
    assert cut["wk"][day - cut["day0"]] == 1 and cut["wk"][day - 1 - cut["day0"]] == 0  # Mon 3/2, Sun 3/1
    # an open period keeps the whole clock; a window outside the clock's years keeps nothing
    assert working_clock_params_between(tz, datetime(1900, 1, 1, tzinfo=tz), datetime(9000, 1, 1, tzinfo=tz))["cum"] \
        == full["cum"]
    assert working_clock_params_between(tz, datetime(1950, 1, 1, tzinfo=tz), datetime(1960, 1, 1, tzinfo=tz))["cum"] == ()
