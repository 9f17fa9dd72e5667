"""Group commit (shared/platform/groupcommit.py): concurrent items share a write, each caller gets
its own result only after the write that holds it, a failed combined write fails only the bad item."""

from __future__ import annotations

import asyncio

import pytest

from shared.platform.groupcommit import GroupCommit


class Recorder:
    """A write that takes ``gate`` to finish, records each call's items and answers ``item * 10``;
    an item ``"bad"`` makes the whole call fail."""

    def __init__(self) -> None:
        self.calls: list[list] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, items: list) -> list:
        self.calls.append(list(items))
        await self.gate.wait()
        if "bad" in items:
            raise ValueError("bad item")
        return [item * 10 for item in items]


async def test_an_idle_item_is_written_at_once_and_alone():
    write = Recorder()
    group = GroupCommit(write)
    assert await group.submit(1) == 10
    assert write.calls == [[1]]


async def test_items_arriving_during_a_write_go_together_in_the_next():
    write = Recorder()
    write.gate.clear()  # the first write hangs until released
    group = GroupCommit(write)
    first = asyncio.create_task(group.submit(1))
    await asyncio.sleep(0)  # the first write starts
    while not write.calls:
        await asyncio.sleep(0)
    rest = [asyncio.create_task(group.submit(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0.01)
    assert not any(t.done() for t in rest)  # nobody is answered before its commit
    write.gate.set()
    assert await first == 10
    assert await asyncio.gather(*rest) == [20, 30, 40]
    # two transactions: [1], then the three that waited
    assert write.calls == [[1], [2, 3, 4]]
    assert group.rounds == 2


async def test_a_failed_combined_write_fails_only_the_bad_item():
    write = Recorder()
    write.gate.clear()
    group = GroupCommit(write)
    first = asyncio.create_task(group.submit(1))
    while not write.calls:
        await asyncio.sleep(0)
    others = [asyncio.create_task(group.submit(x)) for x in (2, "bad", 3)]
    await asyncio.sleep(0)
    write.gate.set()
    assert await first == 10
    results = await asyncio.gather(*others, return_exceptions=True)
    assert results[0] == 20 and results[2] == 30
    assert isinstance(results[1], ValueError)
    # the combined try, then each alone
    assert write.calls == [[1], [2, "bad", 3], [2], ["bad"], [3]]


async def test_a_single_failing_item_gets_the_exception():
    group = GroupCommit(Recorder())
    with pytest.raises(ValueError, match="bad item"):
        await group.submit("bad")


async def test_at_most_max_items_per_write():
    write = Recorder()
    write.gate.clear()
    group = GroupCommit(write, max_items=2)
    tasks = [asyncio.create_task(group.submit(n)) for n in range(5)]
    while not write.calls:
        await asyncio.sleep(0)
    write.gate.set()
    assert await asyncio.gather(*tasks) == [0, 10, 20, 30, 40]
    assert write.calls == [[0, 1], [2, 3], [4]]
