"""Intake's rules, free of I/O: how a report becomes a case (reports.py), what of it is personal
and how that is kept (privacy.py), which actions may be asked for (actions.py), what the audit
trail records (audit.py) and the taxonomy they name (taxonomy.py)."""
