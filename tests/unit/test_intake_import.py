"""Intake's import loop: a failing store must not leave the parser thread blocked."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, Counter

from services.intake.api.imports import _import_file
from services.intake.uploads import _Utf8Check
from shared.domain.tenants import load_all_tenants


class Boom(RuntimeError):
    pass


def _line(i: int) -> str:
    return (
        '{"category_code":"100401","place_code":"990102001001001","reported_at":"2026-11-02T08:00:00+08:00",'
        f'"source":"t","source_id":"x-{i}"}}'
    )


async def test_failing_store_releases_the_parser_thread(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(_line(i) for i in range(5000)), encoding="utf-8")

    async def store(batch, who=None):
        raise Boom("database down")

    svc = SimpleNamespace(
        store=store,
        tenants=load_all_tenants(),
        rejected=Counter("t_rejected_total", "x", ["tenant", "source"], registry=CollectorRegistry()),
    )
    before = threading.active_count()
    # More failures than the default executor has threads (ThreadPoolExecutor's default size): each
    # must release its worker, or the last ones wait for a free thread until the timeout.
    for _ in range(min(32, (os.cpu_count() or 1) + 4) + 1):
        with pytest.raises(Boom):
            await asyncio.wait_for(_import_file(svc, str(path), "jsonl", "demo-grid", "Asia/Shanghai"), timeout=20)
    settle = time.monotonic() + 1.0  # as long as the test once slept, but no longer than needed
    while threading.active_count() > before + 8 and time.monotonic() < settle:
        await asyncio.sleep(0.01)
    assert threading.active_count() <= before + 8  # the executor's idle workers, not blocked ones


def test_utf8_check_names_the_line():
    check = _Utf8Check()
    check.feed("第一行\n第二行\n".encode())
    with pytest.raises(Exception) as info:
        check.feed(b"ok\n\xff\n")
    assert info.value.detail["error"] == "invalid_utf8" and info.value.detail["line"] == 4


def test_utf8_check_accepts_a_character_split_across_chunks():
    data = "网格".encode()
    check = _Utf8Check()
    check.feed(data[:2])
    check.feed(data[2:])
    check.feed(b"", final=True)
