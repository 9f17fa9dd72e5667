"""Routing: which department, mediation level or queue gets a reported case. Pure, no I/O.

Order (docs/domain.md §3(d)1, "route by a category→department table plus place ownership";
the tenant table idea follows Signalen's ordered routing expressions, docs/domain.md §2.1):

1. The tenant's rules (``deploy/tenants/<tenant>.yaml`` ``routing.rules``), in file order; the
   first rule whose ``category``, ``place_prefix`` and ``hours`` (tenant local time) all match
   wins. ``rule`` is the rule's name.
2. If the category is not in the taxonomy: the triage queue, rule ``triage:unknown-category``
   (ReportIn accepts unknown codes and sends them to triage, services/intake/schemas.py).
3. If ``use_taxonomy_defaults``: the category's default handler from docs/domain.md §3(b), rule
   ``taxonomy:<code>``. A dispute category (300101 家庭纠纷, 300102 邻里纠纷) goes to the
   people's-mediation chain (department ``mediation``) at the lowest level that owns the place
   (docs/domain.md §3(c) mediation ladder and §3(d)2 "handle at the lowest capable level").
4. Otherwise: triage, rule ``triage:no-matching-rule``.

A rule whose department is ``mediation`` or ``triage`` yields that target kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from shared.domain.taxonomy import Taxonomy
from shared.domain.tenants import RoutingRule, TenantConfig

TargetKind = Literal["department", "mediation", "triage"]

MEDIATION_DEPARTMENT = "mediation"
TRIAGE_DEPARTMENT = "triage"
RULE_UNKNOWN_CATEGORY = "triage:unknown-category"
RULE_NO_MATCH = "triage:no-matching-rule"


@dataclass(frozen=True)
class RouteDecision:
    """Where a case goes.

    - ``target_kind``: ``department``, ``mediation`` or ``triage`` (as in ``CaseDispatched``).
    - ``department``: a department code (``mediation`` / ``triage`` for those kinds).
    - ``rule``: the tenant rule name, ``taxonomy:<code>``, or ``triage:<reason>``.
    - ``mediation_level``: ``grid``, ``community`` or ``street`` for mediation, else ``None``.
    """

    target_kind: TargetKind
    department: str
    rule: str
    mediation_level: str | None = None


def mediation_level_for(place_code: str) -> str:
    """The lowest mediation level that owns ``place_code``, by code length (docs/domain.md §3(a)
    place codes, §3(c) ladder 院落 → 社区调委会 → 街道调解中心):

    15 or more characters (a grid, or a courtyard/building under it) -> ``grid``;
    12-14 -> ``community``; anything shorter (street 9, district 6, city 4, foreign codes)
    -> ``street``, the top of the ladder.
    """
    n = len(place_code)
    if n >= 15:
        return "grid"
    if n >= 12:
        return "community"
    return "street"


def _decision(department: str, rule: str, place_code: str) -> RouteDecision:
    if department == MEDIATION_DEPARTMENT:
        return RouteDecision("mediation", department, rule, mediation_level_for(place_code))
    if department == TRIAGE_DEPARTMENT:
        return RouteDecision("triage", department, rule, None)
    return RouteDecision("department", department, rule, None)


def matching_rule(
    category_code: str, place_code: str, tenant: TenantConfig, at: datetime | None = None
) -> RoutingRule | None:
    """The first tenant rule that matches, or ``None``. ``at`` is converted to the tenant's
    timezone for ``hours`` windows; without ``at``, rules with ``hours`` never match.

    Raises:
        ValueError: ``at`` is a naive datetime.
    """
    local = None
    if at is not None:
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("route(): 'at' must be timezone-aware")
        local = at.astimezone(tenant.tzinfo).time()
    for rule in tenant.routing.rules:
        if rule.matches(category_code, place_code, local):
            return rule
    return None


def route(
    category_code: str,
    place_code: str,
    tenant: TenantConfig,
    taxonomy: Taxonomy,
    at: datetime | None = None,
) -> RouteDecision:
    """Route one case (see the module docstring for the order and its sources).

    Args:
        category_code: the report's category (a taxonomy code or a foreign one).
        place_code: the report's cumulative place code (docs/domain.md §3(a)).
        tenant: the tenant's configuration (rules, timezone).
        taxonomy: default handlers and dispute categories (docs/domain.md §3(b)).
        at: when the case was reported (timezone-aware); needed for ``hours`` rules.

    Returns:
        A :class:`RouteDecision`; never raises for unknown categories or places (triage).

    Raises:
        ValueError: ``at`` is a naive datetime.
    """
    rule = matching_rule(category_code, place_code, tenant, at)
    if rule is not None:
        return _decision(rule.department, rule.name, place_code)
    category = taxonomy.category(category_code)
    if category is None:
        return RouteDecision("triage", TRIAGE_DEPARTMENT, RULE_UNKNOWN_CATEGORY, None)
    if not tenant.routing.use_taxonomy_defaults:
        return RouteDecision("triage", TRIAGE_DEPARTMENT, RULE_NO_MATCH, None)
    rule_name = f"taxonomy:{category.code}"
    if category.kind == "dispute":
        return RouteDecision("mediation", MEDIATION_DEPARTMENT, rule_name, mediation_level_for(place_code))
    return _decision(category.department, rule_name, place_code)
