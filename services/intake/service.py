"""The running intake (``app.state.intake``): what every entry point shares (engine, outbox relay,
tenants, key ring, metrics), the one path that stores reports (:meth:`Intake.store`, used by
``POST /v1/reports``, imports and Open311 alike) and the wait for dispatch's decision on a
requested action (:meth:`Intake.decision`, ``Prefer: wait``)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.classify import Classified, Classifiers
from services.intake.domain.taxonomy import taxonomy
from services.intake.metrics import source_label
from services.intake.schemas import ReportIn
from services.intake.settings import IntakeSettings
from services.intake.store import (
    ReportBatch,
    load_action,
    reporter_contact,
    store_report_batches,
)
from shared.domain.personal import KnownPersonal
from shared.domain.tenants import TenantConfig
from shared.domain.textclass import UNCLASSIFIED
from shared.platform.auth import Principal
from shared.platform.crypto import Keyring, KeyringError
from shared.platform.groupcommit import GroupCommit
from shared.platform.outbox import OutboxRelay

log = logging.getLogger("gridcase.intake")

#: How often a waiting request (``Prefer: wait``) reads its action's status, in seconds.
POLL_SECONDS = 0.2


@dataclass
class Intake:
    """The running service's state (engine, relay, tenants, metrics)."""

    settings: IntakeSettings
    engine: AsyncEngine
    relay: OutboxRelay
    tenants: dict[str, TenantConfig]
    secret: bytes
    accepted: Counter
    rejected: Counter
    keyring: Keyring
    classifiers: Classifiers = field(default_factory=Classifiers)

    def knows_department(self, tenant: str, code: str) -> bool:
        """Whether ``code`` is a taxonomy department or one of ``tenant``'s own."""
        config = self.tenants.get(tenant)
        return taxonomy().department(code) is not None or (config is not None and config.department(code) is not None)

    _group: GroupCommit[ReportBatch, set[uuid.UUID]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._group = GroupCommit(self._write)

    def classify(self, report: ReportIn, masked: str | None = None) -> tuple[ReportIn, Classified]:
        """The report with a category (predicted when it had none; services/intake/classify.py);
        ``masked``: its description masked already, if the caller has it."""
        config = self.tenants.get(report.tenant)
        if config is None:  # refused before (unknown tenant); never stored without a code
            return report.model_copy(update={"category_code": report.category_code or UNCLASSIFIED}), Classified("reported")
        return self.classifiers.classify(report, config, masked)

    async def store(self, reports: list[tuple[ReportIn, uuid.UUID, str | None]],
                    who: Principal | None = None, request_hash: str | None = None,
                    classified: dict[uuid.UUID, Classified] | None = None) -> set[uuid.UUID]:
        """Store reports with their events and audit records (store.py ``store_report_batches``),
        wake the relay and count the new ones; return the case ids that were new. ``who`` is the
        caller, recorded in the audit trail. Requests that arrive together are committed together
        (group commit); each returns once the transaction holding its reports has committed. A
        report without a category (imports of messages) is classified here unless ``classified``
        already says how its category came about (issue 15, services/intake/classify.py)."""
        if not reports:
            return set()
        classified = dict(classified or {})
        ready = []
        for report, cid, key in reports:
            if cid not in classified:
                report, classified[cid] = self.classify(report)
            ready.append((report, cid, key))
        reports = ready
        new = await self._group.submit(ReportBatch(reports, who, request_hash, classified))
        for r, cid, _ in reports:
            if cid in new:
                self.accepted.labels(r.tenant, source_label(r.source)).inc()
        return new

    async def _write(self, batches: list[ReportBatch]) -> list[set[uuid.UUID]]:
        news = await store_report_batches(self.engine, self.keyring, self.secret, batches)
        self.relay.wake()
        return news

    async def known_personal(self, case_id: uuid.UUID) -> KnownPersonal | None:
        """The reporter's known personal data of a case (its sealed part opened), to mask in the
        case's free text; ``None`` when there is none (anonymised, or no contact) or the part
        cannot be opened (a key missing from ``INTAKE_PII_KEYS``: logged, the patterns still mask)."""
        try:
            part = await reporter_contact(self.engine, self.keyring, case_id)
        except KeyringError:
            log.warning("case %s: sealed part cannot be opened; only the patterns mask its free text", case_id)
            return None
        return KnownPersonal.of(part.get("reporter")) if part else None

    async def decision(self, case_id: uuid.UUID, action_id: uuid.UUID, seconds: float) -> dict | None:
        """The action (store.py ``load_action``) once dispatch has decided it (applied or
        refused), or as it stands after ``seconds``. Reads every :data:`POLL_SECONDS`; a
        connection is taken only while reading, never while sleeping."""
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while True:
            action = await load_action(self.engine, case_id, action_id)
            left = until - loop.time()
            if action is None or action["status"] != "pending" or left <= 0:
                return action
            await asyncio.sleep(min(POLL_SECONDS, left))
