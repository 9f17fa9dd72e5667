"""The KPI rules: per case, in SQL, whether and when it counts for each KPI (docs/domain.md §3(e));
per step, which event counts, when, and against which department (docs/kpis.md).

Each case rule is a SQL fragment over the per-case columns of :data:`CASE_COLUMNS` (computed once
per case of P by :mod:`services.reporting.kpis.sql`); :data:`EVENT_RULES` count events in a
sub-period, :data:`STATE_RULES` states at a sub-period's end, :data:`TIME_RULES` time statistics.
Each step rule (:data:`STEP_RULES`) is a SQL fragment over one row of ``reporting.case_steps`` (or
one hold: the steps from one hand-over to the next) and names the department the event counts
against. The arithmetic that turns the counts into rates is in
:mod:`services.reporting.kpis.formulas`.

What case_facts does not have, and the rule applied instead
-----------------------------------------------------------
- 受理/立案 times: case_facts keeps when a case was accepted (``accepted_at``) but not when it was
  filed; a case counts only once accepted (services/reporting/filters.py ``counted``), and
  ``reported_at`` is the time of 受理 and of 立案 for every case (grid workers' reports are accepted
  and filed at once; a report waiting for the clerk counts from its report time once accepted).
- State history: case_facts keeps the case's *current* ``state`` only. Rejected (不予受理) and
  cancelled (作废) cases, and reports not yet accepted, are outside every KPI; shelved (挂账) means
  "shelved now". The steps (``case_steps``) hold the history the step rules count.
- Deadline: history imports carry the due date their source recorded (NYC ``Due Date``,
  Baltimore ``DueDate``, Boston ``TARGET_DT``; dispatch puts it on the replayed dispatch); the
  others (SF, Fuzhou, Teddy Cup, seed A) carry none. A case without a deadline is due in the
  period it was reported in (the "reported" basis a work summary uses: docs/seeds.md block A states
  办结率 = 3644 / 5410, closed ÷ found). It can never be late.
- On time: closed by the deadline, the deadline itself included (Boston's ``OnTime_Status``:
  ONTIME iff ``CLOSED_DT`` is not after ``TARGET_DT``; docs/kpis.md §4 "Recorded deadlines of
  history" for where our figures and the sources' own can differ).
- Close time: 办结 is a case's newest closure (``final_closed_at``; a reopened case is open again
  until it closes again); the time to first close and to final close are both given. A closed
  case whose source gave no close time (RecordedOutcome.closed_at None) counts as closed at its
  report time (so on time unless its deadline lies before the report); a close time before the
  report time counts as the report time (a source's clock error cannot make a case close before
  it existed). A reopened case counts as open from its report to its final closure.
- 督办 records: case_facts keeps the highest supervision level (0 none, 1 督办 at red, 2 提级督办,
  services/dispatch/domain/lifecycle/clock.py), not each record's time. A case's records are its level
  (one per level reached; yellow warnings are not 督办) and are counted in the period of its
  deadline, the moment the red alert fires (docs/domain.md §3(d)4).
- Transfers: counted on the case (``transfer_count``, attributed to the period of the case's first
  dispatch, 转办率) and as steps (转出/转入, each in its own period, against the department).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import NamedTuple

from services.reporting.db import LIFETIME_END
from services.reporting.filters import COUNTED_SQL
from services.reporting.kpis.catalogue import PLACE_LEVELS
from services.reporting.kpis.clock import local_epoch_sql, working_clock_sql
from shared.contract.actions import OUTCOMES, SATISFIED
from shared.domain.workcalendar import URGENCY_LIMITS

#: request_type of cases found by grid sweeps (排查; gridcase/seeds.py, docs/seeds.md block A).
SWEEP_REQUEST_TYPE = "排查"

#: Categories of illegal business (非法经营): unlicensed trading (无照经营, street and shop) and
#: every 前置审批 prior-licence trade (taxonomy kind ``licence``, docs/domain.md §3(b)).
ILLEGAL_BUSINESS_CATEGORIES: frozenset[str] = frozenset({"100501", "500101"})


#: Group keys (SQL over ``cf``, a case_facts row) of each ``group_by``; period grouping and the
#: total use none. Place levels: ``left(place_code, 9/12/15)``; a code shorter than the level
#: (e.g. a district-only history record) has no key at that level (NULL, "(无 none)").
GROUP_KEYS: Mapping[str, str] = {
    **{level: f"CASE WHEN length(cf.place_code) >= {n} THEN left(cf.place_code, {n}) END" for level, n in PLACE_LEVELS.items()},
    "category": "cf.category_code",
    "department": "cf.department",
    "channel": "cf.channel",
}

#: Per-case columns (SQL over ``cf``, the case_facts row), computed once per case for P; bucket
#: numbers come from ``width_bucket(t, bounds)``: 0 = before P, ``k`` = sub-period k,
#: ``n + 1`` = after P (or never).
CASE_COLUMNS: Mapping[str, str] = {
    # Universe: cases that were accepted (受理) and are not rejected/cancelled (module docstring).
    "universe": COUNTED_SQL,
    # Merged duplicates (合并重复件, issue 15 item 3; docs/kpis.md §2 "Duplicates"): reports cancelled
    # as the duplicate of another case (merge_duplicate, or cancel naming the original). Outside
    # the universe, so the matter counts once, as its original; counted apart by DUPLICATE_RULES.
    "merged_duplicate": "(cf.reported_at IS NOT NULL AND cf.state = 'cancelled' AND cf.outcome = 'duplicate')",
    # Candidates of P: cases alive at some moment of P, i.e. reported before its end and not
    # closed before its start (every event of a case lies within its life).
    # The lifetime end (close time, or +infinity while open) is the expression of the index
    # ix_reporting_case_facts_tenant_lifetime (services/reporting/db.py): one index range.
    "candidate": f"{LIFETIME_END} >= :b0 AND cf.reported_at < :bn",
    # 受理/立案 time = report time (module docstring). 立案: the case was dispatched or waits
    # filed in the triage queue; a grid worker's 自行处置 closes an accepted case without filing
    # (docs/domain.md §3(c) "accepted→closed by a grid worker's 自行处置").
    "rb": "width_bucket(cf.reported_at, :bounds::timestamptz[])",
    "filed": "(cf.dispatched_at IS NOT NULL OR cf.state IS NOT DISTINCT FROM 'filed')",
    # 办结: the newest close time (module docstring); open cases: n + 1. The outcome is the newest
    # closure's.
    "close_t": "greatest(coalesce(cf.final_closed_at, cf.closed_at, cf.reported_at), cf.reported_at)",
    "cb": "CASE WHEN cf.closed THEN width_bucket(greatest(coalesce(cf.final_closed_at, cf.closed_at, cf.reported_at), "
          "cf.reported_at), :bounds::timestamptz[]) ELSE :n::int + 1 END",
    # the first closure (time to first close), also of a case reopened since
    "fb": "width_bucket(cf.closed_at, :bounds::timestamptz[])",
    "db": "width_bucket(cf.deadline, :bounds::timestamptz[])",
    "shelved": "(cf.state IS NOT DISTINCT FROM 'shelved')",
    # Overdue while open from the later of report and deadline, once the deadline is before now;
    # a shelved case's clock is paused (docs/domain.md §3(c) "挂账 pauses the clock"): never overdue.
    "ob": "CASE WHEN cf.deadline < :now AND cf.state IS DISTINCT FROM 'shelved' "
          "THEN width_bucket(greatest(cf.deadline, cf.reported_at), :bounds::timestamptz[]) ELSE :n::int + 1 END",
    # First dispatch to a handler (the triage queue is not a dispatch to a handler).
    "pb": "width_bucket(CASE WHEN cf.target_kind IS DISTINCT FROM 'triage' THEN cf.dispatched_at END, :bounds::timestamptz[])",
    "ab": "width_bucket(cf.acknowledged_at, :bounds::timestamptz[])",
    # Disposed (处置): first resolution, or the first closure when the source records none
    # (history imports, 自行处置).
    "sb": "width_bucket(coalesce(cf.resolved_at, CASE WHEN cf.closed OR cf.closed_at IS NOT NULL THEN "
          "greatest(coalesce(cf.closed_at, cf.reported_at), cf.reported_at) END), :bounds::timestamptz[])",
    # Time to close (the rule of services/reporting/stats.py), to the first closure and to the
    # final one: close time − reported_at over cases with both times and close time ≥ reported_at;
    # time to acknowledge (平均响应时长, docs/domain.md §3(e)): acknowledged_at − dispatched_at. Natural
    # hours and working hours (services/reporting/kpis/clock.py).
    "close_h": "CASE WHEN cf.closed_at >= cf.reported_at "
               "THEN date_part('epoch', cf.closed_at - cf.reported_at) / 3600.0 END",
    "close_wh": f"CASE WHEN cf.closed_at >= cf.reported_at "
                f"THEN ({working_clock_sql('cf.l_closed')} - {working_clock_sql('cf.l_reported')}) / 3600.0 END",
    "final_close_h": "CASE WHEN cf.closed AND coalesce(cf.final_closed_at, cf.closed_at) >= cf.reported_at "
                     "THEN date_part('epoch', coalesce(cf.final_closed_at, cf.closed_at) - cf.reported_at) / 3600.0 END",
    "final_close_wh": f"CASE WHEN cf.closed AND coalesce(cf.final_closed_at, cf.closed_at) >= cf.reported_at "
                      f"THEN ({working_clock_sql('cf.l_final_closed')} - {working_clock_sql('cf.l_reported')}) / 3600.0 END",
    "ack_h": "CASE WHEN cf.acknowledged_at >= cf.dispatched_at "
             "THEN date_part('epoch', cf.acknowledged_at - cf.dispatched_at) / 3600.0 END",
    "ack_wh": f"CASE WHEN cf.acknowledged_at >= cf.dispatched_at "
              f"THEN ({working_clock_sql('cf.l_acknowledged')} - {working_clock_sql('cf.l_dispatched')}) / 3600.0 END",
}

#: The event KPIs, each defined once: ``name: (aggregate, condition)`` over the per-case row ``c``
#: for the sub-periods ``{lo}..{hi}`` (one sub-period: lo = hi; all of P: 1..n); aggregate
#: ``count`` or ``sum:<expression>``. Sources: docs/domain.md §3(e).
EVENT_RULES: Mapping[str, tuple[str, str]] = {
    # 受理量 (§3(e)1): accepted in P (受理 time = report time).
    "accepted": ("count", "c.rb BETWEEN {lo} AND {hi}"),
    # 立案数 (§3(e)1): of those, filed (立案 time = report time).
    "filed": ("count", "c.rb BETWEEN {lo} AND {hi} AND c.filed"),
    # 办结量 (§3(e)1): closed in P; its outcome breakdown (issue 12: one count per outcome, history
    # sources record none).
    "closed": ("count", "c.cb BETWEEN {lo} AND {hi}"),
    **{outcome: ("count", f"c.cb BETWEEN {{lo}} AND {{hi}} AND c.outcome = '{outcome}'") for outcome in OUTCOMES},
    "outcome_unrecorded": ("count", "c.cb BETWEEN {lo} AND {hi} AND c.outcome IS NULL"),
    # 按期办结 (§3(e)4 [R1][P9]): closed in P by the deadline (inclusive, as Boston's OnTime_Status);
    # no deadline = not late.
    "closed_on_time": ("count", "c.cb BETWEEN {lo} AND {hi} AND (c.deadline IS NULL OR c.close_t <= c.deadline)"),
    # 超期 part 2 (§3(e)6): closed in P after the deadline.
    "closed_late": ("count", "c.cb BETWEEN {lo} AND {hi} AND c.close_t > c.deadline"),
    # 应办结 (§3(e)2 [R2]): closed in P; or, minus shelved (挂账) and not closed before P, a deadline
    # in P, or no deadline and reported in P (module docstring; docs/seeds.md block A 办结率 =
    # 3644 / 5410).
    "due": ("count", "(c.cb BETWEEN {lo} AND {hi} OR (NOT c.shelved AND c.cb >= {lo} AND (c.db BETWEEN {lo} AND {hi} "
                     "OR (c.deadline IS NULL AND c.rb BETWEEN {lo} AND {hi}))))"),
    # 转办率 (§3(e)7): cases first dispatched in P; transferred ≥ 1 time.
    "dispatched": ("count", "c.pb BETWEEN {lo} AND {hi}"),
    "transferred": ("count", "c.pb BETWEEN {lo} AND {hi} AND c.transfer_count > 0"),
    # 返工率 (§3(e)8 [R1]): disposed in P; rework cases = disposed with rework_count ≥ 1.
    "disposed": ("count", "c.sb BETWEEN {lo} AND {hi}"),
    "rework": ("count", "c.sb BETWEEN {lo} AND {hi} AND c.rework_count > 0"),
    # 督办数 (§3(e)9): a case's records = its supervision level, in the sub-period of its deadline.
    "supervisions": ("sum:c.supervision_level", "c.db BETWEEN {lo} AND {hi}"),
    "supervised_cases": ("count", "c.db BETWEEN {lo} AND {hi} AND c.supervision_level > 0"),
}

#: The figures of the merged duplicates (:data:`CASE_COLUMNS` ``merged_duplicate``, outside the
#: universe), same form as :data:`EVENT_RULES`: 合并重复件, in the sub-period of the duplicate's
#: report (as 受理量 counts its original: docs/kpis.md §3.1).
DUPLICATE_RULES: Mapping[str, tuple[str, str]] = {
    "merged_duplicates": ("count", "c.rb BETWEEN {lo} AND {hi}"),
}

#: Time statistics: ``prefix: (hours column, working-hours column, sub-period column)``: count,
#: mean, median and p90 (PostgreSQL ``percentile_cont``, linear interpolation, as pandas
#: ``quantile``) over the cases acknowledged / closed in the sub-periods.
TIME_RULES: Mapping[str, tuple[str, str, str]] = {
    "ack": ("c.ack_h", "c.ack_wh", "c.ab"),
    "close": ("c.close_h", "c.close_wh", "c.fb"),
    "final_close": ("c.final_close_h", "c.final_close_wh", "c.cb"),
}

#: State KPIs at the end of a sub-period: ``name: (first, stop, condition)``: a case is in the
#: state at the end of sub-periods ``first ≤ k < stop`` (:func:`~services.reporting.kpis.periods.counts_at_period_ends`; at the end
#: of sub-period ``{hi}``: ``first <= hi AND stop > hi``).
#: 在办 (§3(e)5): open at the end (reported before it, not closed by then), split by whether the
#: case was transferred (docs/seeds.md block A: 627 in the bureau's remit, 1139 transferred);
#: 超期 part 1 (§3(e)6): open past the deadline at the end.
STATE_RULES: Mapping[str, tuple[str, str, str]] = {
    "in_progress_own": ("c.rb", "c.cb", "c.transfer_count = 0"),
    "in_progress_transferred": ("c.rb", "c.cb", "c.transfer_count > 0"),
    "overdue_open": ("c.ob", "c.cb", "TRUE"),
}

# --------------------------------------------------------------------------- step rules

#: Actions that hand a case to a handler: each starts a *hold* (the steps up to the next such
#: action), so a hand-over's acknowledgement and the return that undoes a dispatch are found in it.
OPENING_ACTIONS: tuple[str, ...] = ("dispatch", "transfer", "reopen", "mediation_failed")

#: States in which the case is with a handler (a department or a mediation rung): a
#: recategorization from one of them corrects a dispatch (准确派遣率 falls).
HANDLING_STATES: tuple[str, ...] = ("dispatched", "acknowledged", "in_progress", "mediating")

#: States that end mediation without a hand-off (an agreement closes the case; cancelled and
#: rejected end it).
_MEDIATION_ENDS = ("mediating", "closed", "cancelled", "rejected")


def _quoted(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


class StepRule(NamedTuple):
    """One per-event figure. ``source``: ``s`` (a step of ``case_steps``) or ``h`` (a hold: its
    opening step ``h.*`` with ``h.ack_at`` the first acknowledgement in it, ``h.undone`` whether a
    return or a recategorization undid it, ``h.left_at`` when the case left mediation within it,
    ``h.next_at`` when the next hold began). ``condition`` selects the events; ``department`` is the
    department the event counts against (group_by=department, the department filter); ``rung`` the
    mediation rung, if the figure is given per rung; ``time`` places it in a sub-period; ``agg``:
    ``sum`` counts the events (``value`` 1), ``cases`` the cases with such an event (each once),
    ``avg`` averages ``value``."""

    source: str
    condition: str
    department: str
    rung: str | None = None
    time: str | None = None
    value: str = "1"
    agg: str = "sum"


#: Longest span of calendar time a response limit can take (1 working day across the longest run of
#: holidays, the Spring Festival, is under two weeks): the step statement needs the working clock
#: only from the start of P to this long after its end
#: (:func:`services.reporting.kpis.clock.working_clock_params_between`).
RESPONSE_WINDOW = timedelta(days=31)


def response_in_time_sql(start: str, end: str, urgency: str) -> str:
    """SQL: whether ``end − start`` is within the response limit (签收) of ``urgency``
    (shared/domain/workcalendar.py ``URGENCY_LIMITS``, docs/domain.md §3(d)3: 特急 30 min, 紧急 2 h,
    一般 and 复杂 1 WD): natural time for hour limits, working time (W(end) − W(start),
    services/reporting/kpis/clock.py) for working-day limits."""
    def working(t: str) -> str:
        return working_clock_sql(local_epoch_sql(t))

    arms = []
    for name, limits in URGENCY_LIMITS.items():
        seconds = limits.respond.span().total_seconds()
        measure = (f"({working(end)} - {working(start)})" if limits.respond.is_working_days
                   else f"date_part('epoch', {end} - {start})")
        arms.append(f"WHEN '{name}' THEN {measure} <= {seconds:g}")
    return f"(CASE {urgency} {' '.join(arms)} END)"


_CALLBACK = "s.action = 'callback'"
_REACHED = f"{_CALLBACK} AND s.satisfaction IS DISTINCT FROM 'unreachable'"
_MEDIATION_LEFT = "coalesce(h.left_at, h.next_at)"

#: The per-event figures, each defined once (docs/kpis.md §3.7-3.10). Attribution (issue 12
#: item 3): a dispatch against the department that received it, a return against the one that
#: returned it, a transfer out of the transferring department and into the receiving one, a
#: callback against the department the case closed with.
STEP_RULES: Mapping[str, StepRule] = {
    # 转办 (§1.5 [P22]) as events: out of one department, into the next.
    "transfers_out": StepRule("s", "s.action = 'transfer'", "s.from_department"),
    "transfers_in": StepRule("s", "s.action = 'transfer'", "s.department"),
    # 准确派遣率 ([R1]): each dispatch to a handler (not the triage queue), judged by its hold: a
    # return (退回, wrong dispatch) or a recategorization while the case is with the handler makes
    # it inaccurate. Returns and recategorizations are also counted as events.
    "dispatches": StepRule("h", "h.action = 'dispatch' AND h.target_kind IN ('department', 'mediation')",
                           "h.department"),
    "inaccurate_dispatches": StepRule(
        "h", "h.action = 'dispatch' AND h.target_kind IN ('department', 'mediation') AND h.undone", "h.department"),
    "returned": StepRule("s", "s.action = 'return'", "s.from_department"),
    "recategorized": StepRule("s", "s.action = 'recategorize'", "s.from_department"),
    # 响应率 ([P19][P23]): live hand-overs to a department (dispatch, transfer, reopen, a mediation
    # hand-off to the police) acknowledged within the urgency's response limit.
    "handovers": StepRule("h", "NOT h.history AND h.to_state = 'dispatched'", "h.department"),
    "responded": StepRule("h", "NOT h.history AND h.to_state = 'dispatched' AND "
                          + response_in_time_sql("h.at", "h.ack_at", "h.urgency"), "h.department"),
    # 回访 ([P16][P19]): a callback that reached the resident (not 未联系上), its ratings.
    "callbacks": StepRule("s", _REACHED, "s.department"),
    "callbacks_unreachable": StepRule("s", f"{_CALLBACK} AND s.satisfaction = 'unreachable'", "s.department"),
    "callbacks_satisfied": StepRule("s", f"{_REACHED} AND s.satisfaction IN ({_quoted(sorted(SATISFIED))})",
                                    "s.department"),
    "callbacks_rated": StepRule("s", f"{_REACHED} AND s.resident_resolved IS NOT NULL", "s.department"),
    "callbacks_resolved": StepRule("s", f"{_REACHED} AND s.resident_resolved", "s.department"),
    # 重办 ([P22]): against the department that had closed the case.
    "reopened": StepRule("s", "s.action = 'reopen'", "s.from_department"),
    # 逐级上报 (seed E 能处则处，不能办理则逐级上报; docs/domain.md §3(c)2): a grid worker's or a
    # community's report of a case up one level (grid → community → street), as steps and as cases
    # (each once; seed C's sewer case climbs twice): against the case's department then (none yet).
    "escalations": StepRule("s", "s.action = 'escalate'", "s.from_department"),
    "escalated": StepRule("s", "s.action = 'escalate'", "s.from_department", agg="cases"),
    # Mediation per rung (seed E, §1.6): cases that entered a rung (each once), agreements,
    # escalations to the next rung, hand-offs out of the ladder (to the police or a department),
    # time spent on the rung (from entering it to the next step that left it).
    "mediated": StepRule("h", "h.to_state = 'mediating'", "h.department", rung="h.mediation_level", agg="cases"),
    "mediation_agreements": StepRule("s", "s.action = 'mediation_agreement'", "s.from_department",
                                     rung="coalesce(s.from_rung, s.mediation_level)"),
    "mediation_escalations": StepRule("s", "s.action = 'mediation_failed' AND s.to_state = 'mediating'",
                                      "s.from_department", rung="s.from_rung"),
    "mediation_handoffs": StepRule("s", f"s.from_state = 'mediating' AND s.to_state NOT IN ({_quoted(_MEDIATION_ENDS)})",
                                   "s.from_department", rung="s.from_rung"),
    "mediation_hours": StepRule("h", f"h.to_state = 'mediating' AND {_MEDIATION_LEFT} IS NOT NULL", "h.department",
                                rung="h.mediation_level", time=_MEDIATION_LEFT,
                                value=f"date_part('epoch', {_MEDIATION_LEFT} - h.at) / 3600.0", agg="avg"),
}


#: Extra counts the work summary needs (:func:`~services.reporting.kpis.summary.choose_wording`), same ``{lo}``/``{hi}`` form:
#: accepted cases found by sweeps, and of illegal-business categories (``:business``).
SUMMARY_RULES: Mapping[str, tuple[str, str]] = {
    "swept": ("count", "c.rb BETWEEN {lo} AND {hi} AND c.request_type = :sweep"),
    "illegal_business": ("count", "c.rb BETWEEN {lo} AND {hi} AND c.category_code = ANY(:business::text[])"),
}


def business_categories(taxonomy=None) -> tuple[str, ...]:
    """Codes of the illegal-business categories: :data:`ILLEGAL_BUSINESS_CATEGORIES` and every
    licence trade (``8001nn``) of ``taxonomy`` (if given)."""
    licence = {c.code for c in taxonomy.categories_of_kind("licence")} if taxonomy is not None else set()
    return tuple(sorted(ILLEGAL_BUSINESS_CATEGORIES | licence))
