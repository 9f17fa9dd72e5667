"""Places and units: the coordinating level a case starts at and the unit above a place
(docs/domain.md §3(a), §3(d)2)."""

from __future__ import annotations

from services.dispatch.domain.lifecycle.states import ESCALATION_LEVELS
from shared.domain.tenants import STANDARD_LEVEL_LENGTHS, TenantConfig


def place_level(place_code: str, tenant: TenantConfig | None = None) -> str:
    """The coordinating level a case starts at: the tenant's level of the place if listed, else
    by code length (docs/domain.md §3(a): ≥15 grid, ≥12 community, ≥9 street, shorter district)."""
    if tenant is not None:
        owner = tenant.owner(place_code)
        if owner is not None and owner.level in ESCALATION_LEVELS:
            return owner.level
    n = len(place_code)
    if n >= 15:
        return "grid"
    if n >= 12:
        return "community"
    if n >= 9:
        return "street"
    return "district"


def unit_at(place_code: str, level: str, tenant: TenantConfig | None = None) -> str | None:
    """The place code of the unit at ``level`` (e.g. ``street``) that contains ``place_code``:
    the tenant's listed ancestor (or the place itself) on that level; without a tenant, the code
    prefix of the standard length (docs/domain.md §3(a): community 12, street 9, district 6) when the
    code is that long and numeric; else ``None``."""
    if tenant is not None:
        chain = list(tenant.ancestors(place_code))
        own = tenant.place(place_code)
        if own is not None:
            chain.append(own)
        for place in chain:
            if place.level == level:
                return place.code
        return None
    length = STANDARD_LEVEL_LENGTHS.get(level)
    if length is None or len(place_code) < length or not place_code[:length].isdigit():
        return None
    return place_code[:length]

