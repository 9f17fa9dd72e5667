"""Reporting: folds every case event into per-case facts and serves statistics, KPIs, case lists,
exports and the dashboard.

- ``main.py``: builds the app (``create_app``) with the service kit; ``settings.py``.
- ``handlers.py``: the fold of events into ``db.py``'s tables; ``metrics.py``: the case gauges.
- ``api/``: one router per resource; ``dependencies.py``: their shared parameters and scope.
- ``filters.py``: which cases a query is about; ``stats.py``: ``/v1/stats`` and friends;
  ``kpis/``: the KPIs (catalogue, formulas, clock, periods, rules, SQL, queries, case lists,
  summary, export); ``labels.py``: names of group keys; ``dashboard.py`` and ``static/``: the page.
"""
