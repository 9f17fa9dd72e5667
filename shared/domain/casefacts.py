"""Folding case events into a per-case fact table (one row per case).

Used by reporting (``reporting.case_facts``: the statistics) and intake (``intake.case_view``:
what ``GET /v1/cases/{id}`` and Open311 show).

Merge rules, chosen so that the final row does not depend on the order events arrive in (a
closure may arrive before its report, a transfer before its dispatch):

- ``case.reported`` writes the report columns (category, channel, reported_at, …).
- ``case.dispatched`` / ``case.transferred`` write ``department`` only if their
  ``(occurred_at, sequence)`` is not older than the one that wrote it last; ``dispatched_at`` keeps
  the earliest dispatch; each transfer adds 1 to ``transfer_count``.
- ``case.transitioned`` writes ``state`` (and the department and target) when its
  ``sequence`` is the highest seen; ``deadline`` comes from the highest-sequence dispatch or
  transition that carries one (``deadline_seq``; one without a deadline never clears it); counters take the maximum (they only grow); the first
  acknowledgement/resolution time is kept; a transition into ``closed`` closes the case (the
  earliest such transition's time is ``closed_at``).
- ``case.supervised`` adds 1 to ``supervision_count`` and keeps the highest level.
- ``patrol.recorded`` inserts a row in ``patrols`` (no case row).
- ``case.closed`` sets ``closed``, ``closed_at`` and the source status; a recorded open status
  (``case.status_recorded``) never overwrites the status a closure wrote.

The closed loop (issue 12; :func:`closed_loop_columns`, folded only into a table that has them —
reporting's ``case_facts`` and intake's ``case_view``):

- ``accepted_at`` (受理) is the earliest sign of acceptance: a history report or a report from a
  self-accepted channel (:data:`~shared.contract.actions.AUTO_ACCEPTED_CHANNELS`) at its report
  time; the ``accept`` transition or any transition that does not start in ``reported``; any
  dispatch; a recorded transfer, closure or status (history). Reports never accepted keep NULL.
- A closing transition (into ``closed`` from another state; a callback is closed→closed) writes
  ``close_seq`` / ``final_closed_at`` when it is the newest closure (``closed_at`` stays the first);
  a ``reopen`` writes ``reopen_seq``; ``closed`` is then "the newest closure is newer than the newest
  reopen" (without closing transitions, as before: any closure).
- The step that ends a case (into closed, rejected or cancelled) writes ``outcome`` and
  ``duplicate_of`` when it is the newest such step (``outcome_seq``); a ``callback`` writes
  ``satisfaction``, ``resident_resolved`` and ``callback_at`` when it is the newest callback
  (``callback_seq``); ``reopen_count`` and ``recategorize_count`` take the maximum.
- ``category_code`` and ``place_code`` are the report's until a dispatch or transition carrying a
  ``category_code`` (a recategorization) arrives: then the newest such event's (``category_seq``),
  with the place of its envelope.
- ``urgency`` comes from the report.

With a steps table (:mod:`shared.domain.casesteps`), every dispatch, transfer and transition is also
one step row, inserted once.

Each event is applied once: :class:`shared.platform.consumer.BatchProcessor` filters redeliveries through
``processed_events`` in the same transaction.
"""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.contract.actions import AUTO_ACCEPTED_CHANNELS
from shared.contract.events import (
    CaseClosed,
    CaseDispatched,
    CaseReported,
    CaseStatusRecorded,
    CaseSupervised,
    CaseTransferred,
    CaseTransitioned,
    Event,
    PatrolRecorded,
)
from shared.domain.casesteps import step_values


