"""Intake's HTTP API, one router per resource: ``reports``, ``patrols``, ``cases`` (a case and its
audit trail), ``actions`` (on a case), ``imports``, and ``health`` (no credential needed). Open311
has its own package (services/intake/open311/)."""
