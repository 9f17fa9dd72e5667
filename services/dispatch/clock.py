"""Dispatch's clock: real time, or a controllable one for tests (issue 3 item 9, "escalation
tests with a controllable clock").

With ``DISPATCH_TEST_CLOCK=true`` the service exposes ``POST /v1/test/clock/advance`` and its
``now()`` is real time plus the advanced offset; otherwise the endpoint does not exist.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """``now()`` = real UTC time + ``offset``; :meth:`advance` moves it forward (tests only)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        """The current time (timezone-aware, UTC)."""
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> datetime:
        """Move the clock ``seconds`` forward (never back); return the new ``now()``.

        Raises:
            ValueError: ``seconds`` is negative.
        """
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.offset += timedelta(seconds=seconds)
        return self.now()
