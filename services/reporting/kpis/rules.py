"""The KPI rules: per case, in SQL, whether and when it counts for each KPI (domain.md §3(e)).

Each rule is a SQL fragment over the per-case columns of :data:`CASE_COLUMNS` (computed once per
case of P by :mod:`services.reporting.kpis.sql`); :data:`EVENT_RULES` count events in a
sub-period, :data:`STATE_RULES` states at a sub-period's end, :data:`TIME_RULES` time statistics.
The arithmetic that turns the counts into rates is in :mod:`services.reporting.kpis.formulas`.

What case_facts does not have, and the rule applied instead
-----------------------------------------------------------
- 受理/立案 times: case_facts keeps no acceptance or filing time. Grid workers' reports are
  accepted and filed automatically when dispatch takes them (services/dispatch/domain.py), so
  ``reported_at`` is the time of 受理 and of 立案 for every case.
- State history: case_facts keeps the case's *current* ``state`` only. Rejected (不予受理) and
  cancelled (作废) cases, and reports still awaiting acceptance (state ``reported``), are outside
  every KPI; shelved (挂账) means "shelved now".
- Deadline: history imports carry the due date their source recorded (NYC ``Due Date``,
  Baltimore ``DueDate``, Boston ``TARGET_DT``; dispatch puts it on the replayed dispatch); the
  others (SF, Fuzhou, Teddy Cup, seed A) carry none. A case without a deadline is due in the
  period it was reported in (the "reported" basis a work summary uses: seed-figures.md A states
  办结率 = 3644 / 5410, closed ÷ found). It can never be late.
- On time: closed by the deadline, the deadline itself included (Boston's ``OnTime_Status``:
  ONTIME iff ``CLOSED_DT`` is not after ``TARGET_DT``; docs/kpis.md §4 "Recorded deadlines of
  history" for where our figures and the sources' own can differ).
- Close time: a closed case whose source gave no close time (RecordedOutcome.closed_at None)
  counts as closed at its report time (so on time unless its deadline lies before the report);
  a close time before the report time counts as the report time (a source's clock error cannot
  make a case close before it existed).
- 督办 records: case_facts keeps the highest supervision level (0 none, 1 督办 at red, 2 提级督办,
  services/dispatch/lifecycle.py), not each record's time. A case's records are its level (one
  per level reached; yellow warnings are not 督办) and are counted in the period of its deadline,
  the moment the red alert fires (domain.md §3(d)4).
- Transfers and returns: counted on the case (``transfer_count``, ``return_count``) and
  attributed to the period of the case's first dispatch.
"""

from __future__ import annotations

from collections.abc import Mapping

from services.reporting.db import LIFETIME_END
from services.reporting.kpis.catalogue import PLACE_LEVELS
from services.reporting.kpis.clock import working_clock_sql

#: Cases outside every KPI (their current state, see the module docstring).
EXCLUDED_STATES: tuple[str, ...] = ("reported", "rejected", "cancelled")

#: request_type of cases found by grid sweeps (排查; gridcase/seeds.py, seed-figures.md A).
SWEEP_REQUEST_TYPE = "排查"

