"""``serve`` (shared/platform/kit.py) in a process of its own, as ``python -m services.<name>`` runs
it: the event loop is uvloop's where uvloop installs (pyproject.toml: all but Windows), ``kill
-USR1`` logs the task dump (shared/platform/telemetry.py ``install_task_dump``, a loop signal
handler) and SIGTERM lets a request in flight finish and the lifespan's shutdown run (the
docstring: "handlers in flight finish, 30 s")."""

from __future__ import annotations

import os
import signal
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
from fastapi import FastAPI
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
