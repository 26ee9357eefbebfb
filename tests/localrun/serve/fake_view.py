"""A ServeView for serve's HTTP tests: real frames (numpy images pushed by a thread), status a
test can change, a clip file on disk."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


class FakeLive:
    """The LiveFrame interface (seq, jpeg, wait) over frames a thread pushes."""

    def __init__(self) -> None:
        self.seq = 0
        self._image = None
        self._cond = threading.Condition()

    def update(self, image: np.ndarray) -> None:
        with self._cond:
            self._image = image
            self.seq += 1
            self._cond.notify_all()

    def jpeg(self, quality: int = 80):
        import cv2

        with self._cond:
            image, seq = self._image, self.seq
        if image is None:
            return None
        ok, data = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
        assert ok
        return seq, data.tobytes()

    def wait(self, after_seq: int, timeout: float):
        with self._cond:
            if self._cond.wait_for(lambda: self.seq > after_seq, timeout):
                return self.seq
            return None


class FrameThread:
    """Pushes a 320x240 BGR frame (a moving bar) into ``live`` at ``fps`` until stopped."""

    def __init__(self, live: FakeLive, fps: float = 20.0) -> None:
        self.live, self.fps = live, fps
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            image = np.full((240, 320, 3), 40, np.uint8)
            x = (i * 8) % 300
            image[:, x : x + 20] = (0, 200, 255)
            self.live.update(image)
            i += 1
            self._stop.wait(1.0 / self.fps)

    def __enter__(self) -> FrameThread:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


class FakeView:
    """ServeView with two cameras, a business node, a model, an HDMI output, one stream."""

    def __init__(self, root: Path) -> None:
        self.started_monotonic = time.monotonic()
        self.state_root = root
        self.live_frames = {"cam1": FakeLive()}
        self.not_ready: str = ""
        self.node_state = "running"
        self.restarts = 2
        self.callers: list[str] = []
        clip_dir = root / "storage" / "code_node" / "clips"
        clip_dir.mkdir(parents=True)
        (clip_dir / "event-1.mp4").write_bytes(b"\0\0\0\x18ftypmp42" + bytes(100))
        (root / "secret.txt").write_text("not a clip")

    def status(self) -> dict:
        return {
            "uptime_s": time.monotonic() - self.started_monotonic,
            "nodes": {
                "code_node": {
                    "pid": 1234,
                    "state": self.node_state,
                    "restarts": self.restarts,
                    "last_exit": 1,
                },
                "model_node": {"pid": None, "state": "running", "restarts": 0, "last_exit": None},
            },
            "cameras": {
                "cam1": {
                    "connected": True,
                    "fps": 10.0,
                    "frames": 500,
                    "dropped": 3,
                    "reconnects": 1,
                    "uri": "vtest.avi",
                },
                "cam2": {
                    "connected": False,
                    "fps": 0.0,
                    "frames": 7,
                    "dropped": 0,
                    "reconnects": 4,
                    "uri": "rtsp://***@h/x",
                },
            },
            "models": {
                "model_node": {
                    "calls": 42,
                    "p50_ms": 5.5,
                    "p95_ms": 9.25,
                    "backend": "onnxruntime-cpu",
                    "callers": list(self.callers),
                }
            },
            "streams": {"cam1": {"frames": 480, "rtsp": None}},
        }

    def ready(self) -> tuple[bool, str]:
        return (not self.not_ready, self.not_ready)

    def graph(self) -> dict:
        return {
            "nodes": [
                {"name": "cam1", "kind": "camera", "package": "cams"},
                {"name": "cam2", "kind": "camera", "package": "cams"},
                {"name": "code_node", "kind": "business", "package": "APP"},
                {"name": "model_node", "kind": "model", "package": "MODEL"},
                {"name": "hdmi", "kind": "hdmi", "package": "panorama::hdmi_data_sink"},
            ],
            "edges": [
                {"producer": "cam1", "consumer": "code_node"},
                {"producer": "cam2", "consumer": "code_node"},
                {"producer": "code_node", "consumer": "hdmi"},
            ],
            "calls": [{"producer": "code_node", "consumer": "model_node"}],
        }

    def streams(self) -> list[str]:
        return list(self.live_frames)

    def live(self, stream: str):
        return self.live_frames.get(stream)

    def clips(self) -> list[dict]:
        return [
            {
                "node": "code_node",
                "name": "event-1.mp4",
                "path": "storage/code_node/clips/event-1.mp4",
                "bytes": 116,
                "created": 1.7e9,
            },
            {
                "node": "code_node",
                "name": "evil.mp4",
                "path": "../../../etc/passwd",
                "bytes": 1,
                "created": 1.7e9,
            },
        ]

    def rtsp_url(self, stream: str, host=None):
        if stream not in self.live_frames:
            return None
        return f"rtsp://{host or '127.0.0.1'}:8554/{stream}"


@contextmanager
def served_with_token(state: Path) -> Iterator[tuple[Any, str]]:
    """A real :class:`HttpServer` on 127.0.0.1 over a :class:`FakeView` of ``state``, its
    login token made there, frames flowing on ``cam1``: ``(server, token)``."""
    from panorama_cli.localrun.serve.auth import load_token
    from panorama_cli.localrun.serve.http import HttpServer
    from panorama_cli.localrun.serve.metrics import ModelLatency

    view = FakeView(state)
    token, _ = load_token(state)
    server = HttpServer(view, "127.0.0.1", 0, ModelLatency(), token=token)
    with FrameThread(view.live_frames["cam1"]):
        server.start()
        try:
            yield server, token
        finally:
            server.stop()