#: Categories of illegal business (非法经营): unlicensed trading (无照经营, street and shop) and
#: every 前置审批 prior-licence trade (taxonomy kind ``licence``, domain.md §3(b)).
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
    "universe": "cf.reported_at IS NOT NULL AND (cf.state IS NULL OR cf.state NOT IN ("
                + ", ".join(f"'{state}'" for state in EXCLUDED_STATES) + "))",
    # Candidates of P: cases alive at some moment of P, i.e. reported before its end and not
    # closed before its start (every event of a case lies within its life).
    # The lifetime end (close time, or +infinity while open) is the expression of the index
    # ix_reporting_case_facts_tenant_lifetime (services/reporting/db.py): one index range.
    "candidate": f"{LIFETIME_END} >= :b0 AND cf.reported_at < :bn",
    # 受理/立案 time = report time (module docstring). 立案: the case was dispatched or waits
    # filed in the triage queue; a grid worker's 自行处置 closes an accepted case without filing
    # (domain.md §3(c) "accepted→closed by a grid worker's 自行处置").
    "rb": "width_bucket(cf.reported_at, :bounds::timestamptz[])",
    "filed": "(cf.dispatched_at IS NOT NULL OR cf.state IS NOT DISTINCT FROM 'filed')",
    # 办结: the close time (module docstring); open cases: n + 1.
    "close_t": "greatest(coalesce(cf.closed_at, cf.reported_at), cf.reported_at)",
    "cb": "CASE WHEN cf.closed THEN width_bucket(greatest(coalesce(cf.closed_at, cf.reported_at), cf.reported_at), "
          ":bounds::timestamptz[]) ELSE :n::int + 1 END",
    "db": "width_bucket(cf.deadline, :bounds::timestamptz[])",
    "shelved": "(cf.state IS NOT DISTINCT FROM 'shelved')",
    # Overdue while open from the later of report and deadline, once the deadline is before now;
    # a shelved case's clock is paused (domain.md §3(c) "挂账 pauses the clock"): never overdue.
    "ob": "CASE WHEN cf.deadline < :now AND cf.state IS DISTINCT FROM 'shelved' "
          "THEN width_bucket(greatest(cf.deadline, cf.reported_at), :bounds::timestamptz[]) ELSE :n::int + 1 END",
    # First dispatch to a handler (the triage queue is not a dispatch to a handler).
    "pb": "width_bucket(CASE WHEN cf.target_kind IS DISTINCT FROM 'triage' THEN cf.dispatched_at END, :bounds::timestamptz[])",
    "ab": "width_bucket(cf.acknowledged_at, :bounds::timestamptz[])",
    # Disposed (处置): first resolution, or the closure when the source records none (history
    # imports, 自行处置).
    "sb": "width_bucket(coalesce(cf.resolved_at, CASE WHEN cf.closed THEN greatest(coalesce(cf.closed_at, cf.reported_at), "
          "cf.reported_at) END), :bounds::timestamptz[])",
    # Time to close (the rule of services/reporting/stats.py): closed_at − reported_at over closed
    # cases with both times and closed_at ≥ reported_at; time to acknowledge (平均响应时长,
    # domain.md §3(e)): acknowledged_at − dispatched_at. Natural hours and working hours
    # (services/reporting/kpis/clock.py).
    "close_h": "CASE WHEN cf.closed AND cf.closed_at >= cf.reported_at "
               "THEN date_part('epoch', cf.closed_at - cf.reported_at) / 3600.0 END",
    "close_wh": f"CASE WHEN cf.closed AND cf.closed_at >= cf.reported_at "
                f"THEN ({working_clock_sql('cf.l_closed')} - {working_clock_sql('cf.l_reported')}) / 3600.0 END",
    "ack_h": "CASE WHEN cf.acknowledged_at >= cf.dispatched_at "
             "THEN date_part('epoch', cf.acknowledged_at - cf.dispatched_at) / 3600.0 END",
    "ack_wh": f"CASE WHEN cf.acknowledged_at >= cf.dispatched_at "
              f"THEN ({working_clock_sql('cf.l_acknowledged')} - {working_clock_sql('cf.l_dispatched')}) / 3600.0 END",
}

