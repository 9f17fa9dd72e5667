"""Request and response models of intake's HTTP API and of its import formats.

A :class:`ReportIn` is one report as intake accepts it, from ``POST /v1/reports`` or from one row
of an import file. Personal data sits in :class:`ReporterContact` only; it is stored in intake's
schema and never put in an event.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from shared.contract.actions import OUTCOMES, SATISFACTIONS, Outcome, Satisfaction
from shared.contract.events import PLACE_CODE_PATTERN, TENANT_PATTERN, RecordedOutcome

CHANNELS_HINT = "e.g. grid_worker, phone, web, app, wechat, 12345, PHONE, ONLINE"
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
"""Reports older than this are refused: no grid-management record predates the 1990s, and
PostgreSQL cannot store the year-1 dates a typo can produce."""
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_text(value: str) -> str:
    """Refuse C0 control characters other than tab, newline and carriage return (NUL cannot be
    stored in PostgreSQL text, and the others have no place in a report).

    Raises:
        ValueError: naming the first offending character and its position.
    """
    match = _CONTROL.search(value)
    if match:
        raise ValueError(f"control character U+{ord(match.group()):04X} at position {match.start()}")
    return value
URGENCIES = ("特急", "紧急", "一般", "复杂")


class ReporterContact(BaseModel):
    """The reporter's personal data: stays in intake, never in events, logs or statistics."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=40)
    id_number: str | None = Field(default=None, max_length=40)
    address: str | None = Field(default=None, max_length=300)

    @field_validator("*")
    @classmethod
    def _no_control_chars(cls, value):
        return check_text(value) if isinstance(value, str) else value


class ReportIn(BaseModel):
    """One report (上报).

    - ``category_code``: a taxonomy code (e.g. ``100401`` 下水道堵塞), a category the tenant's
      routing rules name or a label of its text model; ``POST /v1/reports`` refuses another, 422
      ``unknown_category`` with the ``nearest`` valid codes, unless the report is a historical
      record (``history``): imports keep the source system's own category (masked like free text;
      unknown codes go to the triage queue). Optional: a report without it gets the tenant's text
      model's prediction (services/intake/classify.py).
    - ``latitude`` / ``longitude`` (WGS-84, optional): where they exist, possible duplicates are
      looked for within 50 m (shared/domain/duplicates.py).
    - ``place_code``: cumulative place code (city 4, district 6, street 9, community 12, grid 15
      digits; docs/domain.md §3(a)) or a tenant's own code for foreign history.
    - ``reported_at`` (and recorded history times): timezone-aware, between 1990-01-01 and one
      day from now; a recorded deadline (``history.deadline``) may lie ahead, but not before
      1990-01-01.
    - Text fields refuse control characters (:func:`check_text`).
    - ``history``: only for imports of historical records: the recorded department and outcome.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    tenant: str = Field(pattern=TENANT_PATTERN)
    category_code: str | None = Field(default=None, min_length=1, max_length=64)
    category_name: str = Field(default="", max_length=200)
    place_code: str = Field(pattern=PLACE_CODE_PATTERN)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    description: str = Field(default="", max_length=4000)
    channel: str = Field(default="", max_length=64, description=CHANNELS_HINT)
    request_type: str = Field(default="", max_length=32)
    urgency: str = Field(default="一般")
    reported_at: AwareDatetime
    source: str = Field(default="api", max_length=32)
    source_id: str | None = Field(default=None, max_length=128)
    reporter: ReporterContact | None = None
    history: RecordedOutcome | None = None
    flags: list[str] = Field(default_factory=list, max_length=4, description="violence | crime")

    @field_validator("flags")
    @classmethod
    def _known_flags(cls, value: list[str]) -> list[str]:
        unknown = set(value) - {"violence", "crime"}
        if unknown:
            raise ValueError(f"unknown flags {sorted(unknown)}; allowed: violence, crime")
        return value

    @field_validator("*")
    @classmethod
    def _no_control_chars(cls, value):
        return check_text(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _times_plausible(self) -> ReportIn:
        latest = datetime.now(UTC) + timedelta(days=1)
        times = []
        if self.history is not None:
            times.append(("history.closed_at", self.history.closed_at))
            times += [(f"history.transfers.{i}.at", t.at) for i, t in enumerate(self.history.transfers)]
            for text in (self.history.department, self.history.status,
                         *(t.to_department for t in self.history.transfers)):
                if text:
                    check_text(text)
        for name, moment in times:
            if moment is not None and not (EARLIEST <= moment <= latest):
                raise ValueError(f"{name} {moment.isoformat()} is outside 1990-01-01 .. now + 1 day")
        if self.history is not None and self.history.deadline is not None and self.history.deadline < EARLIEST:
            raise ValueError(f"history.deadline {self.history.deadline.isoformat()} is before 1990-01-01")
        return self

    @field_validator("reported_at")
    @classmethod
    def _reported_at_plausible(cls, value: datetime) -> datetime:
        if not (EARLIEST <= value <= datetime.now(UTC) + timedelta(days=1)):
            raise ValueError(f"{value.isoformat()} is outside 1990-01-01 .. now + 1 day")
        return value

    @field_validator("urgency")
    @classmethod
    def _urgency_known(cls, value: str) -> str:
        if value not in URGENCIES:
            raise ValueError(f"urgency must be one of {', '.join(URGENCIES)}")
        return value



class ReportAccepted(BaseModel):
    """Answer to an accepted report (HTTP 202)."""

    case_id: uuid.UUID
    status: str = "accepted"
    duplicate: bool = False
    category_code: str | None = None
    category_source: str = "reported"
    confidence: float | None = None
    suggestions: list[dict] = Field(default_factory=list, description="top three when the category was predicted")
    model_version: str | None = None
    possible_duplicates: list[dict] = Field(default_factory=list,
                                            description="earlier cases of the same category and place, most similar first "
                                                        "(similarity null: texts share no character pair; docs/classifier.md §4)")


class RowError(BaseModel):
    """A rejected row of an import file: ``line``, the 1-based line of the file on which the row starts
    (a CSV header is line 1; services/intake/importers/formats.py ``iter_records``) and the reasons."""

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
    rejects: list[RowError] = Field(default_factory=list, description="the first max_rejects rejected rows (default 100)")


class PatrolIn(BaseModel):
    """A grid worker's inspection round (巡查), issue 3 item 7.

    - ``kind``: routine | night (夜查) | heavy_pollution (重污染巡查) | weekend_duty (周末值班).
    - ``points``: pollution or inspection points checked in the round (0..10000).
    - ``findings``: ids of cases the round opened (reported separately through /v1/reports).
    - ``worker_ref``: a pseudonymous worker reference, never a name (one that is not a plain code —
      a name, a phone — leaves intake as ``ref-`` + a keyed hash, shared/domain/personal.py).
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    tenant: str = Field(pattern=TENANT_PATTERN)
    place_code: str = Field(pattern=PLACE_CODE_PATTERN)
    kind: str = Field(pattern=r"^(routine|night|heavy_pollution|weekend_duty)$")
    points: int = Field(ge=0, le=10000)
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    worker_ref: str | None = Field(default=None, max_length=64)
    findings: list[uuid.UUID] = Field(default_factory=list, max_length=1000)
    source_id: str | None = Field(default=None, max_length=128, description="makes a retried POST idempotent")

    @field_validator("started_at", "ended_at")
    @classmethod
    def _plausible(cls, value: datetime | None) -> datetime | None:
        if value is not None and not (EARLIEST <= value <= datetime.now(UTC) + timedelta(days=1)):
            raise ValueError(f"{value.isoformat()} is outside 1990-01-01 .. now + 1 day")
        return value

    @field_validator("worker_ref", "source_id")
    @classmethod
    def _no_control_chars(cls, value):
        return check_text(value) if isinstance(value, str) else value


