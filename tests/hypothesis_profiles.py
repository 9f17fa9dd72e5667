"""How many examples the Hypothesis property tests draw: every one in CI, a tenth locally.

Two settings profiles, chosen by ``HYPOTHESIS_PROFILE`` or, when it is unset, by ``CI``:

- ``ci`` (``CI=true``, as CI runs ``.ci/run``; or ``HYPOTHESIS_PROFILE=ci``): the full count each
  property test names through :func:`examples` (``examples(300)`` draws 300), and Hypothesis'
  own 100 for a test that names none. Failures print a blob that replays them.
- ``dev`` (any other run, e.g. ``pytest tests/unit`` on a developer's machine): a tenth of those
  counts, at least 10, so the unit layer stays well under a minute on a 2-core machine.

Every test runs in both profiles; only the number of generated examples differs. To run what CI
runs locally: ``HYPOTHESIS_PROFILE=ci python -m pytest tests/unit``.

tests/conftest.py imports this module, so the profile is loaded before any test module is
collected (a test's ``@settings(max_examples=examples(n))`` is evaluated at import).
"""

from __future__ import annotations

import os

from hypothesis import settings

#: the CI flag as CI services set it (``true``/``1``); unset, empty, ``false`` or ``0`` is a local run
_IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if _IN_CI else "dev")
if PROFILE not in ("ci", "dev"):
    raise RuntimeError(f"HYPOTHESIS_PROFILE={PROFILE!r}: expected 'ci' or 'dev' (tests/hypothesis_profiles.py)")



def _share(full: int, profile: str) -> int:
    return full if profile == "ci" else max(10, full // 10)


def examples(full: int) -> int:
    """The number of examples to draw for a property test whose full count is ``full``."""
    return _share(full, PROFILE)


settings.register_profile("ci", max_examples=_share(100, "ci"), print_blob=True)
settings.register_profile("dev", max_examples=_share(100, "dev"))
settings.load_profile(PROFILE)
