"""The supervisor's order of steps after the embedded broker died (gridcase/supervise.py), with
stand-ins for the stack, the broker and the database; the real thing is chaos scenario f
(tests/chaos/test_supervision.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from gridcase import supervise
from gridcase.supervise import REPLAY_MARGIN, Supervisor


class FakeBroker:
    def __init__(self, log: list, started_at: datetime) -> None:
        self.log, self.started_at, self.code = log, started_at, None
        self.bootstrap = "127.0.0.1:9"

    def exit_code(self):
        return self.code

    def start(self) -> None:
        self.log.append("broker start")
        self.code, self.started_at = None, datetime.now(UTC)


class FakeStack:
    def __init__(self, log: list, broker: FakeBroker) -> None:
        self.log = log
        self.infra = SimpleNamespace(broker=broker, postgres=None, database_url="postgresql://x")
        self.services = {name: SimpleNamespace(module=name, proc=None, url="http://127.0.0.1:9")
                         for name in ("intake", "dispatch", "reporting")}

    def stop_service(self, name, timeout_s=40.0):
        self.log.append(f"stop {name}")

    def start_service(self, name):
        self.log.append(f"start {name}")


@pytest.fixture
def world(monkeypatch):
    log: list = []
    replays: list = []
    lost_start = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    broker = FakeBroker(log, lost_start)
    stack = FakeStack(log, broker)

    async def ensure_topics(bootstrap, timeout_s=60.0):
        log.append("topics")
        return []

    async def replay_events(url, since, bootstrap=None, *, column="created_at"):
        if replays and replays[-1] == "fail":
            replays.pop()
            raise ConnectionRefusedError("database away")
        log.append("replay")
        replays.append((since, column))
        return {"intake": 3, "dispatch": 9}

    monkeypatch.setattr(supervise, "ensure_topics", ensure_topics)
    monkeypatch.setattr(supervise, "replay_events", replay_events)
    lines: list[str] = []
    return SimpleNamespace(log=log, replays=replays, broker=broker, lost_start=lost_start,
                           sup=Supervisor(stack, progress=lines.append), lines=lines)


def test_nothing_happens_while_the_broker_runs(world):
    world.sup.check_broker()
    assert world.log == [] and world.lines == []


def test_consumers_stop_before_the_new_broker_and_the_lost_log_is_replayed(world):
    world.broker.code = -9
    world.sup.check_broker()
    # Every consumer is stopped before the empty broker starts (none may commit a position of the
    # lost log into the new one), started again after the topics exist, and the replay follows.
    assert world.log == ["stop intake", "stop dispatch", "stop reporting", "broker start", "topics",
                         "start intake", "start dispatch", "start reporting", "replay"]
    # What was published to the lost broker: sent since it started, less the margin; by sent_at.
    assert world.replays == [(world.lost_start - REPLAY_MARGIN, "sent_at")]
    assert world.sup.replay_since is None and world.sup.replayed == {"intake": 3, "dispatch": 9}
    assert world.sup.broker_restarts == 1
    assert any("exited with -9" in line for line in world.lines)


def test_a_failed_replay_is_tried_again_next_round(world):
    world.broker.code = -9
    world.replays.append("fail")
    with pytest.raises(ConnectionRefusedError):
        world.sup.check_broker()
    assert world.sup.replay_since == world.lost_start - REPLAY_MARGIN
    world.sup.check_broker()  # broker runs again: only the pending replay
    assert world.log[-1] == "replay" and world.log.count("broker start") == 1
    assert world.replays == [(world.lost_start - REPLAY_MARGIN, "sent_at")]


def test_a_second_loss_before_the_replay_keeps_the_earlier_start(world):
    world.broker.code = -9
    world.replays.append("fail")
    with pytest.raises(ConnectionRefusedError):
        world.sup.check_broker()
    world.broker.code = -9  # the restarted broker died too, before the database took the replay
    world.sup.check_broker()
    # The second broker started now; the replay still reaches back to the first one's start.
    assert world.replays == [(world.lost_start - REPLAY_MARGIN, "sent_at")]


def test_describe_down_names_the_missing_dependencies():
    body = {"status": "unavailable", "dependencies": {"database": {"status": "up"},
                                                      "broker": {"status": "down", "error": "KafkaConnectionError"}}}
    assert supervise.describe_down(body) == "broker down"
