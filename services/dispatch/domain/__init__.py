"""Dispatch's pure rules (no I/O): the case state machine, routing, what a report becomes, deadlines."""
