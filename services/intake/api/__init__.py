"""Intake's HTTP API, one router per resource: ``reports``, ``patrols``, ``cases`` (a case and its
audit trail), ``actions`` (asked for on a case, and their status), ``imports``. Open311 has its
own package (services/intake/open311/); ``GET /health`` and ``GET /metrics`` come with the
service kit."""
