"""The issue taxonomy: departments and categories, loaded from ``shared/data/taxonomy.yaml``.

Pure loader and lookups, no other I/O. The data follows docs/domain.md §3(b) (category codes
``DDCCSS``, default handlers, the nine 前置审批 prior-licence trades ``8001nn`` and their licensing
departments) and §3(d) (disputes go to the people's-mediation chain).

Errors in the file raise :class:`TaxonomyError`; its message reads ``<file>:<line>: <reason>``,
with the line taken from the YAML node marks. :func:`read_yaml` is also used by
:mod:`shared.domain.tenants` for the same kind of error reporting.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import yaml

#: The packaged taxonomy file.
DEFAULT_TAXONOMY_PATH = Path(__file__).resolve().parents[1] / "data" / "taxonomy.yaml"

#: Category kinds: an ordinary case, a dispute for mediation (docs/domain.md §3(c)/(d)), or a
#: prior-licence (前置审批) inspection routed to the licensing department (docs/domain.md §3(b)).
CATEGORY_KINDS = ("case", "dispute", "licence")

DEPARTMENT_CODE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
CATEGORY_CODE_RE = re.compile(r"^[0-9]{6}$")

CategoryKind = Literal["case", "dispute", "licence"]


class ConfigFileError(ValueError):
    """A configuration file is malformed or inconsistent.

    ``path`` is the file, ``line`` the 1-based line (``None`` if the error is not tied to a line)
    and ``reason`` the explanation; ``str(error)`` is ``"<path>:<line>: <reason>"``.
    """

    def __init__(self, path: str | Path, line: int | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


class TaxonomyError(ConfigFileError):
    """The taxonomy file is malformed (bad YAML, missing/unknown keys, duplicate codes, unknown
    department in a category). The message names the file and line."""


class MarkedDict(dict):
    """A YAML mapping that remembers where it was: ``line`` of the mapping and ``key_lines``
    (key -> 1-based line of its value). Produced by :func:`read_yaml`."""

    line: int = 0
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        """Return the line of ``key``'s value, or of the mapping if the key is absent."""
        return self.key_lines.get(key, self.line)


class _MarkedLoader(yaml.SafeLoader):
    """Safe loader whose mappings are :class:`MarkedDict` and which rejects duplicate keys."""


def _construct_marked_mapping(loader: _MarkedLoader, node: yaml.MappingNode) -> MarkedDict:
    loader.flatten_mapping(node)
    result = MarkedDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "mapping key is not hashable", key_node.start_mark
            ) from None
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = value_node.start_mark.line + 1
    return result


_MarkedLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_marked_mapping
)


_LIMIT_RE = re.compile(r"^(\d+(?:\.\d+)?)(wh|wd|h)$")


def _parse_limit(entry: MarkedDict, path, what: str) -> tuple[float, str] | None:
    """Parse a category's optional ``dispose_limit`` (see :attr:`Category.dispose_limit`)."""
    raw = entry.get("dispose_limit")
    if raw is None:
        return None
    match = _LIMIT_RE.match(str(raw))
    if not match or float(match.group(1)) <= 0:
        raise TaxonomyError(path, entry.line_of("dispose_limit"),
                            f"{what}: dispose_limit {raw!r} must look like 4wh, 20wd or 2h")
    value, unit = float(match.group(1)), match.group(2)
    if unit == "wh":
        return (value / 24.0, "working_days")  # working-day time counts 24 h per working day
    return (value, "working_days" if unit == "wd" else "hours")


