"""``serve`` (shared/platform/kit.py) in a process of its own, as ``python -m services.<name>`` runs
it: the event loop is uvloop's where uvloop installs (pyproject.toml: all but Windows), ``kill
-USR1`` logs the task dump (shared/platform/telemetry.py ``install_task_dump``, a loop signal
handler) and SIGTERM lets a request in flight finish and the lifespan's shutdown run (the
docstring: "handlers in flight finish, 30 s"). The request head is bounded as uvicorn's h11
parser bounded it (16 KiB): httptools alone reads a header of any size into memory."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from gridcase.infra import free_port

ROOT = Path(__file__).resolve().parents[2]

#: A service in miniature: its lifespan installs the task dump as ``Service.start`` does, its one
#: handler marks a file when it starts and answers 1.5 s later.
APP = """
import asyncio, contextlib, logging, pathlib, sys, types
from fastapi import FastAPI, Request
from shared.platform.kit import serve
from shared.platform.telemetry import install_task_dump

def create_app(settings):
    @contextlib.asynccontextmanager
    async def lifespan(app):
        install_task_dump(logging.getLogger("probe"))
        print("loop:", type(asyncio.get_running_loop()).__module__, flush=True)
        yield
        print("lifespan shutdown", flush=True)

    app = FastAPI(lifespan=lifespan)

    @app.post("/size")
    async def size(request: Request):
        return {"bytes": len(await request.body())}

    @app.get("/slow")
    async def slow():
        pathlib.Path(sys.argv[2]).touch()
        await asyncio.sleep(1.5)
        return {"done": True}

    return app

serve(create_app, types.SimpleNamespace(host="127.0.0.1", port=int(sys.argv[1]), log_level="INFO", log_format="text"))
"""


def wait_for(check, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.skipif(sys.platform == "win32", reason="no uvloop and no SIGUSR1 on Windows")
def test_serve_runs_on_uvloop_dumps_tasks_and_finishes_a_request_on_sigterm(tmp_path):
    port, started = free_port(), tmp_path / "slow-started"
    (tmp_path / "app.py").write_text(APP, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(tmp_path / "app.py"), str(port), str(started)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: answers(f"{base}/openapi.json"))
        proc.send_signal(signal.SIGUSR1)
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(httpx.get, f"{base}/slow", timeout=30)
            wait_for(started.exists)
            proc.send_signal(signal.SIGTERM)
            answer = slow.result()
        proc.wait(timeout=40)
        out = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert answer.status_code == 200, out
    assert answer.json() == {"done": True}
    assert "loop: uvloop" in out
    assert f"asyncio tasks (signal {int(signal.SIGUSR1)}):" in out
    assert "lifespan shutdown" in out


def exchange(port: int, *parts: bytes) -> bytes:
    """``parts`` sent on a connection of their own, 0.5 s apart; what the server answers until it
    closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        with contextlib.suppress(OSError):  # the server may close while the rest is still being sent
            for i, part in enumerate(parts):
                time.sleep(0.5 if i else 0)
                sock.sendall(part)
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
    return answer


@pytest.fixture
def served(tmp_path):
    """The app above under ``serve``: its port; stopped afterwards."""
    port = free_port()
    (tmp_path / "app.py").write_text(APP, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(tmp_path / "app.py"), str(port), str(tmp_path / "started")],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/openapi.json"))
        yield port
    finally:
        proc.kill()
        proc.wait()


def head(cookie_bytes: int) -> bytes:
    """A GET whose head is ``cookie_bytes`` of cookie and 68 bytes more (request line 28, host 9,
    "Cookie: " 8 and its CRLF 2, "Connection: close" 19 with its CRLF, the final CRLF 2)."""
    return (b"GET /openapi.json HTTP/1.1\r\nHost: a\r\nCookie: " + b"c" * cookie_bytes
            + b"\r\nConnection: close\r\n\r\n")


def test_a_request_head_over_16_kib_is_refused_and_ordinary_ones_pass(served):
    # 1 MB in one header: refused (400) and the connection closed, as uvicorn's h11 parser did
    # (h11_max_incomplete_event_size, 16 KiB), instead of read into memory whole
    big = b"GET /openapi.json HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n"
    assert exchange(served, big).startswith(b"HTTP/1.1 400 ")
    # 20,000 headers of 9-13 bytes (about 230 KB): refused alike
    many = b"GET /openapi.json HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(20_000))
    assert exchange(served, many + b"\r\n").startswith(b"HTTP/1.1 400 ")
    # the bound, 16,384 bytes, counts the reads that end inside the head: a head sent as 8,500 +
    # 8,500 bytes and the rest is refused (17,000 > 16,384); one sent as 7,000 + 7,000 and the rest
    # (15,068 bytes, a long cookie) passes (14,000)
    refused, passed = head(17_000), head(15_000)
    assert exchange(served, refused[:8_500], refused[8_500:17_000], refused[17_000:]).startswith(b"HTTP/1.1 400 ")
    answer = exchange(served, passed[:7_000], passed[7_000:14_000], passed[14_000:])
    assert answer.startswith(b"HTTP/1.1 200 ")
    # a body of 200 KB sent in the same write as its head is no part of the head
    body = b"b" * 200_000
    post = (b"POST /size HTTP/1.1\r\nHost: a\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)) + body
    answer = exchange(served, post.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b'{"bytes":200000}')
    # pipelined: a POST of 10 KB and 8 KB of the next request's head in one write (18 KB in one
    # read), the rest later: the POST's bytes are not held against the next head
    small = post.replace(b"200000", b"10000")[: -len(body) + 10_000]
    nxt = head(12_000)
    answer = exchange(served, small + nxt[:8_000], nxt[8_000:])
    assert answer.count(b"HTTP/1.1 200 ") == 2 and b'{"bytes":10000}' in answer
