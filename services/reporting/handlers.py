"""Reporting's event handler: the fold of every case and patrol event into
``reporting.case_facts``, ``reporting.case_steps`` and ``reporting.patrols`` (services/reporting/db.py).

The merge rules live in :mod:`shared.domain.casefacts` (shared with intake's case view); the
consumer (services/reporting/main.py) hands each batch to :data:`apply_events` in one
transaction, and ``gridcase reporting rebuild`` (gridcase/ops.py) folds the event log with it.
"""

import hashlib
from collections.abc import Callable
from datetime import tzinfo
from functools import lru_cache

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.db import case_facts, case_steps, case_texts, patrols
from services.reporting.kpis.rollup_fold import apply_rollups
from services.reporting.step_rollup import StepFold
from shared.contract.events import CaseReported
from shared.domain.casefacts import CaseFold
from shared.domain.tenants import load_all_tenants
from shared.domain.workcalendar import DEFAULT_TZ

fold = CaseFold(case_facts, patrols, case_steps)

#: Characters of a case's text kept for hot issues (enough to group by; the events carry up to 4000).
TEXT_MAX = 1000


def reporter_key(ev: CaseReported) -> str | None:
    """Who reported, only as far as hot issues need it: the SHA-256 of the pseudonymous
    ``reporter_ref`` with the tenant, the community (place code cut to 12 digits) and the month of
    the report, first 32 hex digits. Equal for one reporter's reports in one community and month
    (the distinct reporters of a hot issue, shared/domain/hotspots.py), unrelated across
    communities and months, and not the reference intake's and the topics' records carry: reporting
    keeps no reporter reference (issue 16). Forgotten on erasure (services/reporting/erasure.py)."""
    if not ev.reporter_ref:
        return None
    scope = "\x1f".join((ev.reporter_ref, ev.tenant, ev.place_code[:12], f"{ev.reported_at:%Y-%m}"))
    return hashlib.sha256(scope.encode("utf-8")).hexdigest()[:32]


def text_row(ev: CaseReported) -> dict:
    return {"case_id": ev.case_id, "tenant": ev.tenant, "place_code": ev.place_code, "category_code": ev.category_code,
            "reported_at": ev.reported_at, "reporter_key": reporter_key(ev), "description": ev.description[:TEXT_MAX]}


def zones_of(tenants: dict) -> Callable[[str], tzinfo]:
    """The time zone of each tenant of ``tenants`` (``{name: TenantConfig}``), the default zone for
    any other: the zone the KPI rollups cut days in (services/reporting/kpis/cells.py)."""
    zones = {name: config.tzinfo for name, config in tenants.items()}
    return lambda tenant: zones.get(tenant, DEFAULT_TZ)


@lru_cache(maxsize=1)
def default_zones() -> Callable[[str], tzinfo]:
    """:func:`zones_of` the tenants of the default tenants directory."""
    return zones_of(load_all_tenants())


async def apply_events(conn: AsyncConnection, events: list, tz_of: Callable[[str], tzinfo] | None = None,
                       exclusive: bool = False) -> None:
    """Fold events in the caller's transaction, with the KPI rollups (services/reporting/kpis/rollup_fold.py;
    ``tz_of``: each tenant's time zone, default :func:`default_zones`); a ``CaseReported`` also keeps
    its masked text (``reporting.case_texts``, once per case); the step cells follow the touched cases
    (services/reporting/step_rollup.py). The step fold goes first: its transaction-scoped locks on
    the touched case ids serialize two consumers folding one case (a case's events arrive on two
    topics), which the before/after reads rely on. The touched cases are read once before the fold
    (fact rows ``FOR UPDATE``, with their steps) and once after, and both rollups take their
    differences from these two reads. ``exclusive``: the caller folds the
    whole log in one transaction (``gridcase reporting rebuild``), so one exclusive fold lock stands
    for the case locks, which would fill PostgreSQL's lock table."""
    steps = await StepFold.start(conn, events, exclusive)
    await fold(conn, events)
    if steps.ids:
        await steps.read_after(conn)
        await apply_rollups(conn, steps.ids, StepFold.facts(steps.before), StepFold.facts(steps.after),
                            tz_of or default_zones())
        await steps.finish(conn)
    texts = [text_row(ev) for ev in events if isinstance(ev, CaseReported)]
    if texts:
        await conn.execute(insert(case_texts).on_conflict_do_nothing(), texts)
