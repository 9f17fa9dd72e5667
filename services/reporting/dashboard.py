"""The operations-centre dashboard (指挥中心看板): a static web page served by reporting.

:func:`install` adds to reporting's app:

- ``GET /dashboard/`` and the files beside it (``services/reporting/static/``: ``index.html``,
  ``app.js``, ``style.css``, ``vendor/echarts.min.js``), served by Starlette ``StaticFiles``
  (``html=True``, so ``/dashboard/`` answers with ``index.html``). The page is plain JavaScript
  with no build step; it reads the JSON API of the same origin (``/v1/kpis``, ``/v1/stats``,
  ``/v1/cases/overdue``, ``/v1/cases/supervised``) and puts API text in the page with
  ``textContent`` only. Responses carry a Content-Security-Policy that allows scripts, styles and
  requests from the same origin only (no inline script, nothing from a CDN).
- ``GET /dashboard/tenants.json``: the configured tenants for the page's tenant selector, each
  with the place levels the place breakdown drills through and the code length (``depth``) of
  each, for ``/v1/stats?group_by=place&place_depth=…&place_prefix=…``; the caller; and
  ``opening``, the tenant the page opens on (:func:`opening_tenant`), whose name the page shows.

Opening tenant
--------------
The page opens on the tenant its URL names (``?tenant=``), else on ``opening``: the tenant of
``REPORTING_DASHBOARD_OPENING`` when the caller sees it, else, of the caller's tenants, the one
with the most recently reported case (a credential bound to one tenant has only that one; the
admin key of ``gridcase up`` sees them all), else the first by name.

Drill levels
------------
A level's code length is the one its listed places have in the tenant file (the most common, if
they differ); a level without listed places takes its standard length (street 9, community 12,
grid 15, shared/domain/tenants.py) when the tenant's listed levels all have their standard lengths (a
Chinese tenant), and is left out otherwise. The drill starts at the first level with more than
one listed place, or at ``street`` if that comes first (a single-street tenant still shows its
street): street → community → grid for Chinese tenants, borough → community district for NYC.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.reporting.settings import ReportingSettings
from shared.domain.tenants import STANDARD_LEVEL_LENGTHS, TenantConfig, load_all_tenants

STATIC_DIR = Path(__file__).resolve().parent / "static"
PREFIX = "/dashboard"

#: Level names, zh-CN first with English beside (levels not listed here show as they are).
LEVEL_LABELS: Mapping[str, str] = {
    "city": "市 city",
    "district": "区县 district",
    "street": "街道 street",
    "community": "社区 community",
    "grid": "网格 grid",
    "borough": "行政区 borough",
    "community_district": "社区委员会辖区 community district",
}

#: Headers of every dashboard response: same-origin scripts, styles and requests only.
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def drill_levels(tenant: TenantConfig) -> list[dict]:
    """The place levels the dashboard drills through for ``tenant``: ``[{"level", "label",
    "depth"}, …]`` top down (see the module docstring)."""
    lengths: dict[str, int] = {}
    counts: Counter[str] = Counter(p.level for p in tenant.places)
    for level in tenant.levels:
        seen = Counter(len(p.code) for p in tenant.places if p.level == level)
        if seen:
            lengths[level] = seen.most_common(1)[0][0]
    standard = all(STANDARD_LEVEL_LENGTHS.get(level) == n for level, n in lengths.items())
    levels: list[dict] = []
    for level in tenant.levels:
        depth = lengths.get(level) or (STANDARD_LEVEL_LENGTHS.get(level) if standard else None)
        if depth is None or (levels and depth <= levels[-1]["depth"]):
            continue
        levels.append({"level": level, "label": LEVEL_LABELS.get(level, level), "depth": depth,
                       "listed": counts.get(level, 0)})
    start = next((i for i, lv in enumerate(levels) if lv["listed"] > 1 or lv["level"] == "street"),
                 max(len(levels) - 1, 0))
    return [{k: lv[k] for k in ("level", "label", "depth")} for lv in levels[start:]]


def tenants_document(tenants: Mapping[str, TenantConfig]) -> dict:
    """The body of ``GET /dashboard/tenants.json``."""
    return {"tenants": [
        {"tenant": name, "name_zh": t.name_zh, "name_en": t.name_en,
         "label": " ".join(p for p in (t.name_zh, t.name_en) if p) or name,
         "timezone": t.timezone, "drill": drill_levels(t)}
        for name, t in sorted(tenants.items())
    ]}


def opening_tenant(visible: list[str], latest: Mapping[str, datetime | None], configured: str = "") -> str | None:
    """The tenant the dashboard opens on (module docstring): ``configured`` if visible, else the
    visible tenant with the latest ``latest`` time (ties: first by name), else the first by name;
    ``None`` when nothing is visible."""
    if not visible:
        return None
    if configured in visible:
        return configured
    dated = [(latest[t], t) for t in sorted(visible) if latest.get(t) is not None]
    if dated:
        newest = max(when for when, _ in dated)
        return next(t for when, t in dated if when == newest)
    return sorted(visible)[0]


async def latest_reports(engine, tenants: list[str]) -> dict[str, datetime | None]:
    """``{tenant: latest reported_at}`` from reporting's case facts (one index lookup per tenant,
    ``ix_reporting_case_facts_tenant_reported``)."""
    from services.reporting.db import case_facts as cf  # noqa: PLC0415

    if not tenants:
        return {}
    columns = [sa.select(sa.func.max(cf.c.reported_at)).where(cf.c.tenant == t).scalar_subquery().label(f"t{i}")
               for i, t in enumerate(tenants)]
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(*columns))).one()
    return dict(zip(tenants, row, strict=True))


class _WithHeaders:
    """ASGI wrapper adding :data:`SECURITY_HEADERS` to every HTTP response of ``app``."""

    def __init__(self, app: ASGIApp, headers: Mapping[str, str]) -> None:
        self.app = app
        self.headers = dict(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in self.headers.items():
                    headers.setdefault(key, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app, tenants: Mapping[str, TenantConfig] | None = None, opening: str | None = None) -> None:
    """Serve the dashboard from ``app`` (a FastAPI/Starlette app) at ``/dashboard/``.

    ``tenants`` are the configured tenants (``{name: TenantConfig}``, as create_app loads them,
    services/reporting/main.py);
    when omitted they are loaded on first use from ``GRIDCASE_TENANTS_DIR`` or ``deploy/tenants``
    (:func:`shared.domain.tenants.load_all_tenants`). ``opening`` is the configured opening tenant
    (default: ``REPORTING_DASHBOARD_OPENING``).
    """
    cache: dict[str, dict] = {}
    configured = opening if opening is not None else ReportingSettings().dashboard_opening

    def document() -> dict:
        if "doc" not in cache:
            if tenants is not None:
                loaded = tenants
            else:
                loaded = load_all_tenants(ReportingSettings().tenants_dir or None)
            cache["doc"] = tenants_document(loaded)
        return cache["doc"]

    async def tenants_json(request) -> JSONResponse:
        # The caller's tenants only, and who they are (role, scope), so the page starts at their
        # place scope and on their opening tenant. 401 without a credential (shared/platform/authhttp.py).
        who = await request.app.state.auth.principal(request)
        doc = document()
        visible = [t for t in doc["tenants"] if who.sees_tenant(t["tenant"])]
        names = [t["tenant"] for t in visible]
        engine = getattr(request.app.state, "engine", None)
        latest = await latest_reports(engine, names) if engine is not None and len(names) > 1 else {}
        body = {"tenants": visible,
                "caller": {"role": who.role, "tenant": who.tenant, "scope": who.scope, "department": who.department},
                "opening": opening_tenant(names, latest, configured)}
        return JSONResponse(body, headers=dict(SECURITY_HEADERS))

    # The route comes before the mount: Starlette matches routes in order.
    app.add_route(f"{PREFIX}/tenants.json", tenants_json, methods=["GET"], include_in_schema=False)
    app.mount(PREFIX, _WithHeaders(StaticFiles(directory=STATIC_DIR, html=True), SECURITY_HEADERS), name="dashboard")
