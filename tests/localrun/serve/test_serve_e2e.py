"""``panorama-cli serve`` for real: a subprocess, real signals, real HTTP on 127.0.0.1.

One serve per test module runs a pass-through app on looping video; the tests read its
endpoints, SIGKILL its node (restart), change a parameter and send SIGHUP (reload), and at
the end SIGTERM it (exit 0, no process left, storage kept for the next serve).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.localrun.helpers import make_project, processes_with, video
from tests.support.polling import until
from tests.support.signals import popen_interruptible

APP = """
import os
import panoramasdk

STARTS = "/opt/aws/panorama/storage/starts.txt"


class App(panoramasdk.node):
    def __init__(self):
        super().__init__()
        self.threshold = self.inputs.threshold.get()


def main():
    app = App()
    starts = int(open(STARTS).read()) + 1 if os.path.exists(STARTS) else 1
    with open(STARTS, "w") as f:
        f.write(str(starts))
    print("start", starts, "threshold", app.threshold, "pid", os.getpid(), flush=True)
    while True:
        streams = app.inputs.video_in.get()
        for stream in streams:
            stream.add_rect(0.1, 0.1, 0.5, 0.5)
            stream.add_label("t=%s" % app.threshold, 0.1, 0.1)
        app.outputs.video_out.put(streams)


main()
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, timeout: float = 5.0, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        request = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _status(serve: Serve) -> dict:
    """/api/status with the login token serve made (auth is on by default)."""
    return json.loads(_get(f"{serve.base}/api/status", token=serve.token)[1])


class Serve:
    def __init__(self, root: Path, state: Path, *extra: str):
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.state = state
        self.log = root / "serve-output.txt"
        argv = [sys.executable, "-m", "panorama_cli", "serve", "--camera",
                f"front_camera={video()}", "--listen", f"127.0.0.1:{self.port}",
                "--rtsp-port", "0", "--state-dir", str(state), *extra]  # fmt: skip
        self.out = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = popen_interruptible(argv, cwd=root, stdout=self.out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def token(self) -> str:
        return (self.state / "auth" / "token").read_text().strip()

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready():
            assert self.proc.poll() is None, self.output()
            try:
                return _get(f"{self.base}/readyz", 2)[0] == 200
            except OSError:
                return False

        until(ready, timeout, "serve to be ready")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        finally:
            self.out.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    parent = tmp_path_factory.mktemp("serve")
    root = make_project(parent, APP)
    serve = Serve(root, parent / "state")
    try:
        serve.wait_ready()
        yield root, serve
    finally:
        if serve.proc.poll() is None:
            serve.proc.kill()
            serve.proc.wait()


def test_health_readiness_and_status_while_serving(served):
    _root, serve = served
    assert _get(f"{serve.base}/healthz") == (200, b"ok")
    assert _get(f"{serve.base}/api/status")[0] == 401  # auth is on by default
    status = _status(serve)
    node = status["nodes"]["code_node"]
    assert node["state"] == "running" and node["pid"] and node["restarts"] == 0
    camera = status["cameras"]["front_camera"]
    assert camera["connected"] and camera["frames"] > 0 and camera["reconnects"] == 0
    assert status["uptime_s"] > 0


def test_metrics_count_frames_as_they_pass(served):
    _root, serve = served
    from prometheus_client.parser import text_string_to_metric_families

    def frames() -> dict[str, float]:
        text = _get(f"{serve.base}/metrics", token=serve.token)[1].decode()
        found = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                found[f"{sample.name}{sorted(sample.labels.items())}"] = sample.value
        return found

    first = frames()
    key = "panorama_camera_frames_total[('camera', 'front_camera')]"
    assert first[key] > 0
    assert first["panorama_node_up[('node', 'code_node')]"] == 1
    until(lambda: frames()[key] > first[key] + 5, 10, "more frames")
    hdmi = "panorama_hdmi_frames_total[('stream', 'front_camera')]"
    until(lambda: frames().get(hdmi, 0) > 0, 10, "HDMI frames")


def test_video_files_loop_past_their_end(served):
    _root, serve = served
    status = _status(serve)
    assert status["cameras"]["front_camera"]["connected"]  # 795 frames at 10 fps: 80 s


def test_a_killed_node_is_restarted_with_its_storage_and_the_frames_resume(served):
    _root, serve = served
    before = _status(serve)["nodes"]["code_node"]
    pids = processes_with(str(serve.state / "run" / ".bin"))
    assert pids, "the app's processes are found by their sandbox's bind of the shims"
    start = time.monotonic()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def restarted():
        node = _status(serve)["nodes"]["code_node"]
        return node if node["restarts"] >= 1 and node["state"] == "running" else None

    node = until(restarted, 20, "the node's restart")
    assert node["last_exit"] is not None and node["pid"] != before["pid"]
    frames = _status(serve)["cameras"]["front_camera"]["frames"]
    until(lambda: _status(serve)["cameras"]["front_camera"]["frames"] > frames, 10,
           "frames after the restart")  # fmt: skip
    took = time.monotonic() - start
    assert took < 10, took
    starts = serve.state / "storage" / "code_node" / "starts.txt"
    assert int(starts.read_text()) == 2  # the restarted node read what the first one wrote
    console = (serve.state / "logs" / "code_node" / "console.log").read_text()
    assert "start 1 threshold" in console and "start 2 threshold" in console
    assert "node code_node exited" in serve.output()


def test_sighup_rereads_the_graph_and_restarts_the_node_whose_input_changed(served):
    root, serve = served
    graph_path = next((root / "graphs").rglob("graph.json"))
    graph = json.loads(graph_path.read_text())
    for node in graph["nodeGraph"]["nodes"]:
        if node["name"] == "threshold":
            node["value"] = 75
    graph_path.write_text(json.dumps(graph, indent=2))
    restarts = _status(serve)["nodes"]["code_node"]["restarts"]
    serve.proc.send_signal(signal.SIGHUP)
    console = serve.state / "logs" / "code_node" / "console.log"
    until(lambda: "threshold 75" in console.read_text(), 20, "the node with the new value")
    assert _status(serve)["nodes"]["code_node"]["restarts"] == restarts + 1
    assert "restarting (SIGHUP: its inputs changed)" in serve.output()
    serve.wait_ready(20)


def test_sigterm_stops_everything_with_status_0_and_storage_lasts(served, tmp_path):
    root, serve = served
    marker = str(serve.state / "run" / ".bin")
    assert serve.stop() == 0, serve.output()
    assert processes_with(marker) == []
    assert "serve stopped" in serve.output()
    assert (serve.state / "logs" / "serve.log").read_text().count("serve stopped") == 1
    again = Serve(root, serve.state, "--log-format", "json")
    try:
        again.wait_ready()
        starts = serve.state / "storage" / "code_node" / "starts.txt"
        until(lambda: int(starts.read_text()) >= 4, 10, "the next serve's start")
        lines = [json.loads(x) for x in again.output().splitlines() if x.startswith("{")]
        assert any(x.get("node") == "code_node" and "start" in x["msg"] for x in lines)
    finally:
        assert again.stop() == 0
