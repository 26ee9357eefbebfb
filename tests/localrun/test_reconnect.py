"""serve's cameras never end: a real RTSP server on 127.0.0.1 (its own process) that is down at
start, SIGKILLed mid-stream and restarted on the same port; files that loop."""

from __future__ import annotations

import threading
import time

import pytest

from panorama_cli.errors import UserError
from panorama_cli.localrun.frames.pacing import Camera
from panorama_cli.localrun.frames.reconnect import (
    ReconnectingSource,
    is_live_spec,
    open_serve_source,
)
from tests.support.cameras import RtspCamera, free_port, write_clip
from tests.support.paths import VIDEO
from tests.support.shared import require

#: Fast backoff for the tests: 0.1 s doubling to 0.4 s, no jitter (seconds).
FAST = {"initial_s": 0.1, "cap_s": 0.4, "jitter_s": 0.0}


def read_timed(source, count: int, timeout: float = 20.0) -> list:
    """``count`` frames read on a thread (fails the test if they take over ``timeout`` s)."""
    frames: list = []

    def reader() -> None:
        while len(frames) < count:
            frame = source.read()
            if frame is None:
                return
            frames.append(frame)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{len(frames)} of {count} frames in {timeout} s"
    return frames


def test_live_specs_are_told_from_files():
    assert is_live_spec("rtsp://u:p@10.0.0.2/live") and is_live_spec(" /dev/video0")
    assert is_live_spec("gst:rtspsrc location=rtsp://h/x ! decodebin ! appsink")
    assert is_live_spec("gst:videotestsrc is-live=true ! appsink")
    assert not is_live_spec("gst:videotestsrc num-buffers=10 ! appsink")
    assert not is_live_spec("video.mp4") and not is_live_spec("/dev/video")


def test_camera_down_at_start_is_read_once_it_comes_up(gst_rtsp):
    camera = RtspCamera()
    source = ReconnectingSource(camera.url, start_wait_s=2.0, **FAST)
    later = threading.Timer(2.0, camera.start)
    try:
        assert source.live and not source.connected and source.size is None
        assert "Connection refused" in source.last_error
        later.start()
        started = time.monotonic()
        frames = read_timed(source, 5)
        came = time.monotonic() - started
        assert 2.0 <= came < 8.0  # the server's start + at most one 0.4 s pause + open
        assert source.connected and source.size == (160, 120) and source.fps == 10.0
        assert [f.image.shape for f in frames] == [(120, 160, 3)] * 5
        assert [f.index for f in frames] == list(range(5))
        assert source.reconnects == 0  # it was never lost: down at start is no reconnect
    finally:
        later.cancel()
        if later.is_alive():
            later.join()
        source.close()
        camera.kill()


def test_server_killed_mid_stream_then_restarted_resumes_with_one_reconnect(gst_rtsp):
    camera = RtspCamera()
    camera.start()
    source = ReconnectingSource(camera.url, **FAST)
    try:
        assert source.connected and source.size == (160, 120)
        before = read_timed(source, 5)

        frames: list = []
        done = threading.Event()

        def reader() -> None:
            resumed = 0
            while resumed < 3 and (frame := source.read()) is not None:
                frames.append(frame)
                resumed += 1 if source.reconnects else 0
            done.set()

        camera.kill()
        killed = time.monotonic()
        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        deadline = killed + 5
        while source.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not source.connected and time.monotonic() - killed < 2.0
        assert source.last_error
        time.sleep(1.5)
        assert not done.is_set() and thread.is_alive()  # read blocks: no exception, no None
        stalled = len(frames)
        camera.start()
        restarted = time.monotonic()
        assert done.wait(15), "frames did not resume"
        back = frames[stalled]
        back_s = time.monotonic() - restarted
        print(f"\nreconnect: first frame {back_s:.2f} s after the server was back")
        assert back_s < 8.0  # at most one 0.4 s pause + an open (about 1.3 s)
        assert source.connected and source.reconnects == 1
        everything = before + frames
        assert [f.index for f in everything] == list(range(len(everything)))
        pts = [f.pts for f in everything]
        assert all(b > a for a, b in zip(pts, pts[1:], strict=False))
        assert back.pts - everything[len(before) + stalled - 1].pts >= 1.5  # the outage
    finally:
        source.close()
        camera.kill()


