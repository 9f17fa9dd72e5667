"""``GET /health``: the database answers (no credential needed; no case data)."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request

from services.intake.dependencies import intake_of

router = APIRouter()


@router.get("/health")
async def health(request: Request) -> dict:  # no docstring: it would change the OpenAPI document
    async with intake_of(request).engine.connect() as conn:
        await conn.execute(sa.text("SELECT 1"))
    return {"status": "ok", "service": "intake"}
