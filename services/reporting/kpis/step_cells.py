"""The per-event figures as additive cells (issue 14): one case's contributions, in Python.

A *step cell* is keyed by ``(tenant, local day, place_code, category_code, department, channel,
rung)``: the tenant's timezone decides the day (the day of the event's time), place, category and
channel are the case's current ones (``case_facts``), the department is the one the rule counts the
event against and the rung the mediation rung of figures given per rung. It holds one counter per
``sum`` figure of :data:`~services.reporting.kpis.rules.STEP_RULES`, the sum (microseconds) and
count of the ``avg`` figure (``mediation_hours``) and ``events``, every event of the cell (so a
group has a row exactly when the scan would have one).

A case adds its contributions, a function of its steps and of its fact row only
(:func:`case_contributions`); the fold (services/reporting/step_rollup.py) retracts a case's old
contributions and adds the new whenever a batch touches it, so the cells are always the sum over
the cases of their current contributions, whatever the order events arrive in.

'cases' figures (``escalated``, ``mediated``: a case counted once per period however many such
events it has) are not additive over days. They are kept exact as *case days*: for each case, each
distinct local day ``d`` with such an event and the case's previous such day ``p`` (``None`` for
the first), one row ``(d, p)`` per distinctness scope (per department or over all, per rung or
over all). A case has an event in ``[a, b)`` iff exactly one of its rows has ``a ≤ d < b`` and
``p < a`` (its first event day in the range), so a period's count is the sum of the rows with ``d``
in the period and ``p`` before it: additive again, and exact for any period made of whole days.

Each rule below is the Python twin of the SQL of ``STEP_RULES`` (services/reporting/kpis/sql.py
``step_sql``: steps in sequence order, the department and rung before a step the event's own else
the previous step's, holds from one opening action to the next);
tests/integration/test_step_cells_properties.py compares both on random histories.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import NamedTuple

from services.reporting.kpis.clock import WorkingClock, working_clock
from services.reporting.kpis.rules import HANDLING_STATES, OPENING_ACTIONS, STEP_RULES
from shared.contract.actions import SATISFIED
from shared.domain.workcalendar import URGENCIES, URGENCY_LIMITS

#: The ``sum`` figures, one counter column each (in STEP_RULES order).
SUM_FIGURES: tuple[str, ...] = tuple(name for name, r in STEP_RULES.items() if r.agg == "sum")
#: The ``cases`` figures, kept as case days.
CASE_FIGURES: tuple[str, ...] = tuple(name for name, r in STEP_RULES.items() if r.agg == "cases")
#: The ``avg`` figures: sum (``<name>_us``, microseconds) and count (``<name>_n``).
AVG_FIGURES: tuple[str, ...] = tuple(name for name, r in STEP_RULES.items() if r.agg == "avg")
#: Every counter of a step cell.
CELL_COUNTERS: tuple[str, ...] = ("events", *SUM_FIGURES, *(f"{n}{s}" for n in AVG_FIGURES for s in ("_us", "_n")))

_MEDIATION_ENDS = ("mediating", "closed", "cancelled", "rejected")


class CellKey(NamedTuple):
    tenant: str
    day: date
    place_code: str
    category_code: str | None
    department: str | None
    channel: str | None
    rung: str | None


class CaseDayKey(NamedTuple):
    """One case-day row: ``department`` / ``rung`` are ``None`` in the scopes over all of them
    (``by_department`` / ``by_rung`` false)."""

    tenant: str
    figure: str
    day: date
    prev_day: date | None
    place_code: str
    category_code: str | None
    department: str | None
    channel: str | None
    rung: str | None
    by_department: bool
    by_rung: bool


class StepEvent(NamedTuple):
    """One counted event: the figure, the department it counts against, its rung, its time and
    value (1, or microseconds for ``avg`` figures)."""

    figure: str
    department: str | None
    rung: str | None
    at: datetime
    value: int = 1


@dataclass
class Contributions:
    """A case's (or a batch's) additions: counters per cell, counts per case day."""

    cells: dict[CellKey, Counter]
    case_days: Counter

    @classmethod
    def empty(cls) -> Contributions:
        return cls({}, Counter())

    def add(self, other: Contributions, sign: int = 1) -> None:
        for key, counters in other.cells.items():
            mine = self.cells.setdefault(key, Counter())
            for name, v in counters.items():
                mine[name] += sign * v
        for key, v in other.case_days.items():
            self.case_days[key] += sign * v

    def nonzero(self) -> Contributions:
        """Without the cells whose counters are all 0 and the case days of count 0."""
        cells = {k: Counter({n: v for n, v in c.items() if v}) for k, c in self.cells.items()}
        return Contributions({k: c for k, c in cells.items() if c},
                             Counter({k: v for k, v in self.case_days.items() if v}))


def _in_time(at: datetime, ack: datetime | None, urgency: str, tz: tzinfo, clock: WorkingClock) -> bool:
    """``response_in_time_sql`` (rules.py): natural time for hour limits, ``W(ack) − W(at)`` of the
    working clock for working-day limits (NULL outside the clock's years: not in time)."""
    if ack is None:
        return False
    limit = URGENCY_LIMITS[urgency].respond
    seconds = limit.span().total_seconds()
    if not limit.is_working_days:
        return (ack - at).total_seconds() <= seconds
    wa, wb = clock.at(at, tz), clock.at(ack, tz)
    return wa is not None and wb is not None and wb - wa <= seconds


def _us(a: datetime, b: datetime) -> int:
    d = b - a
    return (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds


def step_events(steps: Iterable[Mapping], urgency: str | None, tz: tzinfo,
                clock: WorkingClock | None = None) -> list[StepEvent]:
    """The counted events of one case's steps (rows of ``case_steps``), as ``step_sql`` finds
    them; ``urgency`` is the case's (unknown or none: 一般)."""
    clock = clock or working_clock()
    urgency = urgency if urgency in URGENCIES else "一般"
    rows: list[dict] = []
    prev_dept = prev_rung = None
    hold = 0
    for s in sorted(steps, key=lambda s: s["sequence"]):
        opener = s["action"] in OPENING_ACTIONS
        hold += opener
        rows.append({**s, "opener": opener, "hold": hold,
                     "from_dept": s["from_department"] if s["from_department"] is not None else prev_dept,
                     "from_rung": s["from_mediation_level"] if s["from_mediation_level"] is not None else prev_rung})
        prev_dept, prev_rung = s["department"], s["mediation_level"]
    out: list[StepEvent] = []
    for s in rows:
        out += _step_rules(s)
    openers = [s for s in rows if s["opener"]]
    for i, h in enumerate(openers):
        rest = [s for s in rows if s["hold"] == h["hold"] and not s["opener"]]
        acks = [s["at"] for s in rest if s["action"] == "acknowledge"]
        left = [s["at"] for s in rest if s["to_state"] != "mediating"]
        undone = any(s["action"] == "return" or (s["action"] == "recategorize" and s["from_state"] in HANDLING_STATES)
                     for s in rest)
        next_at = openers[i + 1]["at"] if i + 1 < len(openers) else None
        out += _hold_rules(h, min(acks) if acks else None, undone, min(left) if left else next_at, urgency, tz, clock)
    return out


def _step_rules(s: Mapping) -> list[StepEvent]:
    """The ``s`` rules of STEP_RULES over one step (with ``from_dept`` / ``from_rung``)."""
    a, at, fd, fr = s["action"], s["at"], s["from_dept"], s["from_rung"]
    out = []
    if a == "transfer":
        out += [StepEvent("transfers_out", fd, None, at), StepEvent("transfers_in", s["department"], None, at)]
    if a == "return":
        out.append(StepEvent("returned", fd, None, at))
    if a == "recategorize":
        out.append(StepEvent("recategorized", fd, None, at))
    if a == "callback":
        d, sat = s["department"], s["satisfaction"]
        if sat == "unreachable":
            out.append(StepEvent("callbacks_unreachable", d, None, at))
        else:
            out.append(StepEvent("callbacks", d, None, at))
            if sat in SATISFIED:
                out.append(StepEvent("callbacks_satisfied", d, None, at))
            if s["resident_resolved"] is not None:
                out.append(StepEvent("callbacks_rated", d, None, at))
            if s["resident_resolved"] is True:
                out.append(StepEvent("callbacks_resolved", d, None, at))
    if a == "reopen":
        out.append(StepEvent("reopened", fd, None, at))
    if a == "escalate":
        out += [StepEvent("escalations", fd, None, at), StepEvent("escalated", fd, None, at)]
    if a == "mediation_agreement":
        out.append(StepEvent("mediation_agreements", fd, fr if fr is not None else s["mediation_level"], at))
    if a == "mediation_failed" and s["to_state"] == "mediating":
        out.append(StepEvent("mediation_escalations", fd, fr, at))
    if s["from_state"] == "mediating" and s["to_state"] is not None and s["to_state"] not in _MEDIATION_ENDS:
        out.append(StepEvent("mediation_handoffs", fd, fr, at))
    return out


def _hold_rules(h: Mapping, ack_at: datetime | None, undone: bool, left_at: datetime | None, urgency: str,
                tz: tzinfo, clock: WorkingClock) -> list[StepEvent]:
    """The ``h`` rules of STEP_RULES over one hold (its opening step ``h``; ``left_at`` is
    ``coalesce(left_at, next_at)``)."""
    d, at, out = h["department"], h["at"], []
    if h["action"] == "dispatch" and h["target_kind"] in ("department", "mediation"):
        out.append(StepEvent("dispatches", d, None, at))
        if undone:
            out.append(StepEvent("inaccurate_dispatches", d, None, at))
    if not h["history"] and h["to_state"] == "dispatched":
        out.append(StepEvent("handovers", d, None, at))
        if _in_time(at, ack_at, urgency, tz, clock):
            out.append(StepEvent("responded", d, None, at))
    if h["to_state"] == "mediating":
        out.append(StepEvent("mediated", d, h["mediation_level"], at))
        if left_at is not None:
            out.append(StepEvent("mediation_hours", d, h["mediation_level"], left_at, _us(at, left_at)))
    return out


def case_contributions(fact: Mapping, steps: Sequence[Mapping], tz: tzinfo,
                       clock: WorkingClock | None = None) -> Contributions:
    """What one case adds to the cells: ``fact`` is its fact row (``tenant``, ``place_code``,
    ``category_code``, ``channel``, ``urgency``, ``counted``: whether the KPIs count the case,
    services/reporting/filters.py), ``steps`` its step rows. Nothing for a case not counted."""
    out = Contributions.empty()
    if not fact["counted"] or not steps:
        return out
    base = (fact["tenant"], fact["place_code"], fact["category_code"], fact["channel"])
    days: dict[tuple, set[date]] = {}
    for ev in step_events(steps, fact["urgency"], tz, clock):
        day = ev.at.astimezone(tz).date()
        cell = out.cells.setdefault(CellKey(base[0], day, base[1], base[2], ev.department, base[3], ev.rung), Counter())
        cell["events"] += 1
        rule = STEP_RULES[ev.figure]
        if rule.agg == "sum":
            cell[ev.figure] += ev.value
        elif rule.agg == "avg":
            cell[f"{ev.figure}_us"] += ev.value
            cell[f"{ev.figure}_n"] += 1
        else:
            for by_dept in (False, True):
                for by_rung in (False, True) if rule.rung is not None else (False,):
                    scope = (ev.figure, ev.department if by_dept else None, ev.rung if by_rung else None,
                             by_dept, by_rung)
                    days.setdefault(scope, set()).add(day)
    for (figure, dept, rung, by_dept, by_rung), ds in days.items():
        prev = None
        for d in sorted(ds):
            out.case_days[CaseDayKey(base[0], figure, d, prev, base[1], base[2], dept, base[3], rung, by_dept,
                                     by_rung)] += 1
            prev = d
    return out
