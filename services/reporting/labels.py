"""Human labels of reporting's group keys, zh-CN first with English beside (Chinese is the users'
language; README): statuses, channels, departments and categories (taxonomy, or the tenant's own
departments), places (tenant file)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.reporting.kpis.catalogue import PLACE_LEVELS
from shared.domain.tenants import TenantConfig

#: Statuses of ``/v1/stats?group_by=status`` (services/reporting/stats.py ``STATUS_EXPR``).
STATUS_LABELS = {
    "closed": "已办结 closed",
    "transferred": "已转办 transferred",
    # dispatched and never transferred: the not-transferred part of 在办 (the KPI catalogue's 在办·未转办;
    # the transferred open cases are the status 已转办 beside it), never a bare 在办
    "in_progress": "在办·未转办 in progress (not transferred)",
    "mediation": "调解中 in mediation",
    "triage": "待分拨 triage",
    "reported": "待派遣 awaiting dispatch",
    "awaiting_acceptance": "待受理 awaiting acceptance",
    "rejected": "不予受理 rejected",
    "cancelled": "已作废 cancelled",
}


def label_for(group_by: str, key, tenant, taxonomy) -> str:
    """Human label of a statistics group key (``/v1/stats``): department and category names from
    the taxonomy (or the tenant's own departments), place names from the tenant file, status
    names from :data:`STATUS_LABELS`; the key itself when nothing better is known."""
    if key is None:
        return "(无 none)"
    if group_by == "department":
        if taxonomy.department(key) is not None:
            return taxonomy.department_label(key)
        local = tenant.department(key) if tenant else None
        return f"{key} · {local.label}" if local is not None else key
    if group_by == "category":
        return taxonomy.category_label(key)
    if group_by == "place":
        return tenant.place_label(key) if tenant else key
    if group_by == "status":
        return STATUS_LABELS.get(key, key)
    return str(key)


#: Channel codes seen in imports and reports, labelled zh-CN first (others show as they are).
CHANNEL_LABELS: Mapping[str, str] = {
    "grid_worker": "网格员上报 grid worker",
    "phone": "电话 phone",
    "PHONE": "电话 phone",
    "web": "网站 web",
    "ONLINE": "网上 online",
    "app": "手机应用 app",
    "wechat": "微信 WeChat",
    "12345": "12345热线 12345 hotline",
}


def group_label(group_by: str, key: Any, tenant: TenantConfig | None, taxonomy) -> str:
    """Label of a KPI group key (``/v1/kpis``), zh-CN first: place names from the tenant file
    (``"<name_zh> <name_en>"``), categories and departments as :func:`label_for`, channels from
    :data:`CHANNEL_LABELS`; the key itself when nothing better is known, ``"(无 none)"`` for no
    key."""
    if key is None:
        return "(无 none)"
    if group_by in PLACE_LEVELS:
        return tenant.place_label(key) if tenant else str(key)
    if group_by in ("category", "department") and taxonomy is not None:
        return label_for(group_by, key, tenant, taxonomy)
    if group_by == "channel":
        return CHANNEL_LABELS.get(key, str(key))
    return str(key)


def department_short_name(code: str, tenant: TenantConfig | None, taxonomy) -> str:
    """A department's Chinese short name (taxonomy, else the tenant's own departments), the code
    when neither knows it (the work summary names departments so)."""
    if taxonomy is not None and taxonomy.department(code) is not None:
        return taxonomy.department(code).name_zh
    local = tenant.department(code) if tenant else None
    return local.name_zh if local is not None and local.name_zh else code
