"""Reporting's schema ``reporting``: one fact row per case and one row per step of a case, folded
from events as they arrive (services/reporting/handlers.py), and the patrols; :data:`MIGRATIONS`
creates them.

The merge rules are commutative (``shared/domain/casefacts.py``) and a step is inserted once
(``shared/domain/casesteps.py``), so events may arrive late, out of order or twice and the rows
still end the same.
"""

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from services.reporting.kpis.cell_columns import COUNTERS as CELL_COUNTERS
from services.reporting.kpis.cell_columns import SPAN_COUNTERS
from shared.domain.casefacts import case_fact_columns, closed_loop_columns
from shared.domain.casesteps import case_step_columns
from shared.platform.db import NAMING_CONVENTION, processed_events_table
from shared.platform.tally import tally_table

SCHEMA = "reporting"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"

#: When a case stops being open: its newest close time (no close time: the report time; never before
#: the report), or +infinity while open (a reopened case is open again). Indexed with the tenant (below) so that the cases alive in a
#: period ``[b0, bn)`` (``LIFETIME_END >= b0 AND reported_at < bn``, services/reporting/kpis/rules.py)
#: are one index range. Written line by line as PostgreSQL prints it (``pg_get_indexdef``):
#: Alembic's autogenerate compares index expressions as text and would otherwise propose to drop
#: and re-create the index in every new migration.
LIFETIME_END = ("(\nCASE\n    WHEN closed THEN GREATEST(COALESCE(final_closed_at, closed_at, reported_at), reported_at)\n"
                "    ELSE 'infinity'::timestamp with time zone\nEND)")
metadata = sa.MetaData(schema=SCHEMA, naming_convention=NAMING_CONVENTION)

case_facts = sa.Table(
    "case_facts",
    metadata,
    sa.Column("case_id", pg.UUID(as_uuid=True), primary_key=True),
    *case_fact_columns(),
    *closed_loop_columns(),
    sa.Index("ix_reporting_case_facts_tenant_reported", "tenant", "reported_at"),
    sa.Index("ix_reporting_case_facts_tenant_place", "tenant", "place_code"),
    # KPI queries (services/reporting/kpis/): the cases alive in a period, and the case lists.
    sa.Index("ix_reporting_case_facts_tenant_lifetime", "tenant", sa.text(LIFETIME_END), "reported_at"),
    sa.Index("ix_reporting_case_facts_tenant_open_deadline", "tenant", "deadline", postgresql_where=sa.text("NOT closed")),
    sa.Index("ix_reporting_case_facts_tenant_supervised", "tenant", "supervision_level", "deadline",
             postgresql_where=sa.text("supervision_level > 0")),
)

#: reported cases and events applied per tenant, as deltas appended by triggers on ``case_facts``
#: (shared/platform/tally.py; migration 7d3e5b9a0c61): ``GET /v1/progress`` without a scan
case_tally = tally_table(metadata, "case_tally", ["reported_cases", "events_applied"], "case_facts")

