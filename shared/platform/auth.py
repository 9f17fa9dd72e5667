"""Identity and place-scoped access (issue 6): who is calling, and what they may see and do.

Pure policy (no I/O) lives here: :class:`Principal`, the roles, what each role may do, and the
scope rules. Credentials and their storage are in :mod:`shared.platform.authstore`; the FastAPI side in
:mod:`shared.platform.authhttp`.

Roles (each credential is bound to one tenant, one role and one place scope):

============== =============================================================================
role           sees / may do
============== =============================================================================
grid_worker    cases of their grid (scope = the grid's code); reports and patrols only there
community_staff cases of their community (scope = the community's code)
street_staff   cases of their street's communities (scope = the street's code)
department_staff cases dispatched to their department, within their place scope
mediator       cases in their place scope (the mediation rung they sit on)
city_ops       every case of the tenant (scope ``""``)
admin          every case of the tenant, or of every tenant when bound to tenant ``*``
============== =============================================================================

The place scope is a prefix of the cumulative place codes (docs/domain.md §3(a): city 4, district 6,
street 9, community 12, grid 15 digits), so "inside the scope" is ``place_code.startswith(scope)``.
Outside one's scope a read answers 404 (nothing tells that the case exists) and a write 403
(issue 6 item 2). Actions per role follow the division of work of docs/domain.md §3(c)/(d): the centre
accepts, files and verifies; departments sign, dispose and ask for extensions; mediators mediate;
grid workers handle small matters themselves and report up level by level.
"""

from __future__ import annotations

from dataclasses import dataclass

ALL_TENANTS = "*"

GRID_WORKER = "grid_worker"
COMMUNITY_STAFF = "community_staff"
STREET_STAFF = "street_staff"
DEPARTMENT_STAFF = "department_staff"
MEDIATOR = "mediator"
CITY_OPS = "city_ops"
ADMIN = "admin"
ROLES: tuple[str, ...] = (GRID_WORKER, COMMUNITY_STAFF, STREET_STAFF, DEPARTMENT_STAFF, MEDIATOR, CITY_OPS, ADMIN)
ROLE_LABELS = {
    GRID_WORKER: "网格员", COMMUNITY_STAFF: "社区工作人员", STREET_STAFF: "街道工作人员",
    DEPARTMENT_STAFF: "职能部门人员", MEDIATOR: "调解员", CITY_OPS: "指挥中心", ADMIN: "管理员",
}

# Capabilities that are not case actions.
REPORT = "report"          # POST /v1/reports, Open311 POST requests
PATROL = "patrol"          # POST /v1/patrols
IMPORT = "import"          # POST /v1/imports (bulk history)
_FIELD_ROLES = (GRID_WORKER, COMMUNITY_STAFF, STREET_STAFF, CITY_OPS, ADMIN)
CAPABILITIES: dict[str, tuple[str, ...]] = {
    REPORT: _FIELD_ROLES + (MEDIATOR,),
    PATROL: _FIELD_ROLES,
    IMPORT: (CITY_OPS, ADMIN),
}

_MEDIATION = ("mediation_agreement", "mediation_failed")
_CHECK = ("verify_pass", "verify_fail")
_DEPARTMENT = ("acknowledge", "start", "resolve", "return", "transfer", "request_extension")
#: The closed loop after closure and corrections: 回访 callback, 重办 reopen, category correction.
_CLOSED_LOOP = ("callback", "reopen", "recategorize")
_CENTRE = ("accept", "reject", "file", "escalate", "self_handle") + _CHECK + _MEDIATION + _CLOSED_LOOP
_SUPERVISOR = ("approve_extension", "shelve", "cancel", "merge_duplicate")
#: Case actions (shared/contract/actions.py REQUESTABLE_ACTIONS) each role may request.
ROLE_ACTIONS: dict[str, frozenset[str]] = {
    GRID_WORKER: frozenset(("self_handle", "escalate") + _CHECK + _MEDIATION),
    COMMUNITY_STAFF: frozenset(_CENTRE),
    STREET_STAFF: frozenset(_CENTRE + _SUPERVISOR + ("transfer",)),
    DEPARTMENT_STAFF: frozenset(_DEPARTMENT),
    MEDIATOR: frozenset(_MEDIATION + ("escalate",)),
    CITY_OPS: frozenset(_CENTRE + _DEPARTMENT + _SUPERVISOR),
    ADMIN: frozenset(_CENTRE + _DEPARTMENT + _SUPERVISOR),
}
#: Roles whose scope must name a place (a grid worker without a grid would see the whole city).
SCOPED_ROLES = (GRID_WORKER, COMMUNITY_STAFF, STREET_STAFF)


