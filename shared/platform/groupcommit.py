"""Group commit: concurrent callers' writes go to the database together, one transaction for all
that arrived while the previous one was committing (issue 13; docs/operations.md §3).

A caller :meth:`GroupCommit.submit`\\ s its item and waits; it is answered only after the commit
that holds its item. The first item after a quiet spell is written at once (no timer, no added
latency); while that transaction runs, the next items gather and go together in the next one.
So under load one round of BEGIN … COMMIT serves many requests, and when idle nothing waits.

If a combined write fails, each item is written again on its own, so one bad item fails only its
own caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    """Writes items with ``write(items) -> results`` (one result per item, in order, in one
    transaction), at most ``max_items`` at a time."""

    def __init__(self, write: Callable[[list[Item]], Awaitable[list[Result]]], max_items: int = 256) -> None:
        self.write = write
        self.max_items = max_items
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task | None = None
        self.rounds = 0  # transactions written (for tests and metrics)

    async def submit(self, item: Item) -> Result:
        """Write ``item`` with whatever else is waiting; its result once committed (or the write's
        exception)."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="group-commit")
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self.max_items], self._pending[self.max_items:]
            live = [(item, f) for item, f in batch if not f.cancelled()]
            if not live:
                continue
            try:
                self.rounds += 1
                results = await self.write([item for item, _ in live])
            except asyncio.CancelledError:
                for _, f in live:
                    if not f.done():
                        f.cancel()
                raise
            except Exception as exc:  # noqa: BLE001 - handed to the callers
                if len(live) == 1:
                    _settle(live[0][1], exc=exc)
                    continue
                log.info("group commit of %d failed (%s); writing each alone", len(live), type(exc).__name__)
                for item, f in live:
                    try:
                        self.rounds += 1
                        (result,) = await self.write([item])
                    except asyncio.CancelledError:
                        raise
                    except Exception as one:  # noqa: BLE001
                        _settle(f, exc=one)
                    else:
                        _settle(f, result=result)
                continue
            for (_, f), result in zip(live, results, strict=True):
                _settle(f, result=result)


def _settle(future: asyncio.Future, *, result=None, exc: BaseException | None = None) -> None:
    if future.done():  # the caller went away
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
