"""CI=true turns a skip into a failure: a test that cannot run there means a broken machine."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """Whether the environment says CI=true (any case, surrounding blanks ignored)."""
    return os.environ.get("CI", "").strip().lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip the calling test for ``reason``; fail it instead under CI=true."""
    if in_ci():
        pytest.fail(f"{reason} [required: CI=true]", pytrace=False)
    pytest.skip(reason)
