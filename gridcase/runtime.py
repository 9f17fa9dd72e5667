"""Running the stack: infrastructure plus the three services as separate processes.

:class:`Stack` is used by ``gridcase up``, ``gridcase demo``, the end-to-end tests and the
benchmark: it provides Kafka and PostgreSQL (:mod:`gridcase.infra`), creates the topics
explicitly, installs an admin API key for the run (:meth:`Stack.install_admin_key`), starts
intake, dispatch and reporting as ``python -m services.<name>`` children on free ports, waits for
their ``/health``, and stops them with SIGTERM (graceful) on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gridcase.infra import Infrastructure, free_port, provide
from shared.platform.kafka import ensure_topics

SERVICES = ("intake", "dispatch", "reporting")


@dataclass
class ServiceProcess:
    """One service child process: its name, port, log file and ``Popen`` handle."""

    name: str
    port: int
    log_path: Path
    module: str = ""
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """Base URL, ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Stack:
    """Infrastructure + services. Use as a context manager, or call :meth:`start`/:meth:`stop`.

    ``state_dir`` holds logs and embedded PostgreSQL data; ``fresh`` empties the gridcase schemas
    at start; ``env`` adds environment variables for the services; ``infra``, when given, is used
    as it is (and not stopped by :meth:`stop`). ``admin_key`` is the run's admin API key (tenant
    ``*``; when not given: ``$GRIDCASE_API_KEY`` if set, else a new one), exported as ``GRIDCASE_API_KEY`` to this process so
    gridcase/client.py calls carry it; ``GRIDCASE_JWT_SECRET`` is generated for the services when
    the environment sets none.
    """

    state_dir: Path
    fresh: bool = True
    env: dict[str, str] = field(default_factory=dict)
    infra: Infrastructure | None = None
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    admin_key: str | None = None
    _owns_infra: bool = False

    def install_admin_key(self) -> str:
        """Record :attr:`admin_key` (made with shared.platform.authstore.new_api_key when unset) in the
        credential store, once; export it as ``GRIDCASE_API_KEY``. Returns the key."""
        from shared.platform.authstore import MIGRATIONS, SCHEMA, issue, split_api_key  # noqa: PLC0415
        from shared.platform.db import make_engine, run_migrations  # noqa: PLC0415

        assert self.infra is not None
        if self.admin_key is None:
            from shared.platform.authstore import new_api_key  # noqa: PLC0415

            # Keep a key this shell already exported (e.g. a test session's) working; else a new one.
            exported = os.environ.get("GRIDCASE_API_KEY", "")
            self.admin_key = exported if exported.startswith("gck_") else new_api_key()[1]
        run_migrations(self.infra.database_url, MIGRATIONS, SCHEMA)

        async def install() -> None:
            import sqlalchemy as sa  # noqa: PLC0415

            from shared.platform.authstore import credentials  # noqa: PLC0415

            engine = make_engine(self.infra.database_url)
            try:
                async with engine.connect() as conn:
                    known = (await conn.execute(sa.select(credentials.c.credential_id).where(
                        credentials.c.credential_id == split_api_key(self.admin_key)[0]))).first()
                if not known:
                    await issue(engine, kind="api_key", tenant="*", role="admin", label="gridcase stack admin",
                                api_key=self.admin_key)
            finally:
                await engine.dispose()

        asyncio.run(install())
        os.environ["GRIDCASE_API_KEY"] = self.admin_key
        return self.admin_key

    def start(self, progress=print) -> None:
        """Start everything; ``progress(str)`` receives one line per step.

        Raises:
            RuntimeError: a service exited or did not become healthy within 90 s (its log tail is
                in the message).
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        progress("启动基础设施 starting infrastructure …")
        if self.infra is None:
            self.infra = provide(self.state_dir, fresh_database=self.fresh)
            self._owns_infra = True
        progress(f"  Kafka ({self.infra.kafka_kind}): {self.infra.kafka_bootstrap}")
        progress(f"  PostgreSQL ({self.infra.database_kind}): {self.infra.database_url}")
        created = asyncio.run(ensure_topics(self.infra.kafka_bootstrap))
        progress(f"  topics created: {', '.join(created) if created else 'all present'}")
        self.install_admin_key()
        if not os.environ.get("GRIDCASE_JWT_SECRET") and "GRIDCASE_JWT_SECRET" not in self.env:
            self.env["GRIDCASE_JWT_SECRET"] = secrets.token_urlsafe(32)
        for name in SERVICES:
            self.start_service(name)
        for name in SERVICES:
            self.wait_healthy(name)
            progress(f"  {name:<9} {self.services[name].url}  ready")

    def service_env(self, name: str, port: int) -> dict[str, str]:
        """Environment of a service child: connections, its port, Python path to the repo."""
        assert self.infra is not None
        root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ)
        env.update(self.env)
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": self.infra.kafka_bootstrap,
                "DATABASE_URL": self.infra.database_url,
                f"{name.upper()}_PORT": str(port),
                "PYTHONPATH": root + os.pathsep + env.get("PYTHONPATH", ""),
                "PYTHONUNBUFFERED": "1",
                "PYTHONIOENCODING": "utf-8",
            }
        )
        return env

    def start_service(self, name: str, service: str | None = None) -> ServiceProcess:
        """Start (or restart) a service instance as a child process on a free port (kept on
        restart). ``name`` identifies the instance; ``service`` is the service it runs (default:
        ``name``), so ``start_service("dispatch-2", "dispatch")`` adds a second dispatch instance
        to the same consumer group."""
        service = service or (self.services[name].module if name in self.services else name)
        svc = self.services.get(name) or ServiceProcess(name, free_port(), self.state_dir / f"{name}.log", service)
        out = open(svc.log_path, "ab")  # noqa: SIM115 - owned by the child
        svc.proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"],
            env=self.service_env(service, svc.port),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        self.services[name] = svc
        return svc

    def wait_healthy(self, name: str, timeout_s: float = 90.0) -> None:
        """Poll ``/health`` until 200.

        Raises:
            RuntimeError: the process exited or stayed unhealthy for ``timeout_s`` seconds.
        """
        svc = self.services[name]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if svc.proc is None or svc.proc.poll() is not None:
                raise RuntimeError(f"{name} exited during start-up:\n{self.log_tail(name)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(svc.url + "/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{name} not healthy after {timeout_s:.0f}s:\n{self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 40) -> str:
        """The last ``lines`` lines of a service's log."""
        path = self.services[name].log_path
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def stop_service(self, name: str, sig: int = signal.SIGTERM, timeout_s: float = 40.0) -> int | None:
        """Send ``sig`` to a service and wait for it to exit; return its exit code."""
        svc = self.services.get(name)
        if not svc or not svc.proc or svc.proc.poll() is not None:
            return svc.proc.returncode if svc and svc.proc else None
        svc.proc.send_signal(sig)
        try:
            return svc.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            svc.proc.kill()
            return svc.proc.wait(10)

    def stop(self) -> None:
        """Stop the services (SIGTERM, in reverse order), then the infrastructure this run started."""
        for name in reversed(list(self.services)):
            self.stop_service(name)
        if self.infra and self._owns_infra:
            self.infra.stop()

    def url(self, name: str) -> str:
        """Base URL of a running service."""
        return self.services[name].url

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
