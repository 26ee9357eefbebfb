"""How a run ends on the terminal: one line per stopped node, no stop traceback, no native
library chatter; each run its own folder, even two started in the same second."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from panorama_cli.localrun.plan import create_run_dir
from tests.localrun.helpers import make_project, video
from tests.localrun.test_run_apps import PASS_THROUGH
from tests.support.cli_runner import run_cli_subprocess
from tests.support.paths import REPO

BLOCKING = """
import panoramasdk

node = panoramasdk.node()
while True:
    node.outputs.video_out.put(node.inputs.video_in.get())   # KeyboardInterrupt lands here
"""


def test_end_of_input_is_one_line_per_node_and_the_traceback_only_in_console_log(tmp_path):
    root = make_project(tmp_path, BLOCKING, params={})
    out = tmp_path / "out"
    result = run_cli_subprocess(
        ["run", "--camera", f"front_camera={video()}", "--frames", "5", "--fast",
         "--output-dir", str(out)],
        cwd=root,
    )  # fmt: skip
    assert result.exit_code == 0, result.describe()
    assert result.stderr.count("node code_node stopped at end of input") == 1, result.stderr
    assert "KeyboardInterrupt" not in result.stderr and "Traceback" not in result.stderr
    console = (out / "logs" / "console.log").read_text()
    assert "Traceback (most recent call last)" in console and "KeyboardInterrupt" in console


def test_a_corrupt_video_is_one_clean_line_without_ffmpeg_or_opencv_chatter(tmp_path):
    root = make_project(tmp_path, PASS_THROUGH)
    data = Path(video()).read_bytes()
    broken = tmp_path / "broken.mp4"  # an mp4 header, then bytes of an AVI: no moov box
    broken.write_bytes(b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + data[:65536])
    result = run_cli_subprocess(["run", "--camera", f"front_camera={broken}"], cwd=root)
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and "broken.mp4" in lines[0]
    assert "moov" not in result.stderr and "WARN" not in result.stderr


def test_two_runs_started_at_once_get_two_folders(tmp_path):
    root = make_project(tmp_path, PASS_THROUGH)
    argv = [sys.executable, "-m", "panorama_cli", "run", "--camera", f"front_camera={video()}",
            "--frames", "3", "--fast", "--json"]  # fmt: skip
    env = {"PYTHONPATH": str(REPO), "NO_COLOR": "1", "PATH": "/usr/bin:/bin"}
    procs = [
        subprocess.Popen(argv, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    for code, _, stderr in results:
        assert code == 0, stderr.decode()
    folders = sorted((root / ".panorama-run").iterdir())
    folders = [f for f in folders if not f.name.startswith(".")]
    assert len(folders) == 2 and all((f / "report.json").is_file() for f in folders)


def test_the_default_run_folder_is_made_atomically_and_never_shared(tmp_path):
    class Options:
        output_dir = None

    class Plan:
        options = Options()
        run_dir = tmp_path / ".panorama-run" / "20261202-171000"

    made = []
    for _ in range(3):
        plan = Plan()
        plan.run_dir = tmp_path / ".panorama-run" / "20261202-171000"  # the same second
        made.append(create_run_dir(plan))
    assert [p.name for p in made] == ["20261202-171000", "20261202-171000-2", "20261202-171000-3"]
    assert all(p.is_dir() for p in made)
    Options.output_dir = made[0]  # --output-dir: reused as it is
    plan = Plan()
    plan.run_dir = made[0]
    assert create_run_dir(plan) == made[0]


def test_a_camera_that_breaks_mid_run_fails_the_run_with_one_line(tmp_path, monkeypatch):
    import json

    import numpy as np
    import pytest

    from panorama_cli.errors import UserError
    from panorama_cli.localrun import run_project
    from panorama_cli.localrun.frames import sources

    class Breaks:
        uri, fps, size, live = "stub://camera", 10.0, (32, 24), False

        def __init__(self) -> None:
            self.index = 0

        def read(self, out=None):
            if self.index == 4:
                raise UserError("stub://camera: the stream broke")
            self.index += 1
            return sources.Frame(np.zeros((24, 32, 3), np.uint8), self.index / 10, self.index - 1)

        def close(self) -> None:
            pass

    monkeypatch.setattr(sources, "open_source", lambda spec, **kwargs: Breaks())
    root = make_project(tmp_path, PASS_THROUGH)
    out = tmp_path / "out"
    with pytest.raises(UserError, match="camera front_camera: stub://camera: the stream broke"):
        run_project(root, cameras={"front_camera": "stub"}, output_dir=out, grace_s=0.5)
    report = json.loads((out / "report.json").read_text())
    assert report["exit_reason"] == "camera-error"  # never "end-of-input", never exit 0
    assert report["cameras"]["front_camera"]["frames"] == 4


def test_a_stale_socket_is_removed_and_a_live_one_refused(tmp_path):
    import socket

    import pytest

    from panorama_cli.errors import UserError
    from panorama_cli.localrun.frames.channel import remove_stale_socket as _remove_stale_socket

    path = tmp_path / "ctl.sock"
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(str(path))
    live.listen(1)
    try:
        with pytest.raises(UserError, match="another run is using this run folder"):
            _remove_stale_socket(path)
        assert path.exists()
    finally:
        live.close()  # what a SIGKILL leaves: the socket file, no one listening
    _remove_stale_socket(path)
    assert not path.exists()
    path.write_text("not a socket")
    _remove_stale_socket(path)  # never removes anything else
    assert path.read_text() == "not a socket"


CLEAN_UP = """
import panoramasdk

node = panoramasdk.node()
try:
    while True:
        node.outputs.video_out.put(node.inputs.video_in.get())
except KeyboardInterrupt:
    print("app clean-up ran", flush=True)
"""


def test_a_runner_started_with_sigint_ignored_still_stops_its_apps_with_sigint(tmp_path):
    """A background job of a script (`bash -c 'panorama-cli run ... &'`) inherits SIGINT ignored;
    the apps must not: on the appliance SIGINT is at its default, so the app's
    KeyboardInterrupt clean-up runs and no SIGTERM is needed."""
    root = make_project(tmp_path, CLEAN_UP, params={})
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "panorama_cli", "run", "--camera", f"front_camera={video()}",
            "--frames", "5", "--fast", "--output-dir", str(out)]  # fmt: skip
    env = {"PYTHONPATH": str(REPO), "NO_COLOR": "1", "PATH": "/usr/bin:/bin"}
    ignoring = [sys.executable, "-c",
                "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                "os.execv(sys.argv[1], sys.argv[1:])", *argv]  # fmt: skip
    proc = subprocess.run(ignoring, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "node code_node stopped at end of input" in proc.stderr, proc.stderr
    assert "SIGTERM" not in proc.stderr, proc.stderr
    assert "app clean-up ran" in (out / "logs" / "console.log").read_text()
