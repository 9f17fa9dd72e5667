"""describe_tasks / install_task_dump (shared/platform/telemetry.py): where a stalled task waits."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from shared.platform.telemetry import describe_tasks, install_task_dump


async def _innermost(gate: asyncio.Event) -> None:
    await gate.wait()


async def _middle(gate: asyncio.Event) -> None:
    await _innermost(gate)


async def test_describe_tasks_follows_the_await_chain_to_where_the_task_waits():
    gate = asyncio.Event()
    task = asyncio.create_task(_middle(gate), name="stalled-consumer")
    await asyncio.sleep(0)  # let it reach gate.wait()
    text = describe_tasks({task})
    lines = text.splitlines()
    assert lines[0] == "task stalled-consumer"
    names = [line.rsplit(" ", 1)[-1] for line in lines[1:]]
    # _middle → _innermost → Event.wait → the future it waits on
    assert names[:3] == ["_middle", "_innermost", "wait"]
    assert lines[-1].strip().startswith("awaiting")
    gate.set()
    await task


async def test_sigusr1_logs_the_tasks(caplog):
    gate = asyncio.Event()
    task = asyncio.create_task(_middle(gate), name="stalled-relay")
    logger = logging.getLogger("test.taskdump")
    install_task_dump(logger)
    try:
        with caplog.at_level(logging.WARNING, logger="test.taskdump"):
            os.kill(os.getpid(), signal.SIGUSR1)
            for _ in range(50):
                await asyncio.sleep(0.01)
                if caplog.records:
                    break
        assert any("task stalled-relay" in r.getMessage() and "_innermost" in r.getMessage() for r in caplog.records)
    finally:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)
        gate.set()
        await task
