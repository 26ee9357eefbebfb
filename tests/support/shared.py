"""Tests that need ../shared (official schemas, sample apps, video, models).

Outside CI they skip with one clear reason when ../shared (or the file) is absent; with CI=true
(or PANORAMA_REQUIRE_SHARED=1) a missing file is a test failure, like the Docker tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.paths import SHARED


def shared_required() -> bool:
    """True when ../shared must be present (CI, or PANORAMA_REQUIRE_SHARED=1)."""
    return (
        os.environ.get("CI", "").strip().lower() == "true"
        or os.environ.get("PANORAMA_REQUIRE_SHARED", "").strip() == "1"
    )


def missing_reason(path: Path) -> str | None:
    """Why ``path`` cannot be used (one line), or None when it exists."""
    if path.exists():
        return None
    if not SHARED.is_dir():
        return f"needs the shared reference folder {SHARED} (absent in this checkout)"
    return f"needs {path} (absent from {SHARED})"


def require(*paths: Path) -> None:
    """Skip (or, when required, fail) the calling test unless every path exists."""
    for path in paths:
        reason = missing_reason(path)
        if reason is None:
            continue
        if shared_required():
            pytest.fail(f"{reason} [required: CI=true or PANORAMA_REQUIRE_SHARED=1]", pytrace=False)
        pytest.skip(reason)