def case_fact_columns() -> list[sa.Column]:
    """Columns of a per-case fact table (one row per case), beside ``case_id``; fresh objects on
    every call, so several schemas can each have such a table (reporting.case_facts,
    intake.case_view)."""
    return [
        sa.Column("tenant", sa.String(40), nullable=False),
        sa.Column("place_code", sa.String(24), nullable=False),
        # from case.reported
        sa.Column("reported_at", sa.DateTime(timezone=True)),
        sa.Column("category_code", sa.String(64)),
        sa.Column("category_name", sa.String(200)),
        sa.Column("channel", sa.String(64)),
        sa.Column("request_type", sa.String(32)),
        sa.Column("source", sa.String(32)),
        sa.Column("history", sa.Boolean),
        # from case.dispatched / case.transferred (latest by occurred_at wins)
        sa.Column("target_kind", sa.String(16)),
        sa.Column("department", sa.String(100)),
        sa.Column("department_at", sa.DateTime(timezone=True)),
        sa.Column("department_seq", sa.Integer),
        sa.Column("dispatched_at", sa.DateTime(timezone=True)),
        sa.Column("deadline", sa.DateTime(timezone=True)),
        sa.Column("deadline_seq", sa.Integer, comment="sequence of the event that wrote deadline"),
        sa.Column("transfer_count", sa.Integer, nullable=False, server_default="0"),
        # from case.closed / case.status_recorded
        sa.Column("closed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.Column("source_status", sa.String(64)),
        # from case.dispatched / case.transitioned (latest transition by sequence wins)
        sa.Column("state", sa.String(24)),
        sa.Column("state_seq", sa.Integer),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("return_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("rework_count", sa.Integer, nullable=False, server_default="0"),
        # from case.supervised
        sa.Column("supervision_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("supervision_level", sa.Integer, nullable=False, server_default="0"),
        sa.Column("event_count", sa.Integer, nullable=False, server_default="0", comment="events folded into this row"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


def closed_loop_columns() -> list[sa.Column]:
    """The closed-loop columns of a fact table (module docstring), beside :func:`case_fact_columns`;
    fresh objects on every call."""
    return [
        sa.Column("urgency", sa.String(8)),
        sa.Column("accepted_at", sa.DateTime(timezone=True), comment="受理: the earliest sign of acceptance"),
        sa.Column("category_seq", sa.Integer, comment="sequence of the recategorization that wrote category_code"),
        sa.Column("final_closed_at", sa.DateTime(timezone=True), comment="the newest closure (closed_at: the first)"),
        sa.Column("close_seq", sa.Integer, comment="sequence of the newest closing transition"),
        sa.Column("reopen_seq", sa.Integer, comment="sequence of the newest reopen"),
        sa.Column("outcome", sa.String(24)),
        sa.Column("duplicate_of", sa.Uuid),
        sa.Column("outcome_seq", sa.Integer, comment="sequence of the step that wrote outcome"),
        sa.Column("reopen_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("recategorize_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("satisfaction", sa.String(24)),
        sa.Column("resident_resolved", sa.Boolean),
        sa.Column("callback_at", sa.DateTime(timezone=True)),
        sa.Column("callback_seq", sa.Integer, comment="sequence of the newest callback"),
    ]


def _has_closed_loop(cf: sa.Table) -> bool:
    return all(c.name in cf.c for c in closed_loop_columns())


def build_upserts(cf: sa.Table) -> dict[str, sa.Insert]:
    """The upsert statement of each folded event type for fact table ``cf`` (see module docstring);
    with the closed-loop rules when ``cf`` has :func:`closed_loop_columns`."""
    _ins = insert(cf)
    _x = _ins.excluded
    _state_newer = sa.or_(cf.c.state_seq.is_(None), _x.state_seq > cf.c.state_seq)
    # the deadline of the newest event (by sequence) that carries one; events without one never clear it
    _deadline_newer = sa.and_(_x.deadline_seq.is_not(None),
                              sa.or_(cf.c.deadline_seq.is_(None), _x.deadline_seq > cf.c.deadline_seq))
    _newer = sa.or_(cf.c.department_at.is_(None), sa.tuple_(_x.department_at, _x.department_seq) >= sa.tuple_(cf.c.department_at, cf.c.department_seq))

    SETS = {
        "case.reported": {
            "place_code": _x.place_code,
            "reported_at": _x.reported_at,
            "category_code": _x.category_code,
            "category_name": _x.category_name,
            "channel": _x.channel,
            "request_type": _x.request_type,
            "source": _x.source,
            "history": _x.history,
            "event_count": cf.c.event_count + 1,
            "updated_at": sa.func.now(),
        },
        "case.dispatched": {
            # Only dispatches write target_kind (a transfer keeps it), so the newest dispatch
            # wins, and any dispatch fills a row a transfer created first.
            "target_kind": sa.case((sa.or_(_newer, cf.c.target_kind.is_(None)), _x.target_kind), else_=cf.c.target_kind),
            "department": sa.case((_newer, _x.department), else_=cf.c.department),
            "department_seq": sa.case((_newer, _x.department_seq), else_=cf.c.department_seq),
            "department_at": sa.case((_newer, _x.department_at), else_=cf.c.department_at),
            "dispatched_at": sa.func.least(cf.c.dispatched_at, _x.dispatched_at),
            "deadline": sa.case((_deadline_newer, _x.deadline), else_=cf.c.deadline),
            "deadline_seq": sa.func.greatest(cf.c.deadline_seq, _x.deadline_seq),
            "state": sa.case((_state_newer, _x.state), else_=cf.c.state),
            "state_seq": sa.func.greatest(cf.c.state_seq, _x.state_seq),
            "event_count": cf.c.event_count + 1,
            "updated_at": sa.func.now(),
        },
        "case.transferred": {
            "department": sa.case((sa.and_(_x.department.is_not(None), _newer), _x.department), else_=cf.c.department),
            "department_seq": sa.case((sa.and_(_x.department.is_not(None), _newer), _x.department_seq), else_=cf.c.department_seq),
            "department_at": sa.case((sa.and_(_x.department.is_not(None), _newer), _x.department_at), else_=cf.c.department_at),
            "transfer_count": cf.c.transfer_count + 1,
            "event_count": cf.c.event_count + 1,
            "updated_at": sa.func.now(),
        },
        "case.closed": {
            "closed": True,
            "closed_at": _x.closed_at,
            "source_status": sa.func.coalesce(_x.source_status, cf.c.source_status),
            "event_count": cf.c.event_count + 1,
            "updated_at": sa.func.now(),
        },
        "case.transitioned": {
            "state": sa.case((_state_newer, _x.state), else_=cf.c.state),
            "state_seq": sa.func.greatest(cf.c.state_seq, _x.state_seq),
            "department": sa.case((sa.and_(_x.department.is_not(None), _newer), _x.department), else_=cf.c.department),
            "department_seq": sa.case((sa.and_(_x.department.is_not(None), _newer), _x.department_seq), else_=cf.c.department_seq),
            "department_at": sa.case((sa.and_(_x.department.is_not(None), _newer), _x.department_at), else_=cf.c.department_at),
            "target_kind": sa.case((sa.and_(_state_newer, _x.target_kind.is_not(None)), _x.target_kind), else_=cf.c.target_kind),
            "deadline": sa.case((_deadline_newer, _x.deadline), else_=cf.c.deadline),
            "deadline_seq": sa.func.greatest(cf.c.deadline_seq, _x.deadline_seq),
            "transfer_count": sa.func.greatest(cf.c.transfer_count, _x.transfer_count),
            "return_count": sa.func.greatest(cf.c.return_count, _x.return_count),
            "rework_count": sa.func.greatest(cf.c.rework_count, _x.rework_count),
            "supervision_level": sa.func.greatest(cf.c.supervision_level, _x.supervision_level),
            "acknowledged_at": sa.func.least(cf.c.acknowledged_at, _x.acknowledged_at),
            "resolved_at": sa.func.least(cf.c.resolved_at, _x.resolved_at),
            "closed": sa.or_(cf.c.closed, _x.closed),
            "closed_at": sa.func.least(cf.c.closed_at, _x.closed_at),  # the first closure
            "event_count": cf.c.event_count + 1,
            "updated_at": sa.func.now(),
        },
        "case.supervised": {
            "supervision_count": cf.c.supervision_count + 1,
            "supervision_level": sa.func.greatest(cf.c.supervision_level, _x.supervision_level),
            "event_count": cf.c.event_count + 1,
            "updated_at": sa.func.now(),
        },
        "case.status_recorded": {
            "source_status": sa.case((cf.c.closed, cf.c.source_status), else_=_x.source_status),
            "event_count": cf.c.event_count + 1,
            "updated_at": sa.func.now(),
        },
    }
    if _has_closed_loop(cf):
        for event_type, extra in _closed_loop_sets(cf, _x).items():
            SETS[event_type].update(extra)
    return {event_type: _ins.on_conflict_do_update(index_elements=[cf.c.case_id], set_=set_)
            for event_type, set_ in SETS.items()}


def unnest_upsert(upsert: sa.Insert, keys: tuple[str, ...]) -> sa.Insert:
    """``upsert`` (one of :func:`build_upserts`) for a whole group of rows at once: the same
    ``ON CONFLICT DO UPDATE``, the rows (with the columns ``keys``) sent as one array per column
    (``INSERT … SELECT … FROM unnest(…)``, parameters ``p0``, ``p1``, …). Only for rows of distinct
    cases: PostgreSQL updates a row once per statement, where the executemany of :func:`build_upserts`
    applies each event in turn (issue 13: one statement instead of one per event, and no
    per-row parameter processing)."""
    cf = upsert.table
    arrays = [sa.bindparam(f"p{i}", type_=pg.ARRAY(cf.c[key].type)) for i, key in enumerate(keys)]
    rows = sa.func.unnest(*arrays).table_valued(*(f"c{i}" for i in range(len(keys)))).render_derived(name="u")
    source = sa.select(*(rows.c[f"c{i}"] for i in range(len(keys))))
    conflict = upsert._post_values_clause
    return insert(cf).from_select(list(keys), source).on_conflict_do_update(
        index_elements=conflict.inferred_target_elements, set_=dict(conflict.update_values_to_set))


def _closed_loop_sets(cf: sa.Table, x) -> dict[str, dict]:
    """The closed-loop merge rules (module docstring), per event type, over the old row ``cf`` and
    the event's values ``x`` (``excluded``)."""
    def newer(seq: str) -> sa.ColumnElement[bool]:
        return sa.and_(x[seq].is_not(None), sa.or_(cf.c[seq].is_(None), x[seq] > cf.c[seq]))

    def by(seq: str, *columns: str) -> dict:
        return {**{c: sa.case((newer(seq), x[c]), else_=cf.c[c]) for c in columns},
                seq: sa.func.greatest(cf.c[seq], x[seq])}

    accepted = {"accepted_at": sa.func.least(cf.c.accepted_at, x.accepted_at)}
    recategorized = by("category_seq", "category_code", "category_name", "place_code")
    close_seq = sa.func.greatest(cf.c.close_seq, x.close_seq)
    reopen_seq = sa.func.greatest(cf.c.reopen_seq, x.reopen_seq)
    return {
        "case.reported": {
            **accepted,
            "urgency": x.urgency,
            # a recategorization wins over the report (module docstring)
            **{c: sa.case((cf.c.category_seq.is_(None), x[c]), else_=cf.c[c])
               for c in ("place_code", "category_code", "category_name")},
        },
        "case.dispatched": {**accepted, **recategorized},
        "case.transferred": accepted,
        "case.closed": {**accepted, "final_closed_at": x.final_closed_at},
        "case.status_recorded": accepted,
        "case.transitioned": {
            **accepted,
            **recategorized,
            **by("close_seq", "final_closed_at"),
            "reopen_seq": reopen_seq,
            "closed": sa.case((close_seq.is_(None), sa.or_(cf.c.closed, x.closed)),
                              else_=close_seq > sa.func.coalesce(reopen_seq, -1)),
            **by("outcome_seq", "outcome", "duplicate_of"),
            **by("callback_seq", "satisfaction", "resident_resolved", "callback_at"),
            "reopen_count": sa.func.greatest(cf.c.reopen_count, x.reopen_count),
            "recategorize_count": sa.func.greatest(cf.c.recategorize_count, x.recategorize_count),
        },
    }


def fact_values(ev: Event) -> dict:
    """The column values an event contributes to its case's fact row (insert form)."""
    row = {"case_id": ev.case_id, "tenant": ev.tenant, "place_code": ev.place_code, "event_count": 1}
    if isinstance(ev, CaseReported):
        row.update(
            reported_at=ev.reported_at,
            category_code=ev.category_code,
            category_name=ev.category_name,
            channel=ev.channel,
            request_type=ev.request_type,
            source=ev.source,
            history=ev.history is not None,
        )
    elif isinstance(ev, CaseDispatched):
        row.update(
            target_kind=ev.target_kind,
            department=ev.department,
            department_at=ev.occurred_at,
            # history: before its recorded transfers (1..n) at the same instant; live: ordered with
            # the case's transitions by sequence (a re-dispatch right after a return is newer)
            department_seq=0 if ev.history else 1000 + ev.sequence,
            dispatched_at=ev.occurred_at,
            deadline=ev.deadline,
            deadline_seq=ev.sequence if ev.deadline is not None else None,
            state=ev.state,
            state_seq=ev.sequence,
        )
    elif isinstance(ev, CaseTransferred):
        row.update(
            department=ev.to_department,
            department_at=ev.occurred_at if ev.to_department else None,
            department_seq=ev.sequence if ev.to_department else None,
            transfer_count=1,
        )
    elif isinstance(ev, CaseClosed):
        row.update(closed=True, closed_at=ev.closed_at, source_status=ev.source_status)
    elif isinstance(ev, CaseStatusRecorded):
        row.update(source_status=ev.source_status)
    elif isinstance(ev, CaseTransitioned):
        closing = is_closing(ev)
        row.update(
            state=ev.to_state,
            state_seq=ev.sequence,
            department=ev.department,
            # transitions come after the first dispatch (sequence ≥ 2) and after recorded transfers
            department_at=ev.occurred_at if ev.department else None,
            department_seq=1000 + ev.sequence if ev.department else None,
            target_kind=ev.target_kind,
            deadline=ev.deadline,
            deadline_seq=ev.sequence if ev.deadline is not None else None,
            transfer_count=ev.transfer_count,
            return_count=ev.return_count,
            rework_count=ev.rework_count,
            supervision_level=ev.supervision_level,
            acknowledged_at=ev.occurred_at if ev.to_state == "acknowledged" else None,
            resolved_at=ev.occurred_at if ev.to_state == "resolved" else None,
            closed=closing,
            closed_at=ev.occurred_at if closing else None,
        )
    elif isinstance(ev, CaseSupervised):
        row.update(supervision_count=1, supervision_level=ev.level)
    return row


#: States that end a case (closed, 不予受理 rejected, 作废 cancelled): the step into one records the outcome.
ENDING_STATES: frozenset[str] = frozenset({"closed", "rejected", "cancelled"})


def is_closing(ev: CaseTransitioned) -> bool:
    """A closure (办结): a transition into ``closed`` from another state (a callback, closed→closed,
    is not one)."""
    return ev.to_state == "closed" and ev.from_state != "closed"


def closed_loop_values(ev: Event) -> dict:
    """The closed-loop column values (:func:`closed_loop_columns`) an event contributes (insert
    form); the same keys for every event of a type."""
    if isinstance(ev, CaseReported):
        auto = ev.history is not None or ev.channel in AUTO_ACCEPTED_CHANNELS
        return {"urgency": ev.urgency, "accepted_at": ev.reported_at if auto else None}
    if isinstance(ev, CaseDispatched):
        return {"accepted_at": ev.occurred_at, **_category(ev, ev.category_code)}
    if isinstance(ev, (CaseTransferred, CaseStatusRecorded)):
        return {"accepted_at": ev.occurred_at}  # recorded by a source: the case was accepted there
    if isinstance(ev, CaseClosed):
        return {"accepted_at": ev.occurred_at, "final_closed_at": ev.closed_at}
    if isinstance(ev, CaseTransitioned):
        closing, ending, callback = is_closing(ev), ev.to_state in ENDING_STATES and ev.from_state != ev.to_state, \
            ev.action == "callback"
        return {
            "accepted_at": ev.occurred_at if ev.action == "accept" or ev.from_state != "reported" else None,
            **_category(ev, ev.category_code),
            "close_seq": ev.sequence if closing else None,
            "final_closed_at": ev.occurred_at if closing else None,
            "reopen_seq": ev.sequence if ev.action == "reopen" else None,
            "outcome_seq": ev.sequence if ending else None,
            "outcome": ev.outcome if ending else None,
            "duplicate_of": ev.duplicate_of if ending else None,
            "callback_seq": ev.sequence if callback else None,
            "satisfaction": ev.satisfaction if callback else None,
            "resident_resolved": ev.resident_resolved if callback else None,
            "callback_at": ev.occurred_at if callback else None,
            "reopen_count": ev.reopen_count,
            "recategorize_count": ev.recategorize_count,
        }
    return {}


def _category(ev: CaseDispatched | CaseTransitioned, code: str | None) -> dict:
    """A recategorization's category (its place is the envelope's, already in the row)."""
    return {"category_seq": ev.sequence if code else None, "category_code": code, "category_name": None}


class CaseFold:
    """Applies events to one fact table, and optionally a patrols table and a steps table
    (:func:`shared.domain.casesteps.case_step_columns`). The closed-loop rules apply when the fact
    table has :func:`closed_loop_columns`."""

    def __init__(self, table: sa.Table, patrols: sa.Table | None = None, steps: sa.Table | None = None) -> None:
        self.table = table
        self.patrols = patrols
        self.steps = steps
        self.closed_loop = _has_closed_loop(table)
        self.upserts = build_upserts(table)
        self._unnest: dict[tuple[str, tuple[str, ...]], sa.Insert] = {}  # (event type, columns) -> unnest_upsert

    def values(self, ev: Event) -> dict:
        """The fact row values of ``ev`` for this table."""
        row = fact_values(ev)
        if self.closed_loop:
            row.update(closed_loop_values(ev))
        return row

    async def __call__(self, conn: AsyncConnection, events: list[Event]) -> None:
        """Fold ``events`` (each new to this consumer) in the caller's transaction.

        Events are grouped by type and each group is sent as one executemany; the merge rules above
        make the order of groups irrelevant.
        """
        groups: dict[str, list[dict]] = defaultdict(list)
        patrol_rows, step_rows = [], []
        for ev in events:
            if isinstance(ev, PatrolRecorded):
                patrol_rows.append(
                    {"patrol_id": ev.case_id, "tenant": ev.tenant, "place_code": ev.place_code, "kind": ev.kind,
                     "points": ev.points, "started_at": ev.started_at, "findings": len(ev.findings)}
                )
            elif ev.event_type in self.upserts:
                groups[ev.event_type].append(self.values(ev))
                step = step_values(ev)
                if step is not None:
                    step_rows.append(step)
            # other events (commands, rejected actions) carry no statistics
        if patrol_rows and self.patrols is not None:
            await conn.execute(insert(self.patrols).on_conflict_do_nothing(), patrol_rows)
        if step_rows and self.steps is not None:
            await conn.execute(insert(self.steps).on_conflict_do_nothing(), step_rows)
        for event_type, rows in groups.items():
            keys = tuple(rows[0])
            if len(rows) > 1 and len({row["case_id"] for row in rows}) == len(rows) and all(tuple(row) == keys for row in rows):
                # distinct cases, the same columns: one statement (unnest_upsert), the same result
                statement = self._unnest.get((event_type, keys))
                if statement is None:
                    statement = self._unnest[(event_type, keys)] = unnest_upsert(self.upserts[event_type], keys)
                await conn.execute(statement, {f"p{i}": [row[key] for row in rows] for i, key in enumerate(keys)})
            else:  # a case twice in the group: each event in turn
                await conn.execute(self.upserts[event_type], rows)
