"""Dispatch's settings (environment prefix ``DISPATCH_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.platform.settings import ServiceSettings


class DispatchSettings(ServiceSettings):
    """Dispatch settings (prefix ``DISPATCH_``): HTTP port (health, metrics, progress), consumer group, rate limit."""

    model_config = SettingsConfigDict(env_prefix="DISPATCH_", env_file=".env", extra="ignore")

    port: int = 8002
    group_id: str = "gridcase-dispatch"
    timer_interval_seconds: float = Field(default=1.0, description="how often due deadline timers are checked")
    test_clock: bool = Field(default=False, description="expose POST /v1/test/clock/advance (tests only)")
    relay_batch: int = 500
    relay_idle_seconds: float = Field(
        default=0.2, description="outbox poll interval while the relay cannot LISTEN (database away)")
    relay_poll_seconds: float = Field(
        default=5.0, description="fallback outbox poll while the relay LISTENs (it wakes on every commit)")
