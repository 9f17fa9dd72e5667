"""Tenant configuration: places, timezone and routing overrides, from ``deploy/tenants/<tenant>.yaml``.

Longer than the house's ~500 lines on purpose: the tenant model and its YAML parser (with file and
line in every error) change together — a new tenant field touches both — so they stay one module.

A tenant file looks like::

    tenant: demo-market          # must equal the file stem
    name_zh: ...
    name_en: ...
    timezone: Asia/Shanghai      # an IANA zone
    levels: [city, district, street, community, grid]   # optional; this is the default
    places:                      # cumulative codes; parent = longest listed proper prefix
      - {code: "110105", level: district, name_zh: ..., name_en: ...}
      - {code: "110105001", level: street, name_zh: ..., name_en: ...}
    departments:                 # optional tenant-local departments (e.g. NYC agencies)
      - {code: HPD, name_en: Department of Housing Preservation and Development}
    routing:
      rules:                     # ordered, first match wins (services/dispatch/domain/routing.py)
        - {name: fume-to-environment, category: "100110", place_prefix: "110105001",
           department: ecology_environment, hours: "22:00-06:00"}
      use_taxonomy_defaults: true
    assessment_weights:          # optional; the composite score's weights (docs/kpis.md), sum 1
      {response: 0.30, resolution: 0.35, satisfaction: 0.35}
    max_reopens: 3               # optional; 重办 allowed per case (default 3, docs/domain.md §3(c)6)
    open311_public_reads: true   # optional (default false); Open311 request reads without api_key

Place codes follow docs/domain.md §3(a) (city 4, district 6, street 9, community 12, grid 15 digits,
each level extending its parent's code). Foreign tenants (NYC) use their own codes and levels, so
the loader does not check code lengths; it checks that every place's parent (an explicit
``parent:`` or the longest listed proper prefix) is a prefix of its code and sits on a higher
level, and that places below the tenant's top level have a parent.

Errors raise :class:`TenantConfigError` with ``<file>:<line>: <reason>``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.contract.events import PLACE_CODE_PATTERN, TENANT_PATTERN
from shared.domain.taxonomy import (
    CATEGORY_CODE_RE,
    ConfigFileError,
    MarkedDict,
    Taxonomy,
    check_keys,
    get_str,
    load_taxonomy,
    read_yaml,
)

#: Standard place levels, top down (docs/domain.md §3(a)).
STANDARD_LEVELS: tuple[str, ...] = ("city", "district", "street", "community", "grid")

#: Code length of each standard level (docs/domain.md §3(a)); used only to guess the level of an
#: unlisted code (:meth:`TenantConfig.level_of`), never to reject a tenant file.
STANDARD_LEVEL_LENGTHS: Mapping[str, int] = MappingProxyType(
    {"city": 4, "district": 6, "street": 9, "community": 12, "grid": 15}
)

ENV_TENANTS_DIR = "GRIDCASE_TENANTS_DIR"

#: How often a closed case may be reopened (重办) unless the tenant file says otherwise: a case
#: redone three times or more goes to higher-level supervision [P22] (docs/domain.md §1.5, §3(c)6).
DEFAULT_MAX_REOPENS = 3

@dataclass(frozen=True)
class AssessmentWeights:
    """Weights of the composite assessment score (综合评分, docs/kpis.md): 响应率 response, 解决率
    resolution, 满意率 satisfaction. The default 30/35/35 is the sample scheme of Beijing's
    接诉即办 rating [P23] (docs/domain.md §1.5).

    Raises:
        ValueError: a weight outside 0..1, or weights not summing to 1 (within 1e-9).
    """

    response: float = 0.30
    resolution: float = 0.35
    satisfaction: float = 0.35

    def __post_init__(self) -> None:
        for name in ("response", "resolution", "satisfaction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"assessment weight {name} must be a number from 0 to 1, got {value!r}")
        if abs(self.response + self.resolution + self.satisfaction - 1) > 1e-9:
            raise ValueError("assessment weights must sum to 1 "
                             f"(got {self.response} + {self.resolution} + {self.satisfaction})")

    def as_dict(self) -> dict[str, float]:
        """``{"response", "resolution", "satisfaction"}``."""
        return {"response": self.response, "resolution": self.resolution, "satisfaction": self.satisfaction}


_PLACE_CODE_RE = re.compile(PLACE_CODE_PATTERN)
_TENANT_RE = re.compile(TENANT_PATTERN)
_LEVEL_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_RULE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_LOCAL_DEPT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
_HOURS_RE = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]|24):([0-5][0-9])$")


class TenantConfigError(ConfigFileError):
    """A tenant file is missing or invalid: message ``<file>:<line>: <reason>`` (e.g. unknown
    department in a rule, duplicate place code, child without parent prefix, unknown timezone,
    ``tenant`` different from the file stem)."""


def default_tenants_dir() -> Path:
    """``$GRIDCASE_TENANTS_DIR`` if set, else ``<repo>/deploy/tenants``."""
    env = os.environ.get(ENV_TENANTS_DIR)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "deploy" / "tenants"


@dataclass(frozen=True)
class Place:
    """One listed place: ``code`` (cumulative, docs/domain.md §3(a)), ``level`` (e.g. ``street``),
    names, ``parent`` (code of the parent place or ``None`` for a top place), optional ``kind``
    (grid kind 综合/专属, comprehensive/dedicated, docs/domain.md §1.4) and the file ``line``."""

    code: str
    level: str
    name_zh: str
    name_en: str
    parent: str | None = None
    kind: str | None = None
    line: int = 0

    @property
    def label(self) -> str:
        """``"<name_zh> <name_en>"`` (either part may be empty)."""
        return " ".join(p for p in (self.name_zh, self.name_en) if p)


@dataclass(frozen=True)
class TenantDepartment:
    """A tenant-local department (e.g. an NYC agency ``HPD``) that the taxonomy does not hold."""

    code: str
    name_zh: str
    name_en: str

    @property
    def label(self) -> str:
        """``"<name_zh> <name_en>"`` (either part may be empty), else the code."""
        return " ".join(p for p in (self.name_zh, self.name_en) if p) or self.code


@dataclass(frozen=True)
class RoutingRule:
    """A tenant routing rule; all given conditions must hold (docs/domain.md §3(d)1).

    - ``category``: exact category code, or ``None`` for any category.
    - ``place_prefix``: the place code must start with it, or ``None`` for any place.
    - ``hours``: ``(start, end)`` local-time window, ``start <= t < end``; when ``start > end``
      the window wraps midnight (``22:00-06:00``). ``None``: any time.
    - ``department``: target department code (taxonomy or tenant-local; ``mediation`` and
      ``triage`` are allowed and route to mediation/triage).
    """

    name: str
    department: str
    category: str | None = None
    place_prefix: str | None = None
    hours: tuple[time, time] | None = None
    hours_text: str | None = None
    note: str | None = None
    line: int = 0

    def in_window(self, local: time) -> bool:
        """True if the local wall-clock time ``local`` lies in :attr:`hours` (always if none)."""
        if self.hours is None:
            return True
        start, end = self.hours
        if start < end:
            return start <= local < end
        return local >= start or local < end

    def matches(self, category_code: str, place_code: str, local: time | None) -> bool:
        """True if the rule applies. ``local`` is the tenant-local time of the report; when it is
        ``None``, a rule with an ``hours`` window never matches."""
        if self.category is not None and category_code != self.category:
            return False
        if self.place_prefix is not None and not place_code.startswith(self.place_prefix):
            return False
        if self.hours is not None:
            return local is not None and self.in_window(local)
        return True


@dataclass(frozen=True)
class RoutingConfig:
    """Ordered tenant rules (first match wins) and whether taxonomy defaults apply after them."""

    rules: tuple[RoutingRule, ...] = ()
    use_taxonomy_defaults: bool = True


@dataclass(frozen=True)
class TenantConfig:
    """One tenant's configuration; build it with :func:`load_tenant`.

    ``places`` are in file order; lookups go through an index by code. ``max_reopens`` bounds
    the reopens (重办) of one case (:data:`DEFAULT_MAX_REOPENS` unless the file says otherwise);
    ``assessment_weights`` weight the composite score (:class:`AssessmentWeights`; the default
    unless the file says).
    """

    tenant: str
    name_zh: str
    name_en: str
    timezone: str
    levels: tuple[str, ...]
    places: tuple[Place, ...]
    routing: RoutingConfig
    departments: tuple[TenantDepartment, ...] = ()
    path: str = ""
    max_reopens: int = DEFAULT_MAX_REOPENS
    assessment_weights: AssessmentWeights = AssessmentWeights()
    #: Open311 GeoReport v2 request reads (``requests.json``/``.xml``, one request, tokens) answer
    #: without an ``api_key``, as the spec has them (services/intake/open311/router.py).
    open311_public_reads: bool = False
    _by_code: Mapping[str, Place] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_code", MappingProxyType({p.code: p for p in self.places}))

    @property
    def tzinfo(self) -> ZoneInfo:
        """The tenant's timezone as a :class:`zoneinfo.ZoneInfo`."""
        return ZoneInfo(self.timezone)

    def place(self, code: str) -> Place | None:
        """The listed place with ``code``, or ``None``."""
        return self._by_code.get(code)

    def owner(self, code: str) -> Place | None:
        """The listed place ``code`` itself, else the listed place with the longest proper prefix
        of ``code`` (e.g. the grid that owns a building code), else ``None``."""
        place = self._by_code.get(code)
        if place is not None:
            return place
        for end in range(len(code) - 1, 0, -1):
            place = self._by_code.get(code[:end])
            if place is not None:
                return place
        return None

    def place_label(self, code: str) -> str:
        """``"<name_zh> <name_en>"`` of a listed place, else ``code`` itself."""
        place = self._by_code.get(code)
        return place.label if place is not None else code

    def ancestors(self, code: str) -> tuple[Place, ...]:
        """Listed places above ``code``, top down, excluding ``code`` itself.

        Works for unlisted codes too (e.g. a building under a grid): the chain starts at the
        longest listed proper prefix.
        """
        place = self._by_code.get(code)
        parent = place.parent if place is not None else None
        if place is None:
            owner = self.owner(code)
            parent = owner.code if owner is not None else None
        chain: list[Place] = []
        while parent is not None:
            node = self._by_code[parent]
            chain.append(node)
            parent = node.parent
        return tuple(reversed(chain))

    def level_of(self, code: str) -> str | None:
        """The level of a listed place; for an unlisted code of a standard length (4, 6, 9, 12,
        15 characters, docs/domain.md §3(a)) the standard level; else ``None``."""
        place = self._by_code.get(code)
        if place is not None:
            return place.level
        for level, length in STANDARD_LEVEL_LENGTHS.items():
            if len(code) == length:
                return level
        return None

    def places_at(self, level: str) -> tuple[Place, ...]:
        """All listed places of ``level`` in file order (e.g. ``"grid"``)."""
        return tuple(p for p in self.places if p.level == level)

    def children(self, code: str) -> tuple[Place, ...]:
        """Listed places whose parent is ``code``, in file order."""
        return tuple(p for p in self.places if p.parent == code)

    def department(self, code: str) -> TenantDepartment | None:
        """A tenant-local department, or ``None``."""
        for department in self.departments:
            if department.code == code:
                return department
        return None

    def department_label(self, code: str, taxonomy: Taxonomy | None = None) -> str:
        """Label of a taxonomy department (if ``taxonomy`` given and it knows ``code``), else of a
        tenant-local department, else ``code`` itself."""
        if taxonomy is not None and taxonomy.department(code) is not None:
            return taxonomy.department_label(code)
        local = self.department(code)
        return local.label if local is not None else code


