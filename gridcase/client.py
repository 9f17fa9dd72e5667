"""HTTP helpers for driving a running stack: import a file, wait until it is counted, read stats,
KPIs and the work-summary document.

Used by the CLI, the demo, the end-to-end tests and the benchmark. Requests carry the API key of
``GRIDCASE_API_KEY`` (``gridcase up`` prints one; ``gridcase auth issue-key`` makes more) unless
a function is given ``api_key``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx


def auth_headers(api_key: str | None = None) -> dict[str, str]:
    """``{"Authorization": "Bearer <key>"}`` for ``api_key`` or ``$GRIDCASE_API_KEY`` (``{}`` when
    neither is set: the services will answer 401)."""
    key = api_key or os.environ.get("GRIDCASE_API_KEY", "")
    return {"Authorization": f"Bearer {key}"} if key else {}


def _chunks(body, total: int, progress: Callable[[int, int, int], None] | None, size: int = 1 << 20):
    """Yield ``body`` in chunks, reporting ``(bytes_sent, total, line_breaks_sent)`` after each."""
    sent = lines = 0
    while chunk := body.read(size):
        sent += len(chunk)
        lines += chunk.count(b"\n")
        if progress:
            progress(sent, total, lines)
        yield chunk


def import_file(intake_url: str, path: Path | str, fmt: str, tenant: str, timeout_s: float = 600,
                mapping: Path | str | None = None, tz: str | None = None,
                progress: Callable[[int, int, int], None] | None = None, max_rejects: int = 100,
                api_key: str | None = None) -> dict:
    """POST a file to ``/v1/imports``: as the raw body (streamed), or, with a column ``mapping``
    (YAML file, for format ``csv``), as a multipart form with parts ``file`` and ``mapping``.
    ``progress(bytes_sent, total_bytes, line_breaks_sent)`` is called as the raw body streams; ``max_rejects``
    rejected rows are listed in the answer. Returns the import result.

    Raises:
        httpx.HTTPStatusError: intake refused the file (the body says why).
    """
    params = {"format": fmt, "tenant": tenant, "max_rejects": max_rejects} | ({"tz": tz} if tz else {})
    with open(path, "rb") as body:
        if mapping is not None:
            files = {"file": (Path(path).name, body, "text/csv"),
                     "mapping": (Path(mapping).name, Path(mapping).read_bytes(), "application/yaml")}
            resp = httpx.post(f"{intake_url}/v1/imports", params=params, files=files, timeout=timeout_s,
                              headers=auth_headers(api_key))
        else:
            resp = httpx.post(
                f"{intake_url}/v1/imports",
                params=params,
                content=_chunks(body, Path(path).stat().st_size, progress),
                headers={"content-type": "application/octet-stream", **auth_headers(api_key)},
                timeout=timeout_s,
            )
    resp.raise_for_status()
    return resp.json()


def wait_until_counted(
    dispatch_url: str,
    reporting_url: str,
    tenant: str,
    expected_cases: int,
    timeout_s: float = 300,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Wait until reporting has accounted for ``expected_cases`` reported cases of ``tenant`` and
    for every lifecycle event dispatch derived for them (events applied == reports + events
    dispatch emitted). Returns the last progress readings.

    Raises:
        TimeoutError: not fully counted within ``timeout_s`` seconds.
    """
    deadline = time.monotonic() + timeout_s
    last = ""
    while True:
        d = httpx.get(f"{dispatch_url}/v1/progress", params={"tenant": tenant}, timeout=10,
                      headers=auth_headers()).json()
        r = httpx.get(f"{reporting_url}/v1/progress", params={"tenant": tenant}, timeout=10,
                      headers=auth_headers()).json()
        want_events = d["cases"] + d["events_emitted"]
        line = (
            f"  [{tenant}] dispatched {d['cases']}/{expected_cases} · counted {r['reported_cases']}/{expected_cases} cases, "
            f"{r['events_applied']}/{want_events} events"
        )
        if progress and line != last:
            progress(line)
            last = line
        if d["cases"] >= expected_cases and r["reported_cases"] >= expected_cases and r["events_applied"] >= want_events:
            return {"dispatch": d, "reporting": r}
        if time.monotonic() > deadline:
            raise TimeoutError(f"not counted after {timeout_s:.0f}s: {line.strip()}")
        time.sleep(0.5)


def get_stats(reporting_url: str, tenant: str, group_by: str | None = None, **params) -> dict:
    """GET ``/v1/stats`` for ``tenant`` grouped by ``group_by``; extra query ``params`` pass through."""
    q = {"tenant": tenant, **params}
    if group_by:
        q["group_by"] = group_by
    return _get_json(f"{reporting_url}/v1/stats", q, timeout_s=30)


def get_kpis(reporting_url: str, tenant: str, start: str | None = None, end: str | None = None, **params) -> dict:
    """GET ``/v1/kpis`` for ``tenant`` over P = [``start``, ``end``) (ISO 8601 with a zone; either
    may be left open); extra query ``params`` (e.g. ``group_by``) pass through."""
    q = {"tenant": tenant, **params}
    q.update({k: v for k, v in (("start", start), ("end", end)) if v is not None})
    return _get_json(f"{reporting_url}/v1/kpis", q, timeout_s=60)


def post_json(url: str, body: dict, headers: dict | None = None, timeout_s: float = 30) -> dict:
    """POST ``body`` as JSON with the API key; the JSON answer (``httpx.HTTPStatusError`` unless 2xx)."""
    resp = httpx.post(url, json=body, timeout=timeout_s, headers={**auth_headers(), **(headers or {})})
    resp.raise_for_status()
    return resp.json()


def case_state(intake_url: str, case_id: str) -> str | None:
    """The state of a case in intake's case view (``None`` while it is not there yet)."""
    resp = httpx.get(f"{intake_url}/v1/cases/{case_id}", timeout=10, headers=auth_headers())
    return resp.json().get("state") if resp.status_code == 200 else None


def act(intake_url: str, case_id: str, action: str, actor_role: str, **fields) -> dict:
    """``POST /v1/cases/{id}/actions`` waiting for dispatch's decision (``Prefer: wait=20``); the
    decision (``{"status", "state", …}``)."""
    return post_json(f"{intake_url}/v1/cases/{case_id}/actions", {"action": action, "actor_role": actor_role, **fields},
                     headers={"Prefer": "wait=20"}, timeout_s=40)


def get_summary_document(reporting_url: str, tenant: str, start: str, end: str, fmt: str = "md",
                         place: str | None = None, department: str | None = None, api_key: str | None = None) -> bytes:
    """GET ``/v1/summary/document``: the work summary of ``place`` (and ``department``) over P =
    [``start``, ``end``) as Markdown (``fmt="md"``, UTF-8 bytes) or .docx bytes (``fmt="docx"``).

    Raises:
        httpx.HTTPStatusError: reporting refused (the body says why: 404 outside the caller's scope).
    """
    q = {"tenant": tenant, "start": start, "end": end, "format": fmt}
    q.update({k: v for k, v in (("place", place), ("department", department)) if v})
    resp = httpx.get(f"{reporting_url}/v1/summary/document", params=q, timeout=120, headers=auth_headers(api_key))
    resp.raise_for_status()
    return resp.content


def _get_json(url: str, params: dict, timeout_s: float) -> dict:
    """GET ``url`` with the API key; the JSON answer (``httpx.HTTPStatusError`` unless 2xx)."""
    resp = httpx.get(url, params=params, timeout=timeout_s, headers=auth_headers())
    resp.raise_for_status()
    return resp.json()
