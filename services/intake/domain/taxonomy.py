"""The packaged taxonomy (shared/data/taxonomy.yaml), loaded once per process: the categories and
departments that reports, actions and Open311's service list name."""

from __future__ import annotations

from functools import lru_cache

from shared.domain.taxonomy import Taxonomy, load_taxonomy


@lru_cache(maxsize=1)
def taxonomy() -> Taxonomy:
    """The packaged taxonomy (loaded once)."""
    return load_taxonomy()