def parse_hours(text: str) -> tuple[time, time]:
    """Parse ``"HH:MM-HH:MM"`` into ``(start, end)``; ``24:00`` as end means midnight.

    Raises:
        ValueError: bad format, or start equal to end (an empty or ambiguous window).
    """
    m = _HOURS_RE.match(text.strip())
    if not m:
        raise ValueError(f"hours {text!r} is not HH:MM-HH:MM")
    start = time(int(m.group(1)), int(m.group(2)))
    end_hour = int(m.group(3))
    if end_hour == 24:
        if m.group(4) != "00":
            raise ValueError(f"hours {text!r}: 24:xx is not a time")
        end = time(0, 0)
    else:
        end = time(end_hour, int(m.group(4)))
    if start == end:
        raise ValueError(f"hours {text!r}: start equals end")
    return start, end


def _err(path: Path, line: int | None, reason: str) -> TenantConfigError:
    return TenantConfigError(path, line, reason)


def parse_tenant(path: str | Path, taxonomy: Taxonomy | None = None) -> TenantConfig:
    """Load and validate one tenant file at ``path`` (see the module docstring for the format).

    Checks: known keys only; ``tenant`` matches the file stem and the event tenant pattern;
    ``timezone`` is a known IANA zone; place codes are quoted strings matching the event place
    pattern, unique, on a declared level; each place's parent (explicit or longest listed
    prefix) is a proper prefix of its code on a higher level; non-top places have a parent;
    rule names are unique and contain no ``:``; rule departments exist in the taxonomy or the
    tenant's ``departments``; six-digit rule categories exist in the taxonomy; ``place_prefix``
    overlaps a listed place; ``hours`` parses; ``max_reopens``, if given, is an integer >= 0; ``open311_public_reads``, if given, a boolean;
    ``assessment_weights``, if given, has the keys response, resolution and satisfaction, each from
    0 to 1, summing to 1.

    Raises:
        TenantConfigError: ``<file>:<line>: <reason>``.
        TaxonomyError: if ``taxonomy`` is ``None`` and the packaged taxonomy is broken.
    """
    path = Path(path)
    if taxonomy is None:
        taxonomy = load_taxonomy()
    data = read_yaml(path, TenantConfigError)
    top = check_keys(
        data, path=path, line=1, what="tenant file",
        required=("tenant", "name_zh", "name_en", "timezone", "places"),
        optional=("levels", "routing", "departments", "max_reopens", "assessment_weights", "note",
                  "open311_public_reads"),
        error_cls=TenantConfigError,
    )

    def s(entry: MarkedDict, key: str, what: str, **kw) -> str | None:
        return get_str(entry, key, path=path, what=what, error_cls=TenantConfigError, **kw)

    tenant = s(top, "tenant", "tenant file", pattern=_TENANT_RE)
    if tenant != path.stem:
        raise _err(path, top.line_of("tenant"),
                   f"tenant {tenant!r} does not equal the file stem {path.stem!r}")
    timezone = s(top, "timezone", "tenant file")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise _err(path, top.line_of("timezone"), f"unknown timezone {timezone!r}") from None
    weights = _assessment_weights(top, path)

    max_reopens = top.get("max_reopens", DEFAULT_MAX_REOPENS)
    if isinstance(max_reopens, bool) or not isinstance(max_reopens, int) or max_reopens < 0:
        raise _err(path, top.line_of("max_reopens"),
                   f"max_reopens must be an integer >= 0, got {max_reopens!r}")

    public_reads = top.get("open311_public_reads", False)
    if not isinstance(public_reads, bool):
        raise _err(path, top.line_of("open311_public_reads"),
                   f"open311_public_reads must be true or false, got {public_reads!r}")

    # levels
    levels: tuple[str, ...] = STANDARD_LEVELS
    if "levels" in top:
        raw = top["levels"]
        if (not isinstance(raw, list) or not raw
                or not all(isinstance(x, str) and _LEVEL_RE.match(x) for x in raw)):
            raise _err(path, top.line_of("levels"), "levels must be a non-empty list of snake_case names")
        if len(set(raw)) != len(raw):
            raise _err(path, top.line_of("levels"), "levels contains a duplicate")
        levels = tuple(raw)
    rank = {level: i for i, level in enumerate(levels)}

    # tenant-local departments
    local_departments: list[TenantDepartment] = []
    if "departments" in top:
        raw = top["departments"]
        if not isinstance(raw, list):
            raise _err(path, top.line_of("departments"), "departments must be a list")
        for item in raw:
            line = item.line if isinstance(item, MarkedDict) else top.line_of("departments")
            entry = check_keys(item, path=path, line=line, what="department", required=("code",),
                               optional=("name_zh", "name_en"), error_cls=TenantConfigError)
            code = s(entry, "code", "department", pattern=_LOCAL_DEPT_RE)
            if taxonomy.department(code) is not None or any(d.code == code for d in local_departments):
                raise _err(path, entry.line_of("code"), f"duplicate department code {code!r}")
            local_departments.append(TenantDepartment(
                code=code, name_zh=s(entry, "name_zh", "department", default="") or "",
                name_en=s(entry, "name_en", "department", default="") or "",
            ))
    local_codes = {d.code for d in local_departments}

    # places
    raw_places = top["places"]
    if not isinstance(raw_places, list) or not raw_places:
        raise _err(path, top.line_of("places"), "places must be a non-empty list")
    entries: list[tuple[MarkedDict, str, str]] = []
    seen: dict[str, int] = {}
    for item in raw_places:
        line = item.line if isinstance(item, MarkedDict) else top.line_of("places")
        entry = check_keys(item, path=path, line=line, what="place",
                           required=("code", "level", "name_zh", "name_en"),
                           optional=("parent", "kind", "note"), error_cls=TenantConfigError)
        code = s(entry, "code", "place", pattern=_PLACE_CODE_RE)
        if code in seen:
            raise _err(path, entry.line_of("code"),
                       f"duplicate place code {code!r} (first on line {seen[code]})")
        seen[code] = entry.line_of("code")
        level = s(entry, "level", f"place {code}")
        if level not in rank:
            raise _err(path, entry.line_of("level"),
                       f"place {code}: level {level!r} is not one of {', '.join(levels)}")
        entries.append((entry, code, level))

    top_rank = min(rank[level] for _, _, level in entries)
    level_by_code = {code: level for _, code, level in entries}
    places: list[Place] = []
    for entry, code, level in entries:
        what = f"place {code}"
        parent = s(entry, "parent", what)
        if parent is not None:
            if parent not in seen:
                raise _err(path, entry.line_of("parent"), f"{what}: parent {parent!r} is not a listed place")
            if parent == code or not code.startswith(parent):
                raise _err(path, entry.line_of("parent"),
                           f"{what}: child without parent prefix (code does not start with parent {parent!r})")
        else:
            parent = next((code[:end] for end in range(len(code) - 1, 0, -1) if code[:end] in seen), None)
        if parent is None:
            if rank[level] != top_rank:
                raise _err(path, entry.line_of("code"),
                           f"{what}: child without parent prefix (level {level!r} is below the top "
                           f"level {levels[top_rank]!r} but no listed place code is a prefix of {code!r})")
        else:
            parent_level = level_by_code[parent]
            if rank[parent_level] >= rank[level]:
                raise _err(path, entry.line_of("level"),
                           f"{what}: level {level!r} is not below its parent {parent!r} ({parent_level!r})")
        places.append(Place(
            code=code, level=level,
            name_zh=s(entry, "name_zh", what), name_en=s(entry, "name_en", what),
            parent=parent, kind=s(entry, "kind", what), line=entry.line,
        ))

    # routing
    rules: list[RoutingRule] = []
    use_defaults = True
    if "routing" in top and top["routing"] is not None:
        routing = check_keys(top["routing"], path=path, line=top.line_of("routing"), what="routing",
                             required=(), optional=("rules", "use_taxonomy_defaults"),
                             error_cls=TenantConfigError)
        if "use_taxonomy_defaults" in routing:
            use_defaults = routing["use_taxonomy_defaults"]
            if not isinstance(use_defaults, bool):
                raise _err(path, routing.line_of("use_taxonomy_defaults"),
                           "routing: use_taxonomy_defaults must be true or false")
        raw_rules = routing.get("rules") or []
        if not isinstance(raw_rules, list):
            raise _err(path, routing.line_of("rules"), "routing: rules must be a list")
        names: dict[str, int] = {}
        for item in raw_rules:
            line = item.line if isinstance(item, MarkedDict) else routing.line_of("rules")
            entry = check_keys(item, path=path, line=line, what="routing rule",
                               required=("name", "department"),
                               optional=("category", "place_prefix", "hours", "note"),
                               error_cls=TenantConfigError)
            name = s(entry, "name", "routing rule", pattern=_RULE_NAME_RE)
            what = f"routing rule {name!r}"
            if name in names:
                raise _err(path, entry.line_of("name"), f"duplicate rule name {name!r} (first on line {names[name]})")
            names[name] = entry.line_of("name")
            department = s(entry, "department", what)
            if not taxonomy.has_department(department) and department not in local_codes:
                raise _err(path, entry.line_of("department"),
                           f"{what}: unknown department {department!r} (not in the taxonomy "
                           f"nor in this tenant's departments)")
            category = s(entry, "category", what)
            if category is not None and CATEGORY_CODE_RE.match(category) and taxonomy.category(category) is None:
                raise _err(path, entry.line_of("category"), f"{what}: unknown category {category!r}")
            prefix = s(entry, "place_prefix", what, pattern=_PLACE_CODE_RE)
            if prefix is not None and not any(c.startswith(prefix) or prefix.startswith(c) for c in seen):
                raise _err(path, entry.line_of("place_prefix"),
                           f"{what}: place_prefix {prefix!r} matches no place of this tenant")
            hours_text = s(entry, "hours", what)
            hours = None
            if hours_text is not None:
                try:
                    hours = parse_hours(hours_text)
                except ValueError as exc:
                    raise _err(path, entry.line_of("hours"), f"{what}: {exc}") from None
            rules.append(RoutingRule(
                name=name, department=department, category=category, place_prefix=prefix,
                hours=hours, hours_text=hours_text, note=s(entry, "note", what), line=entry.line,
            ))

    return TenantConfig(
        tenant=tenant,
        name_zh=s(top, "name_zh", "tenant file"),
        name_en=s(top, "name_en", "tenant file"),
        timezone=timezone,
        levels=levels,
        places=tuple(places),
        routing=RoutingConfig(rules=tuple(rules), use_taxonomy_defaults=use_defaults),
        departments=tuple(local_departments),
        path=str(path),
        assessment_weights=weights,
        max_reopens=max_reopens,
        open311_public_reads=public_reads,
    )


