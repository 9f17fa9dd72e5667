"""Regression tests for hostile input found by fuzzing intake (issue 6 item 4): each input once
made intake answer 5xx or do unbounded work; now it is a clean 4xx / rejected row."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.intake.schemas import ReportIn

BASE = {"tenant": "demo-grid", "category_code": "100401", "place_code": "990102001002001",
        "reported_at": "2024-05-01T09:00:00+08:00"}


def test_nul_in_a_recorded_transfer_department_is_refused():
    """``history.transfers[].to_department`` with NUL reached PostgreSQL's JSONB (500:
    "unsupported Unicode escape sequence"); the other history text was already checked."""
    with pytest.raises(ValidationError, match="control character U\\+0000"):
        ReportIn.model_validate({**BASE, "history": {"transfers": [{"to_department": "a\x00b"}]}})
