"""``POST /v1/imports?format=…&tenant=…``: a file of reports (raw body or multipart ``file``, plus
``mapping`` for ``csv``) → rows read / accepted / duplicates / rejected. The body is spooled to a
temporary file (services/intake/uploads.py), parsed in a worker thread
(services/intake/importers/) and stored in batches through ``Intake.store``."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from services.intake.dependencies import intake_of
from services.intake.domain.reports import case_id_for, place_problem
from services.intake.importers.formats import (
    DEFAULT_TIMEZONE,
    FORMATS,
    UnknownFormat,
    iter_records,
)
from services.intake.importers.mapping import parse_mapping
from services.intake.schemas import ImportResult, ReportIn, RowError
from services.intake.service import Intake
from services.intake.uploads import spool_body
from shared.platform.auth import Principal
from shared.platform.authhttp import caller, forbidden
from shared.platform.http import error_response

IMPORT_BATCH = 500

router = APIRouter()


@router.post("/v1/imports", response_model=ImportResult)
async def post_import(
    request: Request,
    format: Annotated[str, Query(description=f"one of {', '.join(FORMATS)}")],
    tenant: Annotated[str, Query()],
    tz: Annotated[str | None, Query(description="IANA zone of naive source times")] = None,
    max_rejects: Annotated[int, Query(ge=0, le=100_000, description="rejected rows listed in the answer")] = 100,
    who: Principal = Depends(caller),
):
    """Import a file of reports for a whole tenant (city ops or admin of the tenant; 403
    otherwise)."""
    svc = intake_of(request)
    if not who.may_import(tenant):
        raise forbidden("imports are for the operations centre (city_ops or admin of the tenant)", role=who.role)
    if format not in FORMATS:
        return error_response(422, "unknown_format", f"format must be one of {', '.join(FORMATS)}", field="format")
    if tenant not in svc.tenants:
        return error_response(422, "unknown_tenant", f"tenant {tenant!r} is not configured", field="tenant")
    zone = tz or svc.tenants[tenant].timezone or DEFAULT_TIMEZONE[format]
    path, mapping_text = await spool_body(request, svc.settings.max_import_bytes)
    try:
        mapping = None
        if format == "csv":
            if not mapping_text:
                return error_response(422, "missing_mapping", "format csv needs a column mapping: send it as "
                                      "the multipart part 'mapping' (YAML, see importers.load_mapping)",
                                      field="mapping")
            mapping = parse_mapping(mapping_text)
        return await _import_file(svc, path, format, tenant, zone, mapping, max_rejects, who)
    except (UnknownFormat, ValueError) as exc:
        return error_response(422, "invalid_file", str(exc), field="file")
    finally:
        os.unlink(path)


class _ImportCancelled(Exception):
    """The request side stopped consuming; the parser thread must end."""


async def _import_file(svc: Intake, path: str, fmt: str, tenant: str, zone: str, mapping: dict | None = None,
                       max_rejects: int = 100, who: Principal | None = None) -> ImportResult:
    """Parse the spooled file in a worker thread and store accepted rows in batches of 500.

    The thread hands batches over a bounded queue (constant memory). If storing fails, the thread
    is told to stop and the error propagates (the batches stored before stay stored; a retried
    import skips them as duplicates, since case ids derive from the source ids).
    """
    result = ImportResult(format=fmt, tenant=tenant, rows_read=0, accepted=0, duplicates=0, rejected=0)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(maxsize=4)
    cancelled = threading.Event()

    def put(item) -> None:
        future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        while True:
            try:
                future.result(timeout=0.5)
                return
            except concurrent.futures.TimeoutError:
                if cancelled.is_set():
                    future.cancel()
                    raise _ImportCancelled from None

    def produce() -> None:
        batch: list = []
        try:
            with open(path, encoding="utf-8-sig", newline="") as stream:
                for item in iter_records(fmt, stream, tenant, zone, mapping=mapping):
                    batch.append(item)
                    if len(batch) >= IMPORT_BATCH:
                        put(batch)
                        batch = []
            put(batch)
            put(None)
        except _ImportCancelled:
            return
        except Exception as exc:  # noqa: BLE001 - handed to the request side
            with contextlib.suppress(_ImportCancelled):
                put(exc)

    worker = loop.run_in_executor(None, produce)
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, Exception):
                raise item
            good: list[tuple[ReportIn, uuid.UUID, None]] = []
            for line, row in item:
                result.rows_read += 1
                if isinstance(row, RowError):
                    result.rejected += 1
                    svc.rejected.labels(tenant, fmt).inc()
                    if len(result.rejects) < max_rejects:
                        result.rejects.append(row)
                elif problem := place_problem(svc.tenants[tenant], row.place_code):
                    result.rejected += 1
                    svc.rejected.labels(tenant, fmt).inc()
                    if len(result.rejects) < max_rejects:
                        result.rejects.append(RowError(line=line, errors=[{"field": "place_code", "problem": problem}]))
                else:
                    good.append((row, case_id_for(row, None), None))
            new = await svc.store(good, who)
            result.accepted += len(good)
            result.duplicates += len(good) - len(new)
    finally:
        cancelled.set()
        while not queue.empty():  # unblock a put() in flight
            queue.get_nowait()
        await worker
    return result