case_steps = sa.Table(
    "case_steps",
    metadata,
    sa.Column("case_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("sequence", sa.Integer, primary_key=True),
    *case_step_columns(),
    # step KPIs (services/reporting/kpis/steps.py): the cases with a step in a period
    sa.Index("ix_reporting_case_steps_tenant_at", "tenant", "at"),
)

patrols = sa.Table(
    "patrols",
    metadata,
    sa.Column("patrol_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("tenant", sa.String(40), nullable=False),
    sa.Column("place_code", sa.String(24), nullable=False),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("points", sa.Integer, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("findings", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_reporting_patrols_tenant_started", "tenant", "started_at"),
)

#: The masked text of each case, for hot issues (issue 15; shared/domain/hotspots.py): the masked
#: description ``CaseReported`` carries and a reporter key derived from its pseudonymous reference
#: (services/reporting/handlers.py ``reporter_key``; only to count distinct reporters, never shown,
#: forgotten on erasure: services/reporting/erasure.py).
case_texts = sa.Table(
    "case_texts",
    metadata,
    sa.Column("case_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("tenant", sa.String(40), nullable=False),
    sa.Column("place_code", sa.String(24), nullable=False),
    sa.Column("category_code", sa.String(64)),
    sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reporter_key", sa.String(32), comment="the reporter within one community and month (services/reporting/handlers.py reporter_key)"),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Index("ix_reporting_case_texts_tenant_reported", "tenant", "reported_at"),
    comment="masked case texts for hot issues (services/reporting/hotspots.py)",
)


# --------------------------------------------------------------------------- KPI rollups (issue 14)
# The additive cells of services/reporting/kpis/cells.py, kept by the fold in the facts'
# transaction (services/reporting/kpis/rollup_fold.py) and read by services/reporting/kpis/rollup_query.py.


def _cell_dims() -> list[sa.Column]:
    return [sa.Column("tenant", sa.String(40), nullable=False),
            sa.Column("place_code", sa.String(24), nullable=False),
            sa.Column("category_code", sa.String(64)),
            sa.Column("department", sa.String(100)),
            sa.Column("channel", sa.String(64))]


def _counter(name: str) -> sa.Column:
    # sums of microseconds need 64 bits; counts fit 32
    return sa.Column(name, sa.BigInteger if name.endswith("us") else sa.Integer, nullable=False, server_default="0")


kpi_cells = sa.Table(
    "kpi_cells",
    metadata,
    *_cell_dims(),
    sa.Column("day", sa.Date, nullable=False, comment="local day (tenant's time zone) of the counted moment"),
    sa.Column("lo", sa.Date, comment="close day, when before day (the case must not be closed before P)"),
    sa.Column("hi", sa.Date, comment="report day, when after day (the case must be reported before P ends)"),
    *[_counter(name) for name in CELL_COUNTERS],
    sa.Index("ux_reporting_kpi_cells_key", "tenant", "day", "place_code", "category_code", "department", "channel",
             "lo", "hi", unique=True, postgresql_nulls_not_distinct=True),
    comment="KPI rollups: additive cells per tenant, local day, place, category, department, channel",
)

kpi_spans = sa.Table(
    "kpi_spans",
    metadata,
    *_cell_dims(),
    sa.Column("day", sa.Date, nullable=False, comment="first day: due day (应办结), report day (在办), overdue day"),
    sa.Column("hi", sa.Date, comment="report day, when after a due day"),
    sa.Column("close_day", sa.Date, nullable=False, comment="close day; 9999-12-31 while open"),
    *[_counter(name) for name in SPAN_COUNTERS],
    # led by the close day: a period reads the spans that end in or after it (the open ones and the
    # recent), not the whole history
    sa.Index("ux_reporting_kpi_spans_key", "tenant", "close_day", "day", "place_code", "category_code", "department",
             "channel", "hi", unique=True, postgresql_nulls_not_distinct=True),
    comment="KPI rollups: spans from a first day to the close day (应办结's open part, 在办, 超期 open)",
)

kpi_sketches = sa.Table(
    "kpi_sketches",
    metadata,
    *_cell_dims(),
    sa.Column("day", sa.Date, nullable=False, comment="the cell's day (kpi_cells.day)"),
    sa.Column("lo", sa.Date, comment="the cell's lo (kpi_cells.lo)"),
    sa.Column("hi", sa.Date, comment="the cell's hi (kpi_cells.hi)"),
    sa.Column("b", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb"),
              comment='{"<statistic>:<bucket>": count}: statistic <prefix>_hours or <prefix>_working_hours (rules.py '
                      "TIME_RULES), bucket the ddsketch LogarithmicMapping(0.01) key of the hours, -2147483648 for zero "
                      "(services/reporting/kpis/sketch.py); no zero counts"),
    sa.Index("ux_reporting_kpi_sketches_key", "tenant", "day", "place_code", "category_code", "department", "channel",
             "lo", "hi", unique=True, postgresql_nulls_not_distinct=True),
    comment="KPI rollups: per cell, the quantile sketches' counts per time statistic and bucket",
)

kpi_zones = sa.Table(
    "kpi_zones",
    metadata,
    sa.Column("tenant", sa.String(40), primary_key=True),
    sa.Column("tz", sa.String(64), nullable=False, comment="time zone of the tenant's cells; '' if mixed"),
    comment="KPI rollups: the time zone each tenant's cells were cut in",
)

# The same rollups by month, projected onto a few dimensions at a time (cuboids;
# services/reporting/kpis/cuboids.py): what a dashboard asks of a month, a quarter or a year reads a
# few thousand rows instead of a cell per case and day. Same columns as the day tables, ``day``
# (``lo``, ``hi``, ``close_day``) the first day of the month (an open case's close day stays
# 9999-12-31), plus the cuboid; the dimensions a cuboid drops are NULL.


def _cuboid() -> sa.Column:
    return sa.Column("cuboid", sa.SmallInteger, nullable=False,
                     comment="services/reporting/kpis/cuboids.py CUBOIDS: which dimensions the row keeps")


def _month_cell_key(table: str) -> list:
    """The key columns of a month cell (``kpi_month_cells``, ``kpi_month_sketches``) and its index."""
    return [_cuboid(), *_cell_dims(),
            sa.Column("day", sa.Date, nullable=False, comment="first day of the month (kpi_cells.day's month)"),
            sa.Column("lo", sa.Date, comment="kpi_cells.lo's month"),
            sa.Column("hi", sa.Date, comment="kpi_cells.hi's month"),
            sa.Index(f"ux_reporting_{table}_key", "tenant", "cuboid", "day", "place_code", "category_code",
                     "department", "channel", "lo", "hi", unique=True, postgresql_nulls_not_distinct=True)]


kpi_month_cells = sa.Table(
    "kpi_month_cells",
    metadata,
    *_month_cell_key("kpi_month_cells"),
    *[_counter(name) for name in CELL_COUNTERS],
    comment="KPI rollups by month and cuboid (sums of kpi_cells)",
)

kpi_month_spans = sa.Table(
    "kpi_month_spans",
    metadata,
    _cuboid(),
    *_cell_dims(),
    sa.Column("day", sa.Date, nullable=False, comment="kpi_spans.day's month"),
    sa.Column("hi", sa.Date, comment="kpi_spans.hi's month"),
    sa.Column("close_day", sa.Date, nullable=False, comment="kpi_spans.close_day's month; 9999-12-31 while open"),
    *[_counter(name) for name in SPAN_COUNTERS],
    sa.Index("ux_reporting_kpi_month_spans_key", "tenant", "cuboid", "close_day", "day", "place_code", "category_code",
             "department", "channel", "hi", unique=True, postgresql_nulls_not_distinct=True),
    comment="KPI rollups: the spans by month and cuboid (sums of kpi_spans)",
)

kpi_month_sketches = sa.Table(
    "kpi_month_sketches",
    metadata,
    *_month_cell_key("kpi_month_sketches"),
    sa.Column("b", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb"),
              comment="as kpi_sketches.b, summed over the month and the dimensions the cuboid drops"),
    sa.Column("q", pg.ARRAY(sa.Float), comment="median and p90 of b per statistic (services/reporting/kpis/sketch.py "
              "summary, order cell_columns.SKETCH_STATS), kept by the fold; NULL: not yet, read b"),
    comment="KPI rollups: the quantile sketches by month and cuboid",
)

processed_events = processed_events_table(metadata, SCHEMA)

# --------------------------------------------------------------------------- step rollups (issue 14)
#: The per-event figures as additive cells (services/reporting/kpis/step_cells.py, folded by
#: services/reporting/step_rollup.py): one counter per ``sum`` figure of STEP_RULES (their names;
#: tests/unit/test_step_cells.py checks the list), ``mediation_hours`` as a sum of microseconds and a
#: count, ``events`` every counted event of the cell. NULL is a key value like any other (a case
#: without a category, an event without a department): NULLS NOT DISTINCT.
STEP_CELL_KEY = ("tenant", "day", "place_code", "category_code", "department", "channel", "rung")
STEP_CELL_COUNTERS = ("events", "transfers_out", "transfers_in", "dispatches", "inaccurate_dispatches", "returned",
                      "recategorized", "handovers", "responded", "callbacks", "callbacks_unreachable",
                      "callbacks_satisfied", "callbacks_rated", "callbacks_resolved", "reopened", "escalations",
                      "mediation_agreements", "mediation_escalations", "mediation_handoffs", "mediation_hours_us",
                      "mediation_hours_n")


def _step_key_columns() -> list[sa.Column]:
    return [sa.Column("tenant", sa.String(40), nullable=False), sa.Column("day", sa.Date, nullable=False),
            sa.Column("place_code", sa.String(24), nullable=False), sa.Column("category_code", sa.String(64)),
            sa.Column("department", sa.String(100)), sa.Column("channel", sa.String(64)),
            sa.Column("rung", sa.String(16))]


step_cells = sa.Table(
    "step_cells",
    metadata,
    *_step_key_columns(),
    *[sa.Column(c, sa.BigInteger if c.endswith("_us") else sa.Integer, nullable=False, server_default="0")
      for c in STEP_CELL_COUNTERS],
    sa.Index("ux_reporting_step_cells_key", *STEP_CELL_KEY, unique=True, postgresql_nulls_not_distinct=True),
    comment="per-event KPI cells: tenant x local day x grid x category x department x channel x rung",
)

#: The same counters per tenant × local day × department × rung only: what a request without a
#: place, category or channel (grouping or filter) reads, a few rows per day whatever the volume.
STEP_DAY_CELL_KEY = ("tenant", "day", "department", "rung")
step_day_cells = sa.Table(
    "step_day_cells",
    metadata,
    sa.Column("tenant", sa.String(40), nullable=False), sa.Column("day", sa.Date, nullable=False),
    sa.Column("department", sa.String(100)), sa.Column("rung", sa.String(16)),
    *[sa.Column(c, sa.BigInteger if c.endswith("_us") else sa.Integer, nullable=False, server_default="0")
      for c in STEP_CELL_COUNTERS],
    sa.Index("ux_reporting_step_day_cells_key", *STEP_DAY_CELL_KEY, unique=True, postgresql_nulls_not_distinct=True),
    comment="per-event KPI cells summed over places, categories and channels: tenant x local day x department x rung",
)

#: The 'cases' figures (escalated, mediated) as case days (services/reporting/kpis/step_cells.py):
#: ``cases`` cases had such an event on ``day`` and the previous one on ``prev_day`` (NULL: none).
STEP_CASE_DAY_KEY = ("tenant", "figure", "day", "by_department", "by_rung", "department", "rung", "place_code",
                     "category_code", "channel", "prev_day")
step_case_days = sa.Table(
    "step_case_days",
    metadata,
    *_step_key_columns(),
    sa.Column("figure", sa.String(32), nullable=False),
    sa.Column("prev_day", sa.Date),
    sa.Column("by_department", sa.Boolean, nullable=False),
    sa.Column("by_rung", sa.Boolean, nullable=False),
    sa.Column("cases", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ux_reporting_step_case_days_key", *STEP_CASE_DAY_KEY, unique=True, postgresql_nulls_not_distinct=True),
    comment="first-in-period case days of the per-event 'cases' KPIs",
)

#: The step cells by month in the cuboids 0–3 (services/reporting/kpis/step_cuboids.py): what a
#: request of whole months that keeps a place, category or channel reads instead of ``step_cells``.
STEP_MONTH_CELL_KEY = ("cuboid", "tenant", "day", "place_code", "category_code", "department", "channel", "rung")
step_month_cells = sa.Table(
    "step_month_cells",
    metadata,
    sa.Column("cuboid", sa.SmallInteger, nullable=False),
    *_step_key_columns(),
    *[sa.Column(c, sa.BigInteger if c.endswith("_us") else sa.Integer, nullable=False, server_default="0")
      for c in STEP_CELL_COUNTERS],
    sa.Index("ux_reporting_step_month_cells_key", *STEP_MONTH_CELL_KEY, unique=True,
             postgresql_nulls_not_distinct=True),
    comment="per-event KPI cells by month: cuboid (0 grid, 1 community x category, 2 community x department, "
            "3 community x channel) x tenant x month x rung",
)

#: The case days by month in the cuboids 0–3 and by day in cuboid 10 (tenant × day × department ×
#: rung; services/reporting/kpis/step_cuboids.py).
STEP_MONTH_CASE_DAY_KEY = ("cuboid", "tenant", "figure", "day", "prev_day", "by_department", "by_rung", "department",
                           "rung", "place_code", "category_code", "channel")
step_month_case_days = sa.Table(
    "step_month_case_days",
    metadata,
    sa.Column("cuboid", sa.SmallInteger, nullable=False),
    *_step_key_columns(),
    sa.Column("figure", sa.String(32), nullable=False),
    sa.Column("prev_day", sa.Date),
    sa.Column("by_department", sa.Boolean, nullable=False),
    sa.Column("by_rung", sa.Boolean, nullable=False),
    sa.Column("cases", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ux_reporting_step_month_case_days_key", *STEP_MONTH_CASE_DAY_KEY, unique=True,
             postgresql_nulls_not_distinct=True),
    comment="first-in-period case days of the per-event 'cases' KPIs by month (cuboids 0-3) and by tenant x day (10)",
)

#: The timezone each tenant's step cells are computed in (their days): the readers use the cells
#: only for a request in that zone.
step_cell_zones = sa.Table(
    "step_cell_zones",
    metadata,
    sa.Column("tenant", sa.String(40), primary_key=True),
    sa.Column("timezone", sa.String(64), nullable=False),
)
