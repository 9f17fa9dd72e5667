"""``POST /v1/test/clock/advance``: move dispatch's clock forward (tests only; ``main.py`` includes
this router only with ``DISPATCH_TEST_CLOCK=true``, services/dispatch/clock.py)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from services.dispatch.clock import Clock

router = APIRouter()


def clock_of(request: Request) -> Clock:
    """FastAPI dependency: the service's clock (``app.state.clock``, set by ``main.py``)."""
    return request.app.state.clock


@router.post("/v1/test/clock/advance")
async def advance_clock(seconds: float, clock: Clock = Depends(clock_of)) -> dict:
    """Tests only (DISPATCH_TEST_CLOCK=true): move dispatch's clock forward."""
    return {"now": clock.advance(seconds).isoformat()}
