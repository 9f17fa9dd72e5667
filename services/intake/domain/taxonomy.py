"""The packaged taxonomy (shared/data/taxonomy.yaml), loaded once per process: the categories and
departments that reports, actions and Open311's service list name."""

from __future__ import annotations

from functools import lru_cache

from shared.domain.taxonomy import Taxonomy, load_taxonomy


@lru_cache(maxsize=1)
def taxonomy() -> Taxonomy:
    """The packaged taxonomy (loaded once)."""
    return load_taxonomy()


def category_name(code: str | None, given: str | None) -> str | None:
    """A case's category name (``GET /v1/cases/{id}`` ``category_name``): the taxonomy's zh-CN name
    of ``code``, else the name the report gave (a source's own category), else ``None``."""
    known = taxonomy().category(code) if code else None
    return known.name_zh if known is not None else (given or None)


def reported_category_name(code: str | None, given: str | None) -> str | None:
    """The name of the category as reported (the case view's ``report.category_name``): the name
    the report gave, verbatim (a source's own, e.g. NYC's complaint type), else — a report that
    named only its code — the taxonomy's zh-CN name of that code, else what was given."""
    if given:
        return given
    known = taxonomy().category(code) if code else None
    return known.name_zh if known is not None else given
