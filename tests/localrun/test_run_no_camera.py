"""run on an app that no camera feeds: --frames has nothing to count (refused without
--duration, a note with it, and the run ends); --json prints one object on stdout also when
the run cannot start."""

from __future__ import annotations

import json
import time

from tests.localrun.helpers import make_project
from tests.support.cli_runner import run_cli_subprocess

FOREVER = """
import time
print("app up", flush=True)
while True:
    time.sleep(0.1)
"""


def test_frames_without_a_camera_and_without_duration_is_refused(tmp_path):
    root = make_project(tmp_path, FOREVER, cameras=(), params={}, hdmi=False)
    out = tmp_path / "out"
    t0 = time.monotonic()
    result = run_cli_subprocess(["run", "--frames", "30", "--output-dir", str(out)], cwd=root,
                                timeout_s=60)  # fmt: skip
    assert result.exit_code == 2, result.describe()
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "Error: --frames 30: no camera feeds the app, so there are no frames to count (end the "
        "run with --duration SECONDS, or leave --frames out (the run then ends when the app "
        "exits, or at Ctrl-C))"
    ]
    assert not out.exists() and time.monotonic() - t0 < 30


def test_frames_with_duration_says_so_and_ends_at_the_duration(tmp_path):
    root = make_project(tmp_path, FOREVER, cameras=(), params={}, hdmi=False)
    out = tmp_path / "out"
    result = run_cli_subprocess(
        ["run", "--frames", "30", "--duration", "1.5", "--json", "--output-dir", str(out)],
        cwd=root,
        timeout_s=60,
    )
    assert result.exit_code == 0, result.describe()
    assert "no frames to count: the run ends after --duration 1.5 s" in result.stderr
    assert json.loads(result.stdout)["exit_reason"] == "duration"
    assert "app up" in result.stderr


def test_json_prints_an_object_when_the_preflight_fails(tmp_path):
    root = make_project(tmp_path, "import scipy_not_here\n", cameras=(), params={}, hdmi=False)
    dockerfile = root / "packages" / "123456789012-APP-1.0" / "Dockerfile"
    dockerfile.write_text("FROM base\nRUN pip install scipy_not_here==1.0\n")
    result = run_cli_subprocess(["run", "--json"], cwd=root)
    assert result.exit_code == 1, result.describe()
    report = json.loads(result.stdout)
    assert report["exit_code"] == 1
    assert report["error"].startswith("node code_node: the package installs scipy_not_here==1.0")
    assert "--deps venv" in report["hint"]
    assert "Error: node code_node: the package installs" in result.stderr  # and the one line
    usage = run_cli_subprocess(["run", "--json", "--frames", "3"], cwd=root)
    assert usage.exit_code == 2 and json.loads(usage.stdout)["exit_code"] == 2
