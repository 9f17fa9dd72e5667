"""Settings: pydantic-settings classes read from the environment (and an optional ``.env``).

Connection settings shared by every service have no prefix, so one environment serves the whole
stack and docker-compose: ``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``. Everything else is read with
one prefix per service (``INTAKE_``, ``DISPATCH_``, ``REPORTING_``), e.g. ``INTAKE_PORT``.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Base class of every service's settings.

    - ``kafka_bootstrap_servers``: ``host:port[,host:port]`` (env ``KAFKA_BOOTSTRAP_SERVERS``).
    - ``database_url``: SQLAlchemy URL, ``postgresql+asyncpg://…`` or ``postgresql://…`` (the
      driver is added), env ``DATABASE_URL``.
    - ``tenants_dir``: folder of ``<tenant>.yaml`` files (env ``GRIDCASE_TENANTS_DIR``); empty =
      the repository's ``deploy/tenants``.
    - ``jwt_secret`` (``GRIDCASE_JWT_SECRET``), ``auth_cache_seconds``
      (``GRIDCASE_AUTH_CACHE_SECONDS``): credentials, see shared/authstore.py.
    - ``rate_limit`` (``<PREFIX>_RATE_LIMIT``): requests per credential and wrong credentials per
      client address (shared/authhttp.py ``RateLimiter``).
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    kafka_bootstrap_servers: str = Field(default="127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    database_url: str = Field(
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/gridcase", validation_alias="DATABASE_URL"
    )
    tenants_dir: str = Field(default="", validation_alias="GRIDCASE_TENANTS_DIR")
    jwt_secret: str = Field(default="", validation_alias="GRIDCASE_JWT_SECRET",
                            description="HS256 secret of bearer tokens (shared/authstore.py); empty: API keys only")
    auth_cache_seconds: float = Field(default=5.0, validation_alias="GRIDCASE_AUTH_CACHE_SECONDS",
                                      description="how long a resolved credential is reused (revocation delay)")
    rate_limit: str = Field(
        default="50/second;3000/minute",
        description="requests per credential, wrong credentials per client address (limits notation, "
        "';'-separated windows; empty: unlimited); a KPI query over a million cases costs 0.1-0.3 s of "
        "database time (bench/kpis.py)",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    # Consumer tuning for the embedded broker (architecture.md §3): a short session timeout keeps
    # Tansu's group join at ~3 s; earliest so a new group reads what was published before it joined.
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 2000
    max_poll_records: int = 500
    max_attempts: int = Field(default=5, description="transient-error retries before a batch is left uncommitted")


class IntakeSettings(ServiceSettings):
    """Intake settings (prefix ``INTAKE_``): HTTP port, outbox relay batch and poll interval."""

    model_config = SettingsConfigDict(env_prefix="INTAKE_", env_file=".env", extra="ignore")

    port: int = 8001
    pseudonym_key: str = Field(
        default="gridcase-dev-pseudonym-key",
        description="secret for reporter pseudonyms (HMAC); set a random value in production",
    )
    relay_batch: int = 500
    relay_idle_seconds: float = 0.2
    max_import_bytes: int = 1 << 30
    rate_limit: str = Field(
        default="100/second;5000/minute",
        description="requests per credential, wrong credentials per client address (limits notation, "
        "';'-separated windows; empty: unlimited)",
    )
    pii_keys: str = Field(
        default="",
        description="AES-256-GCM keys for reporter data at rest: 'id:base64key,…', the first encrypts, all "
        "decrypt (rotation: put the new key first, run `gridcase pii rotate`); empty: a development key "
        "derived from pseudonym_key, with a warning",
    )
    anonymise_after_days: float = Field(default=365, description="reporter data is erased this long after closure")
    anonymise_interval_seconds: float = Field(default=3600, description="how often closed cases are swept")


class DispatchSettings(ServiceSettings):
    """Dispatch settings (prefix ``DISPATCH_``): HTTP port (health, metrics, progress), consumer group, rate limit."""

    model_config = SettingsConfigDict(env_prefix="DISPATCH_", env_file=".env", extra="ignore")

    port: int = 8002
    group_id: str = "gridcase-dispatch"
    timer_interval_seconds: float = Field(default=1.0, description="how often due deadline timers are checked")
    test_clock: bool = Field(default=False, description="expose POST /v1/test/clock/advance (tests only)")
    relay_batch: int = 500
    relay_idle_seconds: float = 0.2


class ReportingSettings(ServiceSettings):
    """Reporting settings (prefix ``REPORTING_``): HTTP port, consumer group, rate limit."""

    model_config = SettingsConfigDict(env_prefix="REPORTING_", env_file=".env", extra="ignore")

    port: int = 8003
    group_id: str = "gridcase-reporting"
