"""The store's candidate query (services/intake/textstore.py ``find_duplicates``) against the pure
rule (shared/domain/duplicates.py ``near``) on real PostgreSQL: every stored report the rule puts
within 50 m of a new one is read, at the box's edges too: both sides of 50 m along the meridian,
the parallel and the bearings where the circle touches its box (about 90° and 270°), south and
west of 0°, beside the 180th meridian and the poles. Coordinates go through JSONB as the stores
write them (json.dumps of the float) and come back through ``->>`` and a cast to float8.

Each stored report has a category of its own, so the answer lists it or nothing; the new report
is at another place code, so only the distance can make it a candidate."""

from __future__ import annotations

import json
import math
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.intake import db
from services.intake.textstore import find_duplicates
from shared.domain.duplicates import EARTH_RADIUS_M, Report, near

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
WINDOW = timedelta(days=30)

CENTRES = [
    (0.0, 0.0), (39.9, 116.4), (-33.86, 151.2), (-34.6037, -58.3816), (64.1466, -21.9426),
    (-77.846, 166.676),
    (89.9995, 0.0),  # 55.6 m from the pole: a box of ±64° of longitude
    (89.9997, 30.0), (-89.9997, -150.0),  # 33 m from a pole: any longitude
    (90.0, 0.0), (-90.0, 0.0),
    (0.0, 179.9995), (0.0, -179.9995), (12.3, 180.0), (-45.0, -180.0),  # the box would cross ±180
    (0.0, 179.999), (60.0, -179.998),  # beside it, inside
]
BEARINGS = [0, 45, 89, 89.9, 90, 90.1, 91, 135, 180, 225, 269, 269.9, 270, 270.1, 271, 315]
METRES = [49.999, 50.0, 50.001]


def destination(lat: float, lon: float, bearing: float, metres: float) -> tuple[float, float]:
    """As tests/unit/test_duplicates.py, the longitude brought into -180..180."""
    d, theta = metres / EARTH_RADIUS_M, math.radians(bearing)
    p1, l1 = math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(theta))
    l2 = l1 + math.atan2(math.sin(theta) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2))
    return math.degrees(p2), (math.degrees(l2) + 540.0) % 360.0 - 180.0


async def test_every_stored_report_within_50_m_is_read(intake_own_db):
    rng = random.Random(20261207)
    centres = CENTRES + [(rng.uniform(-89.0, 89.0), rng.uniform(-180.0, 180.0)) for _ in range(15)]
    cases = []  # (new report, stored report, its JSON)
    for i, (lat, lon) in enumerate(centres):
        for j, (bearing, metres) in enumerate((b, m) for b in BEARINGS for m in METRES):
            category = f"c{i}-{j}"
            p_lat, p_lon = destination(lat, lon, bearing, metres)
            new = Report(str(uuid.uuid4()), category, "new-place", T0, "x", lat, lon)
            stored = Report(str(uuid.uuid4()), category, "stored-place", T0 - timedelta(days=1), "y", p_lat, p_lon)
            cases.append((new, stored, {"description": "y", "latitude": p_lat, "longitude": p_lon}))
        # one with a latitude alone at the centre: never a candidate by distance
        new = Report(str(uuid.uuid4()), f"c{i}-lat", "new-place", T0, "x", lat, lon)
        stored = Report(str(uuid.uuid4()), f"c{i}-lat", "stored-place", T0 - timedelta(days=1), "y", lat, None)
        cases.append((new, stored, {"description": "y", "latitude": lat}))
    async with intake_own_db.begin() as conn:
        await conn.execute(db.reports.insert(), [
            {"case_id": uuid.UUID(s.case_id), "tenant": "box-probe", "source": "api", "category_code": s.category_code,
             "place_code": s.place_code, "reported_at": s.reported_at, "report": json.loads(json.dumps(report))}
            for _, s, report in cases])
    missed, extra, near_count = [], [], 0
    for new, stored, _ in cases:
        expected = near(new, stored)
        near_count += expected
        found = [d["case_id"] for d in await find_duplicates(intake_own_db, "box-probe", new, WINDOW)]
        if expected and found != [stored.case_id]:
            missed.append((new.latitude, new.longitude, stored.latitude, stored.longitude))
        if not expected and found:
            extra.append((new.latitude, new.longitude, stored.latitude, stored.longitude))
    assert (missed, extra) == ([], [])
    # at least the 16 stored 49.999 m from each centre are near (the rule is not vacuous here)
    assert near_count >= 16 * len(centres)
