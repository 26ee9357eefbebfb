"""serve outlives a full disk and a flooding app, for real: a 2 MiB tmpfs as the state folder
filled by the app, and an app printing 50 MB as fast as it can.

Before: a full state folder printed one ``--- Logging error ---`` traceback per log line and
SIGTERM then exited 1 (``OSError: [Errno 28]`` from closing serve.log); a 1 GiB stdout flood
reached serve's stderr in full.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from panorama_cli.localrun.serve.output_limit import BYTE_BURST, BYTES_PER_S, REPORT_EVERY_S
from panorama_cli.localrun.serve.state_dir import ROTATE
from tests.localrun.helpers import make_project, video
from tests.localrun.serve.serve_process import ServeProcess
from tests.support.ci import unavailable
from tests.support.polling import until

FILLS_THE_DISK = """
import panoramasdk

app = panoramasdk.node()
print("filling", flush=True)
try:
    with open("/opt/aws/panorama/storage/fill.bin", "wb") as f:
        while True:
            f.write(b"x" * 65536)
            f.flush()
except OSError as exc:
    print("disk full:", exc, flush=True)
while True:
    for stream in app.inputs.video_in.get():
        pass
    print("a line per frame, more than the full disk takes " * 2, flush=True)
"""

FLOODS_STDOUT = """
import sys
import panoramasdk

app = panoramasdk.node()
line = "flood " + "x" * 94 + "\\n"
for _ in range(500_000):  # 50 MB
    sys.stdout.write(line)
sys.stdout.flush()
print("flood done", flush=True)
while True:
    app.inputs.video_in.get()
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for the test (root only)."""
    if os.geteuid() != 0:
        unavailable("mounting a tmpfs needs root")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        unavailable(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_state_folder_is_counted_not_a_traceback_flood_and_sigterm_exits_0(
    tmp_path, small_disk
):
    root = make_project(tmp_path, FILLS_THE_DISK)
    serve = ServeProcess(root, small_disk, video(), output_path=tmp_path / "output.txt")
    try:
        serve.wait_listening()
        until(lambda: "disk full" in serve.output(), 60, "the app filling the disk")
        frames = serve.status()["cameras"]["front_camera"]["frames"]
        until(
            lambda: serve.status()["cameras"]["front_camera"]["frames"] > frames + 30,
            30,
            "frames (and log lines) after the disk filled",
        )
        lost = serve.status()["log_lines_lost"]
        assert lost > 0  # the lines serve.log did not take are counted ...
        from prometheus_client.parser import text_string_to_metric_families

        text = serve.get("/metrics")[1].decode()
        samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
        assert samples["panorama_serve_log_lines_lost_total"] >= lost
    finally:
        code = serve.stop()
    output = serve.output()
    assert code == 0, output[-3000:]
    assert "Logging error" not in output and "Traceback" not in output, output[-3000:]
    reports = [line for line in output.splitlines() if "log line" in line and "not written" in line]
    assert 1 <= len(reports) <= 2, reports  # ... and said at most once a minute
    assert "No space left on device" in reports[0]
    assert "serve stopped" in output


def test_a_stdout_flood_reaches_serves_log_bounded_and_console_log_rotated(tmp_path):
    root = make_project(tmp_path, FLOODS_STDOUT)
    state = tmp_path / "state"
    serve = ServeProcess(root, state, video(), output_path=tmp_path / "output.txt")
    console = state / "logs" / "code_node" / "console.log"
    try:
        serve.wait_listening()
        start = time.monotonic()
        until(lambda: console.exists() and "flood done" in console.read_text(errors="replace"),
              120, "the app's 50 MB")  # fmt: skip
        time.sleep(REPORT_EVERY_S + 1)  # the last report of hidden lines
        took = time.monotonic() - start
    finally:
        assert serve.stop() == 0
    output = serve.output()
    shown = output.count("code_node| flood ")
    # serve's own log got the burst plus the sustained rate, not 50 MB
    budget = BYTE_BURST + BYTES_PER_S * (took + 5)
    assert len(output.encode()) < budget + 100_000, len(output)
    assert 0 < shown < 5000, shown
    hidden = [line for line in output.splitlines() if "lines not shown" in line]
    assert hidden and all("code_node" in line and "console.log" in line for line in hidden)
    counted = sum(int(line.split("code_node: ")[1].split()[0]) for line in hidden)
    assert shown + counted >= 500_000  # every line is either shown or counted
    serve_log = state / "logs" / "serve.log"
    assert serve_log.stat().st_size < budget + 100_000
    size, keep = ROTATE
    logs = sorted((state / "logs" / "code_node").glob("console.log*"))
    assert 1 < len(logs) <= keep + 1, logs  # rotated, not one 50 MB file
    assert all(p.stat().st_size <= size + (1 << 16) for p in logs)
