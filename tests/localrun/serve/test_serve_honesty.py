"""serve tells what failed, for real: a node that stopped taking frames is ``stalled`` (and
/readyz names it, not its camera); a camera file replaced by garbage is the camera's error, not
the app's; camera losses and reconnects are lines in serve.log (password redacted); a SIGHUP
with a graph ``validate`` rejects keeps the running graph and says why.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from panorama_cli.localrun.serve.keeper import STALL_S
from tests.localrun.helpers import make_project, video
from tests.localrun.serve.serve_process import ServeProcess, http_get
from tests.support.cameras import RtspCamera, write_clip
from tests.support.gstreamer import gst, gst_rtsp  # noqa: F401 - fixtures
from tests.support.polling import until

HANGS_AFTER_FIRST_GET = """
import time
import panoramasdk

app = panoramasdk.node()
app.inputs.video_in.get()
print("took one frame; hanging", flush=True)
while True:
    time.sleep(60)
"""

SLEEPS_IN_INIT = """
import time
import panoramasdk


class App(panoramasdk.node):
    def __init__(self):
        super().__init__()
        print("init forever", flush=True)
        while True:
            time.sleep(60)


App()
"""

COUNTS_FRAMES = """
import panoramasdk

app = panoramasdk.node()
count = 0
while True:
    for stream in app.inputs.video_in.get():
        count += 1
    if count % 25 == 0:
        print("frames", count, flush=True)
    app.outputs.video_out.put([])
"""


def _readyz(serve: ServeProcess) -> tuple[int, str]:
    code, body = http_get(f"{serve.base}/readyz")
    return code, body.decode()


@pytest.mark.parametrize("app", [HANGS_AFTER_FIRST_GET, SLEEPS_IN_INIT], ids=["hang", "init"])
def test_a_node_that_takes_no_frame_is_stalled_and_readyz_names_it(tmp_path, app):
    root = make_project(tmp_path, app)
    serve = ServeProcess(root, tmp_path / "state", video())
    try:
        serve.wait_listening()
        node = until(lambda: serve.node() if serve.node().get("state") == "stalled" else None,
                     STALL_S + 40, "the node to be stalled")  # fmt: skip
        assert node["restarts"] == 0 and node["pid"]
        code, reason = _readyz(serve)
        assert code == 503
        assert reason == f"node code_node stalled: no frame taken in the last {STALL_S:g} s"
        text = serve.get("/metrics")[1].decode()
        assert 'panorama_node_stalled{node="code_node"} 1.0' in text
        assert 'panorama_node_up{node="code_node"} 0.0' in text
        assert "node code_node stalled: no frame taken" in serve.serve_log()
        if app is SLEEPS_IN_INIT:
            _sighup_with_an_edge_from_a_missing_node_keeps_the_graph(root, serve)
    finally:
        assert serve.stop() == 0


def _sighup_with_an_edge_from_a_missing_node_keeps_the_graph(root: Path, serve: ServeProcess):
    graph_path = next((root / "graphs").rglob("graph.json"))
    graph = json.loads(graph_path.read_text())
    graph["nodeGraph"]["edges"].append(
        {"producer": "ghost_camera.video_out", "consumer": "code_node.video_in"}
    )
    graph_path.write_text(json.dumps(graph, indent=2))
    pid = serve.node()["pid"]
    serve.proc.send_signal(signal.SIGHUP)
    until(lambda: "SIGHUP: nothing reloaded" in serve.serve_log(), 20, "the refused reload")
    line = next(x for x in serve.serve_log().splitlines() if "SIGHUP: nothing reloaded" in x)
    assert "ghost_camera" in line and "graph.json" in line, line
    node = serve.node()
    assert node["pid"] == pid and node["restarts"] == 0  # the running graph stays
    assert serve.proc.poll() is None


def test_a_camera_file_replaced_by_garbage_is_the_cameras_error_not_the_apps(tmp_path):
    root = make_project(tmp_path, COUNTS_FRAMES)
    clip = write_clip(tmp_path / "clip.avi", 250, fps=25.0)
    good = tmp_path / "good.avi"
    shutil.copy(clip, good)
    serve = ServeProcess(root, tmp_path / "state", str(clip))
    try:
        serve.wait_listening()
        until(lambda: _readyz(serve)[0] == 200, 60, "serve to be ready")
        with open(clip, "r+b") as f:  # the same file, its bytes replaced: a broken camera
            f.write(os.urandom(clip.stat().st_size))
        camera = until(
            lambda: (
                (c := serve.status()["cameras"]["front_camera"])["state"] == "reconnecting" and c
            ),
            40,
            "the camera to be reconnecting",
        )
        assert camera["connected"] is False and camera["last_error"]
        code, reason = _readyz(serve)
        assert code == 503 and reason.startswith("camera front_camera is not connected"), reason
        node = serve.node()
        assert node["state"] == "running" and node["restarts"] == 0, node
        until(lambda: "camera front_camera: lost (" in serve.serve_log(), 10, "the loss line")
        shutil.copy(good, clip)
        until(lambda: serve.status()["cameras"]["front_camera"]["connected"], 60,
              "the camera back")  # fmt: skip
        until(lambda: "camera front_camera: reconnected (1 so far)" in serve.serve_log(), 10,
              "the reconnect line")  # fmt: skip
        until(lambda: _readyz(serve)[0] == 200, 30, "serve ready again")
    finally:
        assert serve.stop() == 0
    console = (tmp_path / "state" / "logs" / "code_node" / "console.log").read_text()
    assert "RuntimeError" not in console, console[-2000:]  # its get never failed


def test_camera_disconnects_and_reconnects_are_logged_with_the_password_redacted(
    tmp_path,
    gst_rtsp,  # noqa: F811 - fixture
):
    root = make_project(tmp_path, COUNTS_FRAMES)
    with RtspCamera() as rtsp:
        rtsp.start()
        url = rtsp.url.replace("rtsp://", "rtsp://viewer:s3cr3t-pw@")
        serve = ServeProcess(root, tmp_path / "state", url)
        try:
            serve.wait_listening()
            until(lambda: _readyz(serve)[0] == 200, 60, "serve to be ready")
            rtsp.kill()
            until(lambda: "camera front_camera: lost (" in serve.serve_log(), 40, "the loss line")
            rtsp.start()
            until(lambda: "camera front_camera: reconnected (1 so far)" in serve.serve_log(), 90,
                  "the reconnect line")  # fmt: skip
        finally:
            assert serve.stop() == 0
    log = serve.serve_log()
    assert "s3cr3t-pw" not in log and "s3cr3t-pw" not in serve.output()
