"""Reporting's settings (environment prefix ``REPORTING_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.platform.settings import ServiceSettings


class ReportingSettings(ServiceSettings):
    """Reporting settings (prefix ``REPORTING_``): HTTP port, consumer group, rate limit, and
    ``dashboard_opening`` (``REPORTING_DASHBOARD_OPENING``): the tenant the dashboard opens on for
    a caller who sees it (default: the caller's tenant with the most recent case,
    services/reporting/dashboard.py ``opening_tenant``)."""

    model_config = SettingsConfigDict(env_prefix="REPORTING_", env_file=".env", extra="ignore")

    port: int = 8003
    group_id: str = "gridcase-reporting"
    dashboard_opening: str = ""