def test_interrupt_returns_promptly_during_backoff():
    url = f"rtsp://127.0.0.1:{free_port()}/cam"
    source = ReconnectingSource(url, initial_s=5.0, cap_s=30.0, jitter_s=0.0, start_wait_s=2)
    result: list = []
    thread = threading.Thread(target=lambda: result.append(source.read()), daemon=True)
    thread.start()
    time.sleep(0.5)  # inside its 5 s pause
    assert thread.is_alive() and not source.connected
    started = time.monotonic()
    source.interrupt()
    thread.join(2)
    assert not thread.is_alive() and time.monotonic() - started < 0.5
    assert result == [None] and source.read() is None
    source.close()


def test_interrupt_returns_promptly_during_an_open_that_hangs():
    gate = threading.Event()

    def hangs(_spec: str):
        gate.wait(30)
        raise UserError("never answered")

    source = ReconnectingSource("rtsp://10.0.0.1/x", opener=hangs, start_wait_s=0.1, **FAST)
    camera = Camera("cam", source, fast=False, max_frames=None)
    camera.start()
    with pytest.raises(TimeoutError):
        camera.get(timeout=0.5)  # get keeps waiting: a camera away is not the end of input
    assert not camera.ended and not camera.stats.connected and not camera.stats.up()
    started = time.monotonic()
    camera.stop(timeout=2)
    assert not camera._thread.is_alive() and time.monotonic() - started < 0.5
    gate.set()


def test_camera_stats_show_connected_reconnects_and_up(gst_rtsp):
    rtsp = RtspCamera()
    rtsp.start()
    camera = Camera("cam", ReconnectingSource(rtsp.url, **FAST), fast=False, max_frames=None)
    try:
        camera.start()
        assert camera.get(timeout=10) is not None
        stats = camera.stats
        assert stats.connected and stats.reconnects == 0 and stats.up()
        assert not stats.up(now=time.monotonic() + 6)  # no frame within 5 s: down
        rtsp.kill()
        deadline = time.monotonic() + 5
        while stats.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not stats.connected and not stats.up() and not camera.connected
        rtsp.start()
        deadline = time.monotonic() + 15
        while stats.reconnects == 0 and time.monotonic() < deadline:
            camera.get(timeout=15)
        assert stats.reconnects == 1 and stats.connected and stats.up()
        assert camera.reconnects == 1 and camera.connected
        assert not camera.ended
    finally:
        camera.stop()
        rtsp.kill()


def test_serve_source_loops_a_short_file(tmp_path):
    source = open_serve_source(str(write_clip(tmp_path / "clip.avi", 20)))
    try:
        assert not source.live  # paced by its timestamps, read through a reconnect
        frames = [source.read() for _ in range(50)]
    finally:
        source.close()
    assert all(f is not None for f in frames)
    assert [f.index for f in frames] == list(range(50))
    assert all(b.pts > a.pts for a, b in zip(frames, frames[1:], strict=False))
    values = [int(f.image[24, 32, 0]) for f in frames]
    assert values[20:40] == values[:20]  # the second pass is the first again


def test_serve_source_loops_vtest_past_its_end():
    require(VIDEO)
    source = open_serve_source(str(VIDEO))
    try:
        count = 0
        while count < 800:
            assert source.read() is not None
            count += 1
    finally:
        source.close()


def test_serve_source_missing_file_is_bad_input(tmp_path):
    with pytest.raises(UserError, match="no such video file"):
        open_serve_source(str(tmp_path / "absent.mp4"))


def test_serve_source_gst_live_pipeline_checked_at_start_then_reconnects(gst):
    with pytest.raises(UserError, match="not a GStreamer launch string"):
        open_serve_source("gst:rtspsrc location=rtsp://127.0.0.1:1/x ! ! appsink")
    with pytest.raises(UserError, match="must end in one appsink"):
        open_serve_source("gst:v4l2src device=/dev/video99 ! fakesink")
    live = "gst:videotestsrc is-live=true ! video/x-raw,width=32,height=24,framerate=20/1 ! appsink"
    source = open_serve_source(live)
    try:
        assert isinstance(source, ReconnectingSource) and source.size == (32, 24)
        assert source.fps == 20.0 and source.connected
        frames = read_timed(source, 3)
        assert [f.image.shape for f in frames] == [(24, 32, 3)] * 3
    finally:
        source.close()
    finite = open_serve_source("gst:videotestsrc num-buffers=2 ! appsink")
    try:
        assert not finite.live  # paced by its timestamps
        assert all(finite.read() is not None for _ in range(5))  # loops
    finally:
        finite.close()
