"""A run that is killed, hung up on, short of disk or fed bad overlays keeps what it made.

Real runner processes (``python -m panorama_cli run``), real signals, a real 1 MiB tmpfs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from tests.localrun.helpers import make_project, video
from tests.localrun.test_run_apps import PASS_THROUGH
from tests.support.cli_runner import run_cli_subprocess
from tests.support.paths import REPO


def runner(root: Path, *args: str) -> subprocess.Popen:
    """``panorama-cli run`` in ``root``, SIGINT and SIGHUP at their defaults in the child."""

    def defaults() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)

    env = dict(os.environ, PYTHONPATH=str(REPO), NO_COLOR="1")
    return subprocess.Popen(
        [sys.executable, "-m", "panorama_cli", "run", *args],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL, preexec_fn=defaults,
    )  # fmt: skip


def wait_for_progress(proc: subprocess.Popen, out: Path, frames: int) -> dict:
    """The "running" report once it counts ``frames`` HDMI frames (written every 2 s)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            report = json.loads((out / "report.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            report = {}
        if report.get("hdmi", {}).get("front_camera", {}).get("frames", 0) >= frames:
            return report
        time.sleep(0.2)
    raise AssertionError("no progress report")


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(container.streams.video[0]))


def test_sigkill_leaves_a_playable_mp4_a_report_and_a_folder_the_next_run_can_use(tmp_path):
    root = make_project(tmp_path, PASS_THROUGH)
    out = tmp_path / "out"
    proc = runner(root, "--camera", f"front_camera={video()}", "--fast", "--loop",
                  "--output-dir", str(out))  # fmt: skip
    try:
        report = wait_for_progress(proc, out, frames=40)
        time.sleep(1.0)
        proc.kill()  # SIGKILL: no clean-up at all
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert report["exit_reason"] == "running"
    assert report["cameras"]["front_camera"]["frames"] >= 40
    killed = json.loads((out / "report.json").read_text())
    assert killed["exit_reason"] == "running" and killed["hdmi"]["front_camera"]["frames"] >= 40
    assert decoded_frames(out / "hdmi" / "front_camera.mp4") >= 20  # fragments up to the kill
    assert (out / "ctl.sock").exists()  # what a killed run leaves

    again = run_cli_subprocess(
        ["run", "--camera", f"front_camera={video()}", "--frames", "3", "--fast",
         "--output-dir", str(out)],
        cwd=root,
    )  # fmt: skip
    assert again.exit_code == 0, again.describe()  # not "Address already in use"
    assert json.loads((out / "report.json").read_text())["exit_reason"] == "frames"


def test_sighup_stops_the_run_like_sigterm_and_writes_the_report(tmp_path):
    root = make_project(tmp_path, PASS_THROUGH)
    out = tmp_path / "out"
    proc = runner(root, "--camera", f"front_camera={video()}", "--fast", "--loop",
                  "--output-dir", str(out))  # fmt: skip
    try:
        wait_for_progress(proc, out, frames=10)
        proc.send_signal(signal.SIGHUP)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    report = json.loads((out / "report.json").read_text())
    assert report["exit_reason"] == "interrupted", stderr
    frames = report["hdmi"]["front_camera"]["frames"]
    assert frames >= 10 and decoded_frames(out / "hdmi" / "front_camera.mp4") == frames
    assert "node code_node stopped (interrupted)" in stderr
    assert "KeyboardInterrupt" not in stderr


def test_a_closed_terminal_and_its_hangup_still_end_the_run_cleanly(tmp_path):
    """stdout/stderr on a pty whose other end closes (writes fail with EIO), then SIGHUP."""
    import pty

    root = make_project(tmp_path, PASS_THROUGH)
    out = tmp_path / "out"
    primary, secondary = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(REPO), NO_COLOR="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "panorama_cli", "run", "--camera", f"front_camera={video()}",
         "--fast", "--loop", "--output-dir", str(out)],
        cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=secondary, stderr=secondary,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL),
    )  # fmt: skip
    os.close(secondary)
    try:
        wait_for_progress(proc, out, frames=10)
        os.close(primary)  # the terminal window is gone
        proc.send_signal(signal.SIGHUP)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    report = json.loads((out / "report.json").read_text())
    assert report["exit_reason"] == "interrupted"
    frames = report["hdmi"]["front_camera"]["frames"]
    assert frames >= 10 and decoded_frames(out / "hdmi" / "front_camera.mp4") == frames
    assert not (out / "ctl.sock").exists()


MALFORMED = """
import panoramasdk

node = panoramasdk.node()
for i in range(12):
    streams = node.inputs.video_in.get()
    for stream in streams:
        stream.add_rect(0.1, 0.1, 0.4, 0.4)           # fine
        stream.add_rect(float("nan"), 0.2, 0.3, 0.4)  # NaN
        stream.add_rect(0.9, 0.9, 0.2, 0.2)           # inverted: drawn between its corners
        stream.add_rect(-3.0, 0.5, 7.0, 0.6)          # out of range: clipped
        stream.add_rect(0.1, float("inf"), 0.3, 0.4)  # infinite
        stream.add_label("ok", 0.1, 0.9)
        stream.add_label("lost", float("nan"), 0.5)
    node.outputs.video_out.put(streams)
"""


def test_malformed_rects_are_skipped_with_one_note_and_hdmi_goes_on(tmp_path):
    """What an app can make with the SDK (NaN, inf, inverted, out of range); rects of the
    wrong shape are refused by the wire format already (and skipped by the sink, see
    test_localrun_sinks)."""
    root = make_project(tmp_path, MALFORMED, params={})
    out = tmp_path / "out"
    result = run_cli_subprocess(
        ["run", "--camera", f"front_camera={video()}", "--fast", "--frames", "12",
         "--output-dir", str(out)],
        cwd=root,
    )  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert report["hdmi"]["front_camera"]["frames"] == 12, result.describe()
    assert decoded_frames(out / "hdmi" / "front_camera.mp4") == 12
    assert result.stderr.count("skipping malformed overlays") == 1, result.stderr
    assert any("malformed overlays skipped" in note for note in report["notes"])
    assert "HDMI output failed" not in result.stderr


CHATTY = """
import sys
import panoramasdk

node = panoramasdk.node()
line = "x" * 2000
for i in range(10):
    streams = node.inputs.video_in.get()
    for _ in range(300):               # 600 kB a frame: 6 MB into a 1 MiB disk
        print(line)
    node.outputs.video_out.put(streams)
open("/opt/aws/panorama/storage/done", "w").close()
"""


@pytest.fixture
def tiny_disk(tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_drops_console_lines_and_the_run_does_not_hang(tmp_path, tiny_disk):
    root = make_project(tmp_path, CHATTY, params={}, hdmi=False)
    out = tiny_disk / "run"
    started = time.monotonic()
    result = run_cli_subprocess(
        ["run", "--camera", f"front_camera={video()}", "--fast", "--frames", "10",
         "--output-dir", str(out)],
        cwd=root,
        timeout_s=120,
    )  # fmt: skip
    assert time.monotonic() - started < 100
    assert (out / "storage" / "done").exists(), result.describe()[-2000:]
    assert result.stderr.count("console.log cannot be written (No space left on device)") >= 1
    assert "Traceback" not in result.stderr
    assert result.stderr.count("x" * 2000) == 3000  # the terminal still saw every line
