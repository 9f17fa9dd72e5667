"""Request and response models of intake's HTTP API and of its import formats.

A :class:`ReportIn` is one report as intake accepts it, from ``POST /v1/reports`` or from one row
of an import file. Personal data sits in :class:`ReporterContact` only; it is stored in intake's
schema and never put in an event.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from shared.events import PLACE_CODE_PATTERN, TENANT_PATTERN, RecordedOutcome

CHANNELS_HINT = "e.g. grid_worker, phone, web, app, wechat, 12345, PHONE, ONLINE"
URGENCIES = ("特急", "紧急", "一般", "复杂")


class ReporterContact(BaseModel):
    """The reporter's personal data: stays in intake, never in events, logs or statistics."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=40)
    id_number: str | None = Field(default=None, max_length=40)
    address: str | None = Field(default=None, max_length=300)


class ReportIn(BaseModel):
    """One report (上报).

    - ``category_code``: a taxonomy code (e.g. ``100401`` 下水道堵塞) or, for history imports, the
      source system's own category; unknown codes are accepted and go to the triage queue.
    - ``place_code``: cumulative place code (city 4, district 6, street 9, community 12, grid 15
      digits; domain.md §3(a)) or a tenant's own code for foreign history.
    - ``reported_at``: timezone-aware; not more than 1 day in the future.
    - ``history``: only for imports of historical records: the recorded department and outcome.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    tenant: str = Field(pattern=TENANT_PATTERN)
    category_code: str = Field(min_length=1, max_length=64)
    category_name: str = Field(default="", max_length=200)
    place_code: str = Field(pattern=PLACE_CODE_PATTERN)
    description: str = Field(default="", max_length=4000)
    channel: str = Field(default="", max_length=64, description=CHANNELS_HINT)
    request_type: str = Field(default="", max_length=32)
    urgency: str = Field(default="一般")
    reported_at: AwareDatetime
    source: str = Field(default="api", max_length=32)
    source_id: str | None = Field(default=None, max_length=128)
    reporter: ReporterContact | None = None
    history: RecordedOutcome | None = None

    @field_validator("urgency")
    @classmethod
    def _urgency_known(cls, value: str) -> str:
        if value not in URGENCIES:
            raise ValueError(f"urgency must be one of {', '.join(URGENCIES)}")
        return value

    @field_validator("reported_at")
    @classmethod
    def _not_in_future(cls, value: datetime) -> datetime:
        if value > datetime.now(timezone.utc) + timedelta(days=1):
            raise ValueError("reported_at lies more than one day in the future")
        return value


class ReportAccepted(BaseModel):
    """Answer to an accepted report (HTTP 202)."""

    case_id: uuid.UUID
    status: str = "accepted"
    duplicate: bool = False


class RowError(BaseModel):
    """A rejected row of an import file: 1-based ``line`` (data row number) and the reasons."""

    line: int
    errors: list[dict]


class ImportResult(BaseModel):
    """Outcome of ``POST /v1/imports``: rows read, accepted (new or already known), rejected."""

    format: str
    tenant: str
    rows_read: int
    accepted: int
    duplicates: int
    rejected: int
    rejects: list[RowError] = Field(default_factory=list, description="first 100 rejected rows")