class AccessError(ValueError):
    """A credential's description is inconsistent (unknown role, department staff without a
    department, …); raised when issuing credentials."""


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    - ``subject``: the credential's id (API key id ``k_…`` or JWT ``jti``), also the actor
      reference in audit records; never a person's name.
    - ``tenant``: the tenant the credential is bound to (``*``: every tenant, admin only).
    - ``role``: one of :data:`ROLES`.
    - ``scope``: a place-code prefix (``""`` = the whole tenant).
    - ``department``: department code, for department staff only.
    - ``credential``: ``api_key`` or ``jwt``.
    """

    subject: str
    tenant: str
    role: str
    scope: str = ""
    department: str | None = None
    credential: str = "api_key"

    def __post_init__(self) -> None:
        check_grant(self.tenant, self.role, self.scope, self.department)

    # ------------------------------------------------------------------ reads

    def sees_tenant(self, tenant: str) -> bool:
        """Whether the credential is bound to ``tenant`` (or to every tenant)."""
        return self.tenant == ALL_TENANTS or self.tenant == tenant

    def sees_place(self, tenant: str, place_code: str | None) -> bool:
        """Whether ``place_code`` of ``tenant`` lies inside the place scope."""
        return self.sees_tenant(tenant) and (place_code or "").startswith(self.scope)

    def sees_case(self, tenant: str, place_code: str | None, department: str | None) -> bool:
        """Whether the caller may see a case of ``tenant`` at ``place_code`` currently with
        ``department`` (``None``: not dispatched yet): the place must be inside the scope and,
        for department staff, the case must be dispatched to their department."""
        if not self.sees_place(tenant, place_code):
            return False
        return self.role != DEPARTMENT_STAFF or (department is not None and department == self.department)

    def narrow(self, place_prefix: str | None) -> str | None:
        """The effective place prefix of a query for ``place_prefix`` (``None``/empty: no filter
        asked): the longer of the scope and the asked prefix when one contains the other, else
        ``None`` (the asked places are all outside the scope).

        >>> Principal("k", "t", "community_staff", "110101001001").narrow("110101")
        '110101001001'
        """
        asked = place_prefix or ""
        if asked.startswith(self.scope):
            return asked
        if self.scope.startswith(asked):
            return self.scope
        return None

    def department_filter(self, department: str | None) -> tuple[bool, str | None]:
        """``(allowed, department)`` for a query's department filter: department staff always
        query their own department (another one is outside their scope); others query what they
        asked for."""
        if self.role != DEPARTMENT_STAFF:
            return True, department
        if department is not None and department != self.department:
            return False, None
        return True, self.department

    # ------------------------------------------------------------------ writes

    def may(self, capability: str) -> bool:
        """Whether the role has ``capability`` (:data:`REPORT`, :data:`PATROL`, :data:`IMPORT`)."""
        return self.role in CAPABILITIES.get(capability, ())

    def may_act(self, action: str) -> bool:
        """Whether the role may request the case action ``action``."""
        return action in ROLE_ACTIONS.get(self.role, frozenset())

    def may_import(self, tenant: str) -> bool:
        """Bulk imports cover a whole tenant: city ops or admin of that tenant."""
        return self.may(IMPORT) and self.sees_tenant(tenant) and self.scope == ""


def check_grant(tenant: str, role: str, scope: str, department: str | None) -> None:
    """Check that a credential description makes sense.

    Raises:
        AccessError: unknown role; ``*`` tenant for a role other than admin; a grid, community
            or street role without a place scope; department staff without a department (or a
            department on another role); a scope that is not alphanumeric.
    """
    if role not in ROLES:
        raise AccessError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if not tenant:
        raise AccessError("a credential is bound to a tenant")
    if tenant == ALL_TENANTS and role != ADMIN:
        raise AccessError("only admin credentials may span every tenant ('*')")
    if scope and not scope.isalnum():
        raise AccessError(f"scope {scope!r} is not a place-code prefix")
    if role in SCOPED_ROLES and not scope:
        raise AccessError(f"a {role} credential needs a place scope (the {role.split('_')[0]}'s place code)")
    if role == DEPARTMENT_STAFF and not department:
        raise AccessError("a department_staff credential needs a department")
    if role != DEPARTMENT_STAFF and department:
        raise AccessError("only department_staff credentials carry a department")