class ActionIn(BaseModel):
    """An actor's action on a case (``POST /v1/cases/{case_id}/actions``, issue 3 item 6, issue 12).

    ``action`` is one of shared/contract/actions.py ``REQUESTABLE_ACTIONS``; whether it is legal
    for the case now is dispatch's decision alone. ``actor_role`` and ``actor_ref`` are
    informational and optional: the actor recorded is the caller's credential (its role and id,
    shared/platform/auth.py). ``evidence`` references (photo ids, file names);
    ``target_department`` for transfer/return; ``extension_days`` for approve_extension;
    ``outcome`` (and ``duplicate_of``, the original case) for the steps that end a case (resolve,
    self_handle, reject, cancel, merge_duplicate); ``satisfaction`` and ``resident_resolved`` for a callback
    (回访); ``category_code`` (a taxonomy code) and ``to_place_code`` (a place of the tenant) for
    recategorize or a return with a corrected category. Only the shape is checked here (the
    vocabulary of shared/contract/actions.py, the taxonomy, the tenant's places); which fields an
    action needs, dispatch decides.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    action: str = Field(min_length=1, max_length=40)
    actor_role: str | None = Field(default=None, min_length=1, max_length=40, pattern=r"^[a-z_]+$")
    actor_ref: str | None = Field(default=None, max_length=64)
    note: str = Field(default="", max_length=2000)
    evidence: list[str] = Field(default_factory=list, max_length=20)
    target_department: str | None = Field(default=None, max_length=100)
    extension_days: int | None = Field(default=None, ge=1, le=60)
    outcome: Outcome | None = Field(default=None, description="how the case ended: " + ", ".join(OUTCOMES))
    duplicate_of: uuid.UUID | None = Field(default=None, description="the original case (outcome duplicate, merge_duplicate)")
    satisfaction: Satisfaction | None = Field(default=None, description="callback rating: " + ", ".join(SATISFACTIONS))
    resident_resolved: bool | None = Field(default=None, description="callback: whether the resident judges it resolved")
    category_code: str | None = Field(default=None, min_length=1, max_length=64, description="the corrected category")
    to_place_code: str | None = Field(default=None, pattern=PLACE_CODE_PATTERN, description="the corrected place")

    @field_validator("note", "actor_ref", "target_department", "category_code")
    @classmethod
    def _no_control_chars(cls, value):
        return check_text(value) if isinstance(value, str) else value
