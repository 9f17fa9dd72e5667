"""Dispatch's HTTP routes, one router per resource (``main.py`` includes them)."""