def _assessment_weights(top: MarkedDict, path: Path) -> AssessmentWeights:
    """The file's ``assessment_weights`` (all three keys), or the default."""
    if "assessment_weights" not in top:
        return AssessmentWeights()
    line = top.line_of("assessment_weights")
    raw = check_keys(top["assessment_weights"], path=path, line=line, what="assessment_weights",
                     required=("response", "resolution", "satisfaction"), optional=(),
                     error_cls=TenantConfigError)
    try:
        return AssessmentWeights(raw["response"], raw["resolution"], raw["satisfaction"])
    except ValueError as exc:
        raise _err(path, line, str(exc)) from None


def load_tenant(name: str, tenants_dir: str | Path | None = None,
                taxonomy: Taxonomy | None = None) -> TenantConfig:
    """Load tenant ``name`` from ``<tenants_dir>/<name>.yaml`` (default :func:`default_tenants_dir`).

    ``taxonomy`` validates department and category codes in rules (default: the packaged one).

    Raises:
        TenantConfigError: bad tenant name, missing file, or an invalid file (see :func:`parse_tenant`).
    """
    directory = Path(tenants_dir) if tenants_dir is not None else default_tenants_dir()
    if not _TENANT_RE.match(name):
        raise _err(directory, None, f"invalid tenant name {name!r} (pattern {TENANT_PATTERN})")
    path = directory / f"{name}.yaml"
    if not path.is_file():
        raise _err(path, None, f"no tenant file for {name!r}")
    return parse_tenant(path, taxonomy)


def load_all_tenants(tenants_dir: str | Path | None = None,
                     taxonomy: Taxonomy | None = None) -> dict[str, TenantConfig]:
    """Load every ``*.yaml`` in ``tenants_dir`` (default :func:`default_tenants_dir`), sorted by
    name, as ``{tenant: TenantConfig}``.

    Raises:
        TenantConfigError: the directory is missing, or any file is invalid (first error wins).
    """
    directory = Path(tenants_dir) if tenants_dir is not None else default_tenants_dir()
    if not directory.is_dir():
        raise _err(directory, None, "tenants directory does not exist")
    if taxonomy is None:
        taxonomy = load_taxonomy()
    return {p.stem: parse_tenant(p, taxonomy) for p in sorted(directory.glob("*.yaml"))}
