"""Fixtures of the tests/safety regression tests (issue 8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.safety import make_model_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with Model package call_node and its asset squeezenet (make_model_project)."""
    return make_model_project(tmp_path)
