"""Intake's rules, free of I/O: how a report becomes a case (reports.py), what of it is personal
and how that is kept (privacy.py), what the audit trail records (audit.py) and the taxonomy they
name (taxonomy.py). Which actions may be asked for is the contract's (shared/contract/actions.py)
and whether one is legal now dispatch's alone."""