def read_yaml(path: str | Path, error_cls: type[ConfigFileError] = ConfigFileError) -> Any:
    """Read one YAML document from ``path``; mappings come back as :class:`MarkedDict`.

    Raises ``error_cls(path, line, reason)`` if the file cannot be read, is not valid YAML,
    is empty, or has a duplicate key in a mapping (PyYAML would silently keep the last one).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error_cls(path, None, f"cannot read file: {exc.strerror or exc}") from exc
    try:
        data = yaml.load(text, Loader=_MarkedLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise error_cls(path, line, f"invalid YAML: {reason}") from exc
    except yaml.YAMLError as exc:
        raise error_cls(path, None, f"invalid YAML: {exc}") from exc
    if data is None:
        raise error_cls(path, 1, "file is empty")
    return data


def check_keys(
    entry: Any,
    *,
    path: Path,
    line: int,
    what: str,
    required: tuple[str, ...],
    optional: tuple[str, ...] = (),
    error_cls: type[ConfigFileError] = ConfigFileError,
) -> MarkedDict:
    """Check that ``entry`` is a mapping with all ``required`` keys and no unknown keys.

    Returns the entry; raises ``error_cls`` naming the line of the offending key otherwise.
    """
    if not isinstance(entry, MarkedDict):
        raise error_cls(path, line, f"{what} must be a mapping, got {type(entry).__name__}")
    for key in entry:
        if key not in required and key not in optional:
            allowed = ", ".join(required + optional)
            raise error_cls(path, entry.line_of(key), f"{what}: unknown key {key!r} (allowed: {allowed})")
    for key in required:
        if key not in entry:
            raise error_cls(path, entry.line, f"{what}: missing key {key!r}")
    return entry


def get_str(
    entry: MarkedDict,
    key: str,
    *,
    path: Path,
    what: str,
    error_cls: type[ConfigFileError] = ConfigFileError,
    pattern: re.Pattern[str] | None = None,
    default: str | None = None,
) -> str | None:
    """Return ``entry[key]`` as a non-empty string (``default`` if absent).

    Integers are rejected rather than converted: an unquoted code such as ``05`` or ``110105``
    would lose leading zeros or change type, so codes must be quoted. Raises ``error_cls``.
    """
    if key not in entry:
        return default
    value = entry[key]
    if not isinstance(value, str):
        raise error_cls(
            path,
            entry.line_of(key),
            f"{what}: {key} must be a string (quote it), got {type(value).__name__} {value!r}",
        )
    value = value.strip()
    if not value:
        raise error_cls(path, entry.line_of(key), f"{what}: {key} must not be empty")
    if pattern is not None and not pattern.match(value):
        raise error_cls(
            path, entry.line_of(key), f"{what}: {key} {value!r} does not match {pattern.pattern}"
        )
    return value


@dataclass(frozen=True)
class Department:
    """A handling department: ``code`` (stable snake_case id used in events, e.g.
    ``market_regulation``), ``name_zh`` (e.g. 市场监管) and ``name_en``."""

    code: str
    name_zh: str
    name_en: str

    @property
    def label(self) -> str:
        """``"<name_zh> <name_en>"``, e.g. ``"市场监管 Market regulation"``."""
        return f"{self.name_zh} {self.name_en}"


@dataclass(frozen=True)
class Category:
    """An issue category (docs/domain.md §3(b)).

    - ``code``: six digits ``DDCCSS``.
    - ``department``: the default handling department (a :class:`Department` code); for
      ``kind == "licence"`` (``8001nn``) the licensing department.
    - ``kind``: ``case``, ``dispute`` (routed to mediation) or ``licence`` (前置审批).
    - ``gb``: GB/T 30428.2 event major class (``"01"``…``"06"``) where one matches.
    - ``note``: the alternative department or a sourcing remark.
    """

    code: str
    name_zh: str
    name_en: str
    department: str
    kind: CategoryKind
    gb: str | None = None
    note: str | None = None
    dispose_limit: tuple[float, str] | None = None
    """Per-type 处置时限 overriding the urgency table for 一般/复杂 cases (docs/domain.md §1.1 [P4]):
    ``(value, "hours" | "working_days")``; written ``"4wh"`` (working hours, i.e. hours of
    working-day time), ``"20wd"`` (working days) or ``"2h"`` (natural hours) in the file."""

    @property
    def label(self) -> str:
        """``"<code> <name_zh>"``, e.g. ``"500101 无照经营(店铺)"``."""
        return f"{self.code} {self.name_zh}"


@dataclass(frozen=True)
class Taxonomy:
    """Departments and categories with lookups by code. Build it with :func:`load_taxonomy`."""

    departments: tuple[Department, ...]
    categories: tuple[Category, ...]
    path: str = ""
    _departments_by_code: Mapping[str, Department] = field(
        init=False, repr=False, compare=False, hash=False
    )
    _categories_by_code: Mapping[str, Category] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "_departments_by_code", MappingProxyType({d.code: d for d in self.departments})
        )
        object.__setattr__(
            self, "_categories_by_code", MappingProxyType({c.code: c for c in self.categories})
        )

    def category(self, code: str) -> Category | None:
        """Return the category with ``code``, or ``None`` if unknown (e.g. a foreign category)."""
        return self._categories_by_code.get(code)

    def department(self, code: str) -> Department | None:
        """Return the department with ``code``, or ``None`` if unknown (e.g. NYC ``HPD``)."""
        return self._departments_by_code.get(code)

    def department_label(self, code: str) -> str:
        """``"市场监管 Market regulation"`` for a known department, else ``code`` itself."""
        department = self.department(code)
        return department.label if department is not None else code

    def dispose_limits(self) -> dict[str, tuple[float, str]]:
        """Per-category dispose-limit overrides ``{code: (value, unit)}`` (for workcalendar.limits_for)."""
        return {c.code: c.dispose_limit for c in self.categories if c.dispose_limit is not None}

    def category_label(self, code: str) -> str:
        """``"<code> <name_zh>"`` for a known category, else ``code`` itself."""
        category = self.category(code)
        return category.label if category is not None else code

    def is_dispute(self, code: str) -> bool:
        """True if ``code`` is a dispute category (goes to mediation, docs/domain.md §3(d))."""
        category = self.category(code)
        return category is not None and category.kind == "dispute"

    def categories_of_kind(self, kind: CategoryKind) -> tuple[Category, ...]:
        """All categories of ``kind`` in file order (e.g. ``"licence"``: the nine 8001nn)."""
        return tuple(c for c in self.categories if c.kind == kind)

    def has_department(self, code: str) -> bool:
        """True if ``code`` is a taxonomy department code."""
        return code in self._departments_by_code


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load and validate the taxonomy from ``path`` (default: the packaged
    ``shared/data/taxonomy.yaml``).

    Checks: top level has ``departments`` and ``categories`` lists; every entry has exactly the
    known keys; department codes are snake_case ascii, category codes six quoted digits; codes
    are unique; ``kind`` is one of :data:`CATEGORY_KINDS`; every category's department exists.

    Raises:
        TaxonomyError: with ``<file>:<line>: <reason>``.
    """
    path = Path(path) if path is not None else DEFAULT_TAXONOMY_PATH
    data = read_yaml(path, TaxonomyError)
    top = check_keys(
        data, path=path, line=1, what="taxonomy", required=("departments", "categories"),
        error_cls=TaxonomyError,
    )

    departments: list[Department] = []
    seen_departments: dict[str, int] = {}
    dept_list = top["departments"]
    if not isinstance(dept_list, list) or not dept_list:
        raise TaxonomyError(path, top.line_of("departments"), "departments must be a non-empty list")
    for item in dept_list:
        line = item.line if isinstance(item, MarkedDict) else top.line_of("departments")
        entry = check_keys(
            item, path=path, line=line, what="department",
            required=("code", "name_zh", "name_en"), error_cls=TaxonomyError,
        )
        what = f"department {entry.get('code')!r}"
        code = get_str(entry, "code", path=path, what="department", pattern=DEPARTMENT_CODE_RE,
                       error_cls=TaxonomyError)
        if code in seen_departments:
            raise TaxonomyError(
                path, entry.line_of("code"),
                f"duplicate department code {code!r} (first on line {seen_departments[code]})",
            )
        seen_departments[code] = entry.line_of("code")
        departments.append(
            Department(
                code=code,
                name_zh=get_str(entry, "name_zh", path=path, what=what, error_cls=TaxonomyError),
                name_en=get_str(entry, "name_en", path=path, what=what, error_cls=TaxonomyError),
            )
        )

    categories: list[Category] = []
    seen_categories: dict[str, int] = {}
    cat_list = top["categories"]
    if not isinstance(cat_list, list) or not cat_list:
        raise TaxonomyError(path, top.line_of("categories"), "categories must be a non-empty list")
    for item in cat_list:
        line = item.line if isinstance(item, MarkedDict) else top.line_of("categories")
        entry = check_keys(
            item, path=path, line=line, what="category",
            required=("code", "name_zh", "name_en", "department", "kind"),
            optional=("gb", "note", "dispose_limit"), error_cls=TaxonomyError,
        )
        code = get_str(entry, "code", path=path, what="category", pattern=CATEGORY_CODE_RE,
                       error_cls=TaxonomyError)
        what = f"category {code}"
        if code in seen_categories:
            raise TaxonomyError(
                path, entry.line_of("code"),
                f"duplicate category code {code!r} (first on line {seen_categories[code]})",
            )
        seen_categories[code] = entry.line_of("code")
        department = get_str(entry, "department", path=path, what=what, error_cls=TaxonomyError)
        if department not in seen_departments:
            raise TaxonomyError(
                path, entry.line_of("department"),
                f"{what}: unknown department {department!r} (not in departments:)",
            )
        kind = get_str(entry, "kind", path=path, what=what, error_cls=TaxonomyError)
        if kind not in CATEGORY_KINDS:
            raise TaxonomyError(
                path, entry.line_of("kind"),
                f"{what}: kind {kind!r} is not one of {', '.join(CATEGORY_KINDS)}",
            )
        categories.append(
            Category(
                code=code,
                name_zh=get_str(entry, "name_zh", path=path, what=what, error_cls=TaxonomyError),
                name_en=get_str(entry, "name_en", path=path, what=what, error_cls=TaxonomyError),
                department=department,
                kind=kind,  # type: ignore[arg-type]
                gb=get_str(entry, "gb", path=path, what=what, error_cls=TaxonomyError),
                note=get_str(entry, "note", path=path, what=what, error_cls=TaxonomyError),
                dispose_limit=_parse_limit(entry, path, what),
            )
        )

    return Taxonomy(departments=tuple(departments), categories=tuple(categories), path=str(path))
