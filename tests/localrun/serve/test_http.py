"""serve's HTTP endpoints on a real uvicorn (127.0.0.1, port 0), real HTTP requests."""

from __future__ import annotations

import json
import socket
import threading
import time

import cv2
import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from panorama_cli.errors import UserError
from panorama_cli.localrun.serve.http import HttpServer
from panorama_cli.localrun.serve.metrics import ModelLatency
from tests.localrun.serve.fake_view import FakeView, FrameThread


@pytest.fixture
def served(tmp_path):
    view = FakeView(tmp_path)
    latency = ModelLatency()
    server = HttpServer(view, "127.0.0.1", 0, latency, allowed_hosts=("camera-box.local",))
    with FrameThread(view.live_frames["cam1"]):
        server.start()
        try:
            yield view, server, latency
        finally:
            server.stop()


def test_health_and_readiness(served):
    view, server, _ = served
    assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}"
    r = httpx.get(server.url + "/healthz")
    assert (r.status_code, r.text) == (200, "ok")
    assert httpx.get(server.url + "/readyz").status_code == 200
    view.not_ready = "camera cam2 delivered no frame in the last 5 s"
    r = httpx.get(server.url + "/readyz")
    assert r.status_code == 503 and r.text == view.not_ready


def test_metrics_are_prometheus_text(served):
    _, server, latency = served
    for seconds in (0.004, 0.004, 0.2):
        latency.observe("model_node", seconds)
    r = httpx.get(server.url + "/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert samples[("panorama_camera_frames_total", (("camera", "cam1"),))] == 500
    assert samples[("panorama_camera_dropped_total", (("camera", "cam1"),))] == 3
    assert samples[("panorama_camera_up", (("camera", "cam1"),))] == 1
    assert samples[("panorama_camera_up", (("camera", "cam2"),))] == 0
    assert samples[("panorama_camera_reconnects_total", (("camera", "cam2"),))] == 4
    assert samples[("panorama_node_up", (("node", "code_node"),))] == 1
    assert samples[("panorama_node_restarts_total", (("node", "code_node"),))] == 2
    assert samples[("panorama_hdmi_frames_total", (("stream", "cam1"),))] == 480
    m = (("model", "model_node"),)
    assert samples[("panorama_model_latency_seconds_count", m)] == 3
    assert samples[("panorama_model_latency_seconds_sum", m)] == pytest.approx(0.208)
    assert samples[("panorama_model_latency_seconds_bucket", (("le", "0.005"), *m))] == 2
    assert samples[("panorama_model_latency_seconds_bucket", (("le", "0.001"), *m))] == 0
    assert samples[("panorama_model_latency_seconds_bucket", (("le", "+Inf"), *m))] == 3


def test_metrics_read_status_at_scrape_time(served):
    view, server, _ = served
    view.node_state, view.restarts = "backoff", 3
    text = httpx.get(server.url + "/metrics").text
    assert 'panorama_node_up{node="code_node"} 0.0' in text
    assert 'panorama_node_restarts_total{node="code_node"} 3.0' in text


def test_api_json(served):
    view, server, _ = served
    status = httpx.get(server.url + "/api/status").json()
    assert status["nodes"]["code_node"]["state"] == "running"
    assert status["cameras"]["cam2"] == view.status()["cameras"]["cam2"]
    assert status["uptime_s"] >= 0
    assert httpx.get(server.url + "/api/graph").json() == view.graph()
    assert [c["name"] for c in httpx.get(server.url + "/api/clips").json()] == [
        "event-1.mp4",
        "evil.mp4",
    ]


def test_clips_are_served_and_checked(served):
    view, server, _ = served
    r = httpx.get(server.url + "/clips/code_node/event-1.mp4")
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    assert r.content == (view.state_root / "storage/code_node/clips/event-1.mp4").read_bytes()
    # listed but outside the state folder; not listed; a name that is not one
    assert httpx.get(server.url + "/clips/code_node/evil.mp4").status_code == 404
    assert httpx.get(server.url + "/clips/code_node/secret.txt").status_code == 404
    assert httpx.get(server.url + "/clips/code_node/..%2Fsecret.txt").status_code in (400, 404)
    assert httpx.get(server.url + "/clips/.hidden/x.mp4").status_code == 400


def test_snapshot_and_unknown_stream(served):
    _, server, _ = served
    r = httpx.get(server.url + "/streams/cam1.jpg")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (240, 320, 3)
    assert httpx.get(server.url + "/streams/nope.jpg").status_code == 404
    assert httpx.get(server.url + "/streams/nope.mjpeg").status_code == 404


class Parts:
    """Reads JPEG parts of a multipart/x-mixed-replace body, parsed by their headers."""

    def __init__(self, response):
        self.chunks, self.buffer = response.iter_bytes(), b""

    def read(self, count):
        parts = []
        while len(parts) < count:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end >= 0:
                head = self.buffer[:head_end].decode("ascii").split("\r\n")
                assert head[0] == "--frame" and "Content-Type: image/jpeg" in head
                length = int(next(h for h in head if h.startswith("Content-Length:")).split(":")[1])
                end = head_end + 4 + length
                if len(self.buffer) >= end + 2:
                    parts.append(self.buffer[head_end + 4 : end])
                    assert self.buffer[end : end + 2] == b"\r\n"
                    self.buffer = self.buffer[end + 2 :]
                    continue
            self.buffer += next(self.chunks)
        return parts


def _wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_mjpeg_stream_decodes_and_ends_when_the_client_leaves(served):
    view, server, _ = served
    with httpx.stream("GET", server.url + "/streams/cam1.mjpeg", timeout=10) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "multipart/x-mixed-replace; boundary=frame"
        parts = Parts(r).read(3)
        assert server.active_streams == 1
    images = [cv2.imdecode(np.frombuffer(p, np.uint8), cv2.IMREAD_COLOR) for p in parts]
    assert all(i is not None and i.shape == (240, 320, 3) for i in images)
    assert not np.array_equal(images[0], images[2])  # new frames, not one repeated
    _wait_for(lambda: server.active_streams == 0)
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_stop_ends_open_streams_and_leaves_no_thread(tmp_path):
    before = set(threading.enumerate())
    view = FakeView(tmp_path)
    server = HttpServer(view, "127.0.0.1", 0, ModelLatency())
    with FrameThread(view.live_frames["cam1"]):
        server.start()
        got = []
        with httpx.stream("GET", server.url + "/streams/cam1.mjpeg", timeout=10) as r:
            reader = Parts(r)
            got = reader.read(1)
            t0 = time.monotonic()
            server.stop()
            stop_s = time.monotonic() - t0
            with pytest.raises((httpx.HTTPError, StopIteration)):
                reader.read(1000)  # the stream ends (or the connection drops)
    assert got and stop_s < 3.0
    _wait_for(lambda: set(threading.enumerate()) <= before, timeout=2.0)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{server.port}/healthz")


def test_port_in_use_is_one_user_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = HttpServer(FakeView(tmp_path), "127.0.0.1", port, ModelLatency())
        with pytest.raises(UserError) as caught:
            server.start()
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and "in use" in message and "--listen" in message
    assert "\n" not in message
    assert not [t for t in threading.enumerate() if t.name == "serve-http"]


def test_page_is_served(served):
    view, server, _ = served
    r = httpx.get(server.url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert (
        '<img class="stream" id="stream-cam1"' in r.text and 'src="/streams/cam1.mjpeg"' in r.text
    )
    assert r.text.count('class="node kind-') == len(view.graph()["nodes"])
    assert "http://" not in r.text.replace('xmlns="http://www.w3.org/2000/svg"', "")  # no CDN
    json.dumps(view.status())  # the fake's status is JSON (as the real one must be)
    # the RTSP URL names the host the browser reached serve by
    assert "<code>rtsp://127.0.0.1:8554/cam1</code>" in r.text
    seen = httpx.get(server.url + "/", headers={"Host": "camera-box.local:8765"})
    assert "<code>rtsp://camera-box.local:8554/cam1</code>" in seen.text
    # a name not allowed (DNS rebinding) is refused, and never printed in an RTSP URL
    evil = httpx.get(server.url + "/", headers={"Host": "attacker.example"})
    assert evil.status_code == 400 and "attacker.example" not in evil.text