#: The event KPIs, each defined once: ``name: (aggregate, condition)`` over the per-case row ``c``
#: for the sub-periods ``{lo}..{hi}`` (one sub-period: lo = hi; all of P: 1..n); aggregate
#: ``count`` or ``sum:<expression>``. Sources: domain.md §3(e) (line numbers as of this writing).
EVENT_RULES: Mapping[str, tuple[str, str]] = {
    # 受理量 (l.172): accepted in P (受理 time = report time).
    "accepted": ("count", "c.rb BETWEEN {lo} AND {hi}"),
    # 立案数 (l.172): of those, filed (立案 time = report time).
    "filed": ("count", "c.rb BETWEEN {lo} AND {hi} AND c.filed"),
    # 办结量 (l.172): closed in P.
    "closed": ("count", "c.cb BETWEEN {lo} AND {hi}"),
    # 按期办结 (l.175 [R1][P9]): closed in P by the deadline (inclusive, as Boston's OnTime_Status);
    # no deadline = not late.
    "closed_on_time": ("count", "c.cb BETWEEN {lo} AND {hi} AND (c.deadline IS NULL OR c.close_t <= c.deadline)"),
    # 超期 part 2 (l.177): closed in P after the deadline.
    "closed_late": ("count", "c.cb BETWEEN {lo} AND {hi} AND c.close_t > c.deadline"),
    # 应办结 (l.173 [R2]): closed in P; or, minus shelved (挂账) and not closed before P, a deadline
    # in P, or no deadline and reported in P (module docstring; seed-figures.md A 办结率 =
    # 3644 / 5410).
    "due": ("count", "(c.cb BETWEEN {lo} AND {hi} OR (NOT c.shelved AND c.cb >= {lo} AND (c.db BETWEEN {lo} AND {hi} "
                     "OR (c.deadline IS NULL AND c.rb BETWEEN {lo} AND {hi}))))"),
    # 转办率 (l.178): cases first dispatched in P; transferred ≥ 1 time.
    "dispatched": ("count", "c.pb BETWEEN {lo} AND {hi}"),
    "transferred": ("count", "c.pb BETWEEN {lo} AND {hi} AND c.transfer_count > 0"),
    # 准确派遣率 (l.185): dispatches of a case = 1 + its returns (each 退回 is a wrong dispatch).
    "dispatches": ("sum:1 + c.return_count", "c.pb BETWEEN {lo} AND {hi}"),
    "returned": ("sum:c.return_count", "c.pb BETWEEN {lo} AND {hi}"),
    # 返工率 (l.179 [R1]): disposed in P; rework cases = disposed with rework_count ≥ 1.
    "disposed": ("count", "c.sb BETWEEN {lo} AND {hi}"),
    "rework": ("count", "c.sb BETWEEN {lo} AND {hi} AND c.rework_count > 0"),
    # 督办数 (l.180): a case's records = its supervision level, in the sub-period of its deadline.
    "supervisions": ("sum:c.supervision_level", "c.db BETWEEN {lo} AND {hi}"),
    "supervised_cases": ("count", "c.db BETWEEN {lo} AND {hi} AND c.supervision_level > 0"),
}

#: Time statistics: ``prefix: (hours column, working-hours column, sub-period column)``: count,
#: mean, median and p90 (PostgreSQL ``percentile_cont``, linear interpolation, as pandas
#: ``quantile``) over the cases acknowledged / closed in the sub-periods.
TIME_RULES: Mapping[str, tuple[str, str, str]] = {
    "ack": ("c.ack_h", "c.ack_wh", "c.ab"),
    "close": ("c.close_h", "c.close_wh", "c.cb"),
}

#: State KPIs at the end of a sub-period: ``name: (first, stop, condition)``: a case is in the
#: state at the end of sub-periods ``first ≤ k < stop`` (:func:`~services.reporting.kpis.periods.counts_at_period_ends`; at the end
#: of sub-period ``{hi}``: ``first <= hi AND stop > hi``).
#: 在办 (l.176): open at the end (reported before it, not closed by then), split by whether the
#: case was transferred (seed-figures.md A: 627 in the bureau's remit, 1139 transferred);
#: 超期 part 1 (l.177): open past the deadline at the end.
STATE_RULES: Mapping[str, tuple[str, str, str]] = {
    "in_progress_own": ("c.rb", "c.cb", "c.transfer_count = 0"),
    "in_progress_transferred": ("c.rb", "c.cb", "c.transfer_count > 0"),
    "overdue_open": ("c.ob", "c.cb", "TRUE"),
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
