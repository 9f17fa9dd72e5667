"""Settings: pydantic-settings classes read from the environment (and an optional ``.env``).

Connection settings shared by every service have no prefix, so one environment serves the whole
stack and docker-compose: ``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``. Everything else is read with
one prefix per service (``INTAKE_``, ``DISPATCH_``, ``REPORTING_``), e.g. ``INTAKE_PORT``.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contract.topics import PARTITIONS


class ServiceSettings(BaseSettings):
    """Base class of every service's settings (each service's own class is in ``services/<service>/settings.py``).

    - ``kafka_bootstrap_servers``: ``host:port[,host:port]`` (env ``KAFKA_BOOTSTRAP_SERVERS``).
    - ``database_url``: SQLAlchemy URL, ``postgresql+asyncpg://…`` or ``postgresql://…`` (the
      driver is added), env ``DATABASE_URL``.
    - ``tenants_dir``: folder of ``<tenant>.yaml`` files (env ``GRIDCASE_TENANTS_DIR``); empty =
      the repository's ``deploy/tenants``.
    - ``jwt_secret`` (``GRIDCASE_JWT_SECRET``), ``auth_cache_seconds``
      (``GRIDCASE_AUTH_CACHE_SECONDS``): credentials, see shared/platform/authstore.py.
    - ``log_format`` (``GRIDCASE_LOG_FORMAT``): ``text`` or ``json`` lines.
    - ``rate_limit`` (``<PREFIX>_RATE_LIMIT``): requests per credential and wrong credentials per
      client address (shared/platform/authhttp.py ``RateLimiter``).
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    kafka_bootstrap_servers: str = Field(default="127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    database_url: str = Field(
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/gridcase", validation_alias="DATABASE_URL"
    )
    kafka_topic_partitions: int = Field(
        default=PARTITIONS, ge=1, validation_alias="KAFKA_TOPIC_PARTITIONS",
        description="partitions of each topic gridcase creates: at most that many instances of a service "
        "share its load (docs/operations.md 'Scaling'); the embedded broker keeps 4",
    )
    tenants_dir: str = Field(default="", validation_alias="GRIDCASE_TENANTS_DIR")
    jwt_secret: str = Field(default="", validation_alias="GRIDCASE_JWT_SECRET",
                            description="HS256 secret of bearer tokens (shared/platform/authstore.py); empty: API keys only")
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
    log_format: str = Field(default="text", validation_alias="GRIDCASE_LOG_FORMAT", pattern="^(text|json)$",
                            description="text: plain lines, no colour codes; json: one JSON object per line "
                                        "(shared/platform/telemetry.py configure_logging)")
    # Consumer tuning for the embedded broker (docs/architecture.md §3): a short session timeout keeps
    # Tansu's group join at ~3 s; earliest so a new group reads what was published before it joined.
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 2000
    max_poll_records: int = 500
    fetch_max_wait_ms: int = Field(
        default=50,
        description="longest a fetch waits at the broker for new records (aiokafka's default 500 keeps an idle "
        "consumer that long behind a new event on the embedded broker; bench/pipeline.py, docs/operations.md)",
    )
    batch_timeout_ms: int = Field(
        default=50, description="longest a batch waits for records when none are buffered (a loaded consumer "
        "finds its buffer full and does not wait)")
    max_attempts: int = Field(default=5, description="transient-error retries before a batch is left uncommitted")
