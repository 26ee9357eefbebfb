"""``panorama-cli serve``'s one-shot modes and its bad input: --check, --systemd-unit, errors."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

from tests.localrun.helpers import make_project, video

APP = """
import panoramasdk
node = panoramasdk.node()
while True:
    node.outputs.video_out.put(node.inputs.video_in.get())
"""


def _serve(root: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "panorama_cli", "serve", *args],
        cwd=root, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_check_prints_one_line_per_camera_and_fails_for_an_unreachable_one(tmp_path):
    root = make_project(tmp_path, APP, cameras=("front_camera", "back_camera"))
    with socket.socket() as sock:  # a port nobody answers on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = _serve(root, "--check", "--camera", f"front_camera={video()}",
                  "--camera", f"back_camera=rtsp://u:secret@127.0.0.1:{port}/x")  # fmt: skip
    lines = done.stdout.splitlines()
    assert done.returncode == 1, done.stderr
    assert lines[0].startswith("camera front_camera: reachable 768x576 10.0 fps"), lines
    assert lines[1].startswith("camera back_camera: NOT reachable"), lines
    assert "secret" not in done.stdout + done.stderr
    assert not (root / ".panorama-serve").exists()  # a check changes nothing


def test_systemd_unit_names_these_options_with_absolute_paths(tmp_path):
    root = make_project(tmp_path, APP)
    os.symlink(video(), tmp_path / "clip.avi")
    done = _serve(root, "--camera", "front_camera=../clip.avi", "--listen", "0.0.0.0:9000",
                  "--systemd-unit")  # fmt: skip
    assert done.returncode == 0, done.stderr
    unit = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    words = shlex.split(unit["ExecStart"])
    assert words[words.index("--camera") + 1] == f"front_camera={(tmp_path / 'clip.avi')}"
    assert words[words.index("--listen") + 1] == "0.0.0.0:9000" and "serve" in words
    assert unit["WorkingDirectory"] == str(root)
    assert unit["Restart"] == "on-failure" and unit["KillSignal"] == "SIGTERM"
    assert "systemctl daemon-reload" in done.stderr


def test_bad_input_at_start_is_one_line_and_a_non_zero_exit(tmp_path):
    root = make_project(tmp_path, APP)
    done = _serve(root, "--camera", "nosuch=x.avi")
    assert done.returncode == 2 and "unknown camera node" in done.stderr.lower(), done.stderr
    assert "Traceback" not in done.stderr
    done = _serve(root, "--camera", "front_camera=missing.avi", "--rtsp-port", "0")
    assert done.returncode == 1 and "missing.avi" in done.stderr and "Traceback" not in done.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _serve(root, "--camera", f"front_camera={video()}", "--listen",
                      f"127.0.0.1:{port}", "--rtsp-port", "0")  # fmt: skip
    assert done.returncode == 1 and f"127.0.0.1:{port}" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2 and "Traceback" not in done.stderr
    done = _serve(root, "--listen", "nonsense")
    assert done.returncode == 2 and "HOST:PORT" in done.stderr
