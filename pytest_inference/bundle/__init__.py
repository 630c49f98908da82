"""A vendor's result bundle: one ``.tar.gz`` that says what ran, on what, and what it measured.

    pytest-inference bundle REPORT_DIR [-o FILE.tar.gz] [--no-allure-html]   pack a report folder
    pytest-inference bundle PATH --page-only [-o summary.html]                the one-page summary alone
    pytest-inference verify BUNDLE                                             check every SHA-256
    pytest-inference compare OLD NEW [--allow-different-hardware] [--confidence 0.95] [--json]

:mod:`.pack` packs and verifies, :mod:`.compare` compares two runs' claims on their stored
samples, :mod:`.page` writes the self-contained HTML summary, :mod:`.cli` adds the verbs.
Heavy imports (Allure rendering) happen inside the functions that need them.
"""

from __future__ import annotations

import math
from typing import Any


class BundleError(ValueError):
    """Bad input or a bundle that fails its check: one line for the user (exit status 2)."""


def finite(x: Any) -> float | None:
    """``x`` as a float when it is a finite number (not a bool), else None: how the page and compare
    read the figures of a summary.json someone else wrote."""
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None
