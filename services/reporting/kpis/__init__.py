"""KPIs of a period P over ``reporting.case_facts`` and ``reporting.case_steps`` (docs/domain.md §3(e),
docs/kpis.md), each formula in one place.

Every figure is defined exactly once: the per-case rule that decides whether a case counts (a SQL
fragment in :data:`~services.reporting.kpis.rules.EVENT_RULES` / ``STATE_RULES`` / ``TIME_RULES``
over the per-case columns of ``CASE_COLUMNS``; ``DUPLICATE_RULES`` over the merged duplicates, which
every other rule leaves out) or the per-event rule that decides which step counts
and against which department (``STEP_RULES``), and the arithmetic that turns counts into rates (a
pure function of :mod:`services.reporting.kpis.formulas`). The work-summary paragraph
(docs/seeds.md block A) and the CSV/XLSX exports are filled from the same rows.

Where each part lives (one reason to change each):

- :mod:`~services.reporting.kpis.catalogue`: the KPI columns (names, zh/en labels, units) and
  the ``group_by`` values;
- :mod:`~services.reporting.kpis.formulas`: rates and derived columns from raw counts;
- :mod:`~services.reporting.kpis.clock`: working hours (the working clock, in Python and in SQL);
- :mod:`~services.reporting.kpis.periods`: P's sub-periods (bounds, labels, bucket arithmetic);
- :mod:`~services.reporting.kpis.rules`: the per-case and per-event SQL rules of every KPI;
- :mod:`~services.reporting.kpis.sql`: the two statements assembled from the rules;
- :mod:`~services.reporting.kpis.queries`: running them (the KPI table of ``GET /v1/kpis``);
- :mod:`~services.reporting.kpis.case_lists`: the overdue and supervised case lists;
- :mod:`~services.reporting.kpis.summary`: the Chinese work-summary paragraph (``/v1/summary``);
- :mod:`~services.reporting.kpis.export`: CSV and XLSX.

Which cases are asked about (tenant, P, place, category, department) is a
:class:`services.reporting.filters.CaseFilter`, the same type the statistics of ``/v1/stats`` take.

Seed A check (docs/seeds.md block A: 办结率 67.36 % = 3644 / 5410): seed A's records are history
imports without a deadline, reported on weekdays from 2026-03-02 for 13 weeks, the closed ones
closed within that time. Over the campaign period P = [2026-03-02, 2026-06-01) +08:00 (or with P
open), 应办结 = the 3644 closed in P + the 1766 open ones, due because they have no deadline and
were reported in P = 5410 (none is shelved); 办结 = 3644; 办结率 = 3644 / 5410 = 67.36 %, which
the summary states as 67.4 %.
"""
