"""Intake's settings (environment prefix ``INTAKE_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.platform.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    """Intake settings (prefix ``INTAKE_``): HTTP port, outbox relay batch and poll interval."""

    model_config = SettingsConfigDict(env_prefix="INTAKE_", env_file=".env", extra="ignore")

    port: int = 8001
    pseudonym_key: str = Field(
        default="gridcase-dev-pseudonym-key",
        description="secret for reporter pseudonyms (HMAC); set a random value in production",
    )
    max_in_flight: int = Field(
        default=128,
        description="HTTP requests worked on at once; more are refused with 503 and Retry-After (0: no "
        "limit). About what the database pool can serve in the time a client waits (bench/pipeline.py)",
    )
    retry_after_seconds: int = Field(default=1, description="Retry-After of a 503 refused for overload")
    relay_batch: int = 500
    relay_idle_seconds: float = Field(
        default=0.2, description="outbox poll interval while the relay cannot LISTEN (database away)")
    relay_poll_seconds: float = Field(
        default=5.0, description="fallback outbox poll while the relay LISTENs (it wakes on every commit)")
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
    classifier_models: str = Field(
        default="",
        description="text models per tenant, 'tenant=path;tenant=path' (gridcase model train; docs/classifier.md); "
        "empty: no prediction",
    )
    anonymise_after_days: float = Field(default=365, description="reporter data is erased this long after closure")
    anonymise_interval_seconds: float = Field(default=3600, description="how often closed cases are swept")
