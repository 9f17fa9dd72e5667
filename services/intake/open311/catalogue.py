"""Open311's service catalogue: the taxonomy's categories as services (GET Service List), their
definitions with the attributes some categories ask for (GET Service Definition), and the checks of
posted attributes against them. Spec: open311.github.io ``GeoReport_v2/index.md``.

Services are the taxonomy's categories (``shared/data/taxonomy.yaml``): ``service_code`` the
six-digit category code, ``service_name`` ``"<name_zh> <name_en>"``, ``group`` the label of the
category's default department. :data:`SERVICE_ATTRIBUTES` adds attributes to some categories
(100110 油烟扰民 asks for the fume ``source``); posted attributes are checked against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC

from services.intake.domain.taxonomy import taxonomy
from services.intake.open311.wire import Open311Error, bad_request, not_found, parse_w3c
from shared.domain.taxonomy import Category


@dataclass(frozen=True)
class Attribute:
    """One attribute of a service definition (spec: GET Service Definition, ``attribute``).

    ``values`` are ``(key, name)`` pairs for the list datatypes.
    """

    code: str
    datatype: str
    description: str
    required: bool = False
    order: int = 1
    datatype_description: str | None = None
    values: tuple[tuple[str, str], ...] = ()
    variable: bool = True

    def as_dict(self) -> dict:
        """The attribute as the spec's fields, in the spec's order."""
        return {
            "variable": self.variable,
            "code": self.code,
            "datatype": self.datatype,
            "required": self.required,
            "datatype_description": self.datatype_description,
            "order": self.order,
            "description": self.description,
            "values": [{"key": key, "name": name} for key, name in self.values],
        }


#: Categories that ask for more than the description (their ``metadata`` is true).
SERVICE_ATTRIBUTES: dict[str, tuple[Attribute, ...]] = {
    "100110": (
        Attribute(
            code="source",
            datatype="singlevaluelist",
            required=True,
            order=1,
            description="油烟来源 Where do the fumes come from?",
            datatype_description="选择一项 choose one",
            values=(("restaurant", "餐饮店 Restaurant"), ("residence", "居民住宅 Residence"), ("other", "其他 Other")),
        ),
    ),
}


def service_name(category: Category) -> str:
    """``"<name_zh> <name_en>"``, e.g. ``"油烟扰民 Cooking-fume nuisance"``."""
    return f"{category.name_zh} {category.name_en}"


def _kind_note(category: Category) -> str:
    if category.kind == "dispute":
        return "矛盾纠纷，由人民调解处理 A dispute, handled by people's mediation"
    if category.kind == "licence":
        return "前置审批检查，由审批部门处理 A prior-licence check, handled by the licensing department"
    return ""


def service_entry(category: Category) -> dict:
    """One ``service`` of GET Service List (spec fields in order): code, name, description,
    ``metadata`` (true when :data:`SERVICE_ATTRIBUTES` has attributes for it), ``type``
    ``realtime``, ``keywords`` (names and the department's names), ``group`` (default department
    label)."""
    tax = taxonomy()
    department = tax.department(category.department)
    group = tax.department_label(category.department)
    description = f"{service_name(category)}。默认处置部门 default department: {group}"
    note = _kind_note(category)
    if note:
        description += f"。{note}"
    keywords = [category.name_zh, category.name_en, category.code]
    if department is not None:
        keywords += [department.name_zh, department.name_en]
    return {
        "service_code": category.code,
        "service_name": service_name(category),
        "description": description,
        "metadata": bool(SERVICE_ATTRIBUTES.get(category.code)),
        "type": "realtime",
        "keywords": ", ".join(keywords),
        "group": group,
    }


def service_definition(code: str) -> dict:
    """GET Service Definition body for a known category ``code``: ``service_code`` and
    ``attributes`` (empty for most categories)."""
    return {"service_code": code, "attributes": [a.as_dict() for a in SERVICE_ATTRIBUTES.get(code, ())]}


def check_attributes(code: str, posted: dict[str, list[str]]) -> dict[str, list[str]]:
    """Check posted ``attribute[code]=value`` (or ``attribute[code][]=value`` for
    multivaluelist) against the service definition of ``code``; return the accepted values.

    Rules (spec: GET Service Definition datatypes, POST Service Request ``attribute``): unknown
    attribute codes, missing required attributes, values outside a list, several values for a
    single-value attribute, a non-number ``number``, a ``datetime`` that is not ISO 8601 with a
    timezone, and line breaks in a ``string`` are refused.

    Raises:
        Open311Error: 400 listing every problem found.
    """
    definition = {a.code: a for a in SERVICE_ATTRIBUTES.get(code, ())}
    problems: list[str] = []
    accepted: dict[str, list[str]] = {}
    for name in posted:
        if name not in definition:
            problems.append(f"attribute[{name[:64]}] is not an attribute of service {code}")
    for attr in sorted(definition.values(), key=lambda a: a.order):
        values = [v.strip() for v in posted.get(attr.code, []) if v.strip()]
        if not values:
            if attr.required:
                problems.append(f"attribute[{attr.code}] is required for service {code}")
            continue
        keys = {key for key, _ in attr.values}
        if attr.datatype != "multivaluelist" and len(values) > 1:
            problems.append(f"attribute[{attr.code}] takes one value")
        elif attr.datatype == "singlevaluelist":
            if values[0] not in keys:
                problems.append(f"attribute[{attr.code}] must be one of {', '.join(sorted(keys))}")
        elif attr.datatype == "multivaluelist":
            if any(v not in keys for v in values):
                problems.append(f"attribute[{attr.code}] values must be among {', '.join(sorted(keys))}")
        elif attr.datatype == "number":
            try:
                [float(v) for v in values]
            except ValueError:
                problems.append(f"attribute[{attr.code}] must be a number")
        elif attr.datatype == "datetime":
            for v in values:
                try:
                    parse_w3c(f"attribute[{attr.code}]", v, UTC)
                except Open311Error:
                    problems.append(f"attribute[{attr.code}] must be an ISO 8601 datetime with a timezone")
                    break
        elif attr.datatype == "string" and any("\n" in v or "\r" in v for v in values):
            problems.append(f"attribute[{attr.code}] must be a single line")
        accepted[attr.code] = values
    if problems:
        raise bad_request(*problems)
    return accepted


def known_category(code: str | None) -> Category:
    """The category of a posted or asked ``service_code``.

    Raises:
        Open311Error: 400 when absent, 404 when the taxonomy has no such category.
    """
    if not code:
        raise bad_request("service_code was not provided")
    category = taxonomy().category(code)
    if category is None:
        raise not_found(f"service_code {code[:64]!r} was not found")
    return category
