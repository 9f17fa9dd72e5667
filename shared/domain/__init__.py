"""Domain rules shared by the services: taxonomy, tenants and places, the work calendar, PII
masking, and the fold of a case's events into its facts. Pure code, no I/O beyond loading config data."""
