"""RTSPSkyLine served on 127.0.0.1 and read back by a real RTSP client (OpenCV's FFMPEG)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from backpack.rtsp import RTSPServer, RTSPSkyLine
from backpack.skyline import SkyLine
from tests.support.gstreamer import video_frames


@contextmanager
def producing(skyline: SkyLine, fps: float) -> Iterator[list[bool]]:
    """put() vtest.avi frames (768x576) at ``fps`` from a thread, as a frame loop would."""
    frames = list(video_frames(20))
    results: list[bool] = []
    stop = threading.Event()

    def loop() -> None:
        index = 0
        while not stop.wait(1 / fps):
            results.append(skyline.put(frames[index % len(frames)]))
            index += 1

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield results
    finally:
        stop.set()
        thread.join(5)


def read_frames(url: str, count: int, monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    """Open ``url`` with OpenCV's FFMPEG backend (RTSP over TCP) and read ``count`` frames.

    A client that gets no first frame reconnects once, as RTSP players do: FFMPEG's first
    session now and then ends before the media flows (seen about once in 20 runs on a loaded
    2-CPU machine); the second attempt must deliver every frame.
    """
    import cv2

    # TCP interleaving (no UDP ports); probe less than FFMPEG's default 5 s of stream.
    options = "rtsp_transport;tcp|analyzeduration;1000000|probesize;500000"
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", options)
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 15000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 10000]
    for attempt in range(2):
        capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
        try:
            assert capture.isOpened(), f"cannot open {url}"
            frames = []
            for _ in range(count):
                ok, frame = capture.read()
                if not ok and not frames and attempt == 0:
                    break  # no first frame: reconnect once
                assert ok, f"read failed after {len(frames)} frames"
                frames.append(frame)
            else:
                return frames
        finally:
            capture.release()
    raise AssertionError("unreachable")


def test_rtsp_client_receives_frames_of_the_stream_size_across_restarts(gst_rtsp, monkeypatch):
    sky = RTSPSkyLine(None, "annotated", port=0, host="127.0.0.1", fps=10, width=640, height=480)
    for _ in range(2):
        assert sky.start_streaming() is True
        assert sky.url.startswith("rtsp://127.0.0.1:") and sky.url.endswith("/annotated")
        assert sky.server.port > 0
        with producing(sky, fps=10) as results:
            time.sleep(0.3)
            assert not sky.clients_watching and results and not any(results)  # nobody watches
            frames = read_frames(sky.url, 5, monkeypatch)
        assert [f.shape for f in frames] == [(480, 640, 3)] * 5  # resized from 768x576
        assert sky.frames_sent >= 5
        # The picture is the street of vtest.avi, not a blank frame.
        assert float(frames[-1].std()) > 20
        sky.stop_streaming()
        assert not sky.server.running and sky.put(np.zeros((480, 640, 3), np.uint8)) is False


def test_two_streams_share_one_server(gst_rtsp, monkeypatch):
    server = RTSPServer(port=0, host="127.0.0.1")
    small = RTSPSkyLine(server, "/small", fps=10, width=320, height=240)
    wide = RTSPSkyLine(server, "/wide", fps=10, width=480, height=270)
    server.start()
    try:
        small.start_streaming()
        wide.start_streaming()
        assert sorted(server.urls()) == [
            f"rtsp://127.0.0.1:{server.port}/small",
            f"rtsp://127.0.0.1:{server.port}/wide",
        ]
        with producing(small, fps=10), producing(wide, fps=10):
            assert read_frames(wide.url, 2, monkeypatch)[-1].shape == (270, 480, 3)
            assert read_frames(small.url, 2, monkeypatch)[-1].shape == (240, 320, 3)
        small.stop_streaming()
        assert server.running and server.urls() == [f"rtsp://127.0.0.1:{server.port}/wide"]
        wide.stop_streaming()
    finally:
        server.stop()
    assert not server.running
    assert repr(server) == "<RTSPServer running=False streams=[]>"
