"""Tests that need ../shared skip with one clear reason without it, and fail under CI=true."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.paths import REPO

#: Tests that need the sample apps, the official schemas (as an oracle) or the video.
NEEDING_SHARED = [
    "tests/project/test_appgraph.py::test_sample_kinds_ports_values",
    "tests/project/test_real_apps.py::test_override_templates_are_skipped_with_one_note",
    "tests/build/test_scaffold.py",
]


def _pytest(tmp_path, **env: str) -> subprocess.CompletedProcess[str]:
    child = {k: v for k, v in os.environ.items() if k not in ("CI", "PANORAMA_REQUIRE_SHARED")}
    child.update(PANORAMA_SHARED_DIR=str(tmp_path / "no-shared-here"), **env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *NEEDING_SHARED],
        cwd=REPO,
        env=child,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_without_shared_they_skip_with_one_reason(tmp_path):
    result = _pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "skipped" in result.stdout and "failed" not in result.stdout
    reasons = {
        line.split(": ", 1)[-1] for line in result.stdout.splitlines() if line.startswith("SKIPPED")
    }
    assert reasons == {
        f"needs the shared reference folder {tmp_path / 'no-shared-here'} (absent in this checkout)"
    }


def test_under_ci_a_missing_shared_folder_fails(tmp_path):
    result = _pytest(tmp_path, CI="true")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[required: CI=true or PANORAMA_REQUIRE_SHARED=1]" in result.stdout
    assert "skipped" not in result.stdout.splitlines()[-1]
