"""Reporting's HTTP API, one router per resource (each module's ``router``), included by
services/reporting/main.py: ``/v1/stats``, ``/v1/patrols``, ``/v1/kpis`` (and its exports),
``/v1/cases/…``, ``/v1/summary``, ``/v1/progress``. Shared parameters and the caller's scope:
services/reporting/dependencies.py."""
