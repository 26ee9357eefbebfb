"""SkyLine through real GStreamer pipelines: frames of vtest.avi encoded to files and decoded back."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import numpy as np
import pytest

from backpack import _frames
from backpack.skyline import FileSkyLine, PipelineSkyLine, SkyLine, h264_encoder
from tests.support.gstreamer import decode_video, video_frames
from tests.support.paths import REPO

W, H = 768, 576  # vtest.avi


def put_paced(skyline: SkyLine, frames, fps: float) -> list[bool]:
    """put() each frame on a fixed schedule of ``fps`` frames per second (no drift)."""
    results, start = [], time.perf_counter()
    for index, frame in enumerate(frames):
        delay = start + index / fps - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        results.append(skyline.put(frame))
    return results


def test_put_before_start_returns_false_and_writes_nothing(gst, tmp_path):
    sky = FileSkyLine(tmp_path / "out.mp4", fps=10, width=W, height=H)
    frame = next(video_frames(1))
    assert sky.state is SkyLine.State.STOPPED
    assert sky.put(frame) is False
    assert not (tmp_path / "out.mp4").exists()


def test_file_round_trip_gives_every_frame_at_the_right_size(gst, tmp_path):
    path = tmp_path / "out.mp4"
    sky = FileSkyLine(path, fps=10, width=W, height=H, block=True)
    assert sky.start_streaming() is True
    assert sky.state is SkyLine.State.STREAMING
    sources = []
    for frame in video_frames(150):
        if not sources:
            sources.append(frame.copy())
        assert sky.put(frame) is True
    sky.stop_streaming()
    assert sky.state is SkyLine.State.STOPPED
    assert sky.put(sources[0]) is False

    decoded = decode_video(path)
    assert (decoded.frames, decoded.width, decoded.height) == (150, W, H)
    assert decoded.fps == pytest.approx(10, abs=0.01)
    # Lossy, but the same picture: mean absolute difference of a few grey levels.
    assert np.abs(decoded.first.astype(int) - sources[0].astype(int)).mean() < 8


def test_warmup_measures_fps_and_size_and_drops_only_warmup_frames(gst, tmp_path):
    path = tmp_path / "warm.mkv"
    sky = FileSkyLine(path, warmup_frames=10, block=True)
    assert sky.start_streaming() is True
    assert sky.state is SkyLine.State.START_WARMUP
    frames = list(video_frames(40))  # decoded up front: no decoding jitter in the pacing
    results = put_paced(sky, frames, fps=20)
    assert sky.state is SkyLine.State.STREAMING
    sky.stop_streaming()

    assert results[:9] == [False] * 9  # timed only
    assert all(results[9:])  # the 10th frame opens the stream and is its first frame
    assert (sky.video_width, sky.video_height) == (W, H)
    assert 15 <= sky.video_fps <= 23  # paced at 20/s; a loaded machine adds jitter
    decoded = decode_video(path)
    assert 40 - 10 <= decoded.frames <= 40
    assert decoded.frames == sky.frames_sent == 31
    assert (decoded.width, decoded.height) == (W, H)


def test_known_fps_and_unknown_size_take_the_size_from_the_first_frame(gst, tmp_path):
    sky = FileSkyLine(tmp_path / "size.mkv", fps=10, block=True)
    sky.start_streaming()
    assert [sky.put(f) for f in video_frames(5)] == [True] * 5
    sky.stop_streaming()
    assert (sky.video_width, sky.video_height) == (W, H)
    assert decode_video(tmp_path / "size.mkv").frames == 5


def test_frames_of_another_size_are_resized(gst, tmp_path):
    import cv2

    path = tmp_path / "small.mkv"
    sky = FileSkyLine(path, fps=10, width=320, height=240, block=True)
    sky.start_streaming()
    sources = list(video_frames(20))
    assert all(sky.put(frame) for frame in sources)
    sky.stop_streaming()
    decoded = decode_video(path)
    assert (decoded.frames, decoded.width, decoded.height) == (20, 320, 240)
    expected = cv2.resize(sources[0], (320, 240), interpolation=cv2.INTER_AREA)
    assert np.abs(decoded.first.astype(int) - expected.astype(int)).mean() < 10


def test_numpy_resize_fallback_without_opencv(monkeypatch):
    frame = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    small = _frames.resize_nearest(frame, 3, 2)
    assert small.shape == (2, 3, 3) and small.flags.c_contiguous
    # Each output pixel is the source pixel under its centre.
    assert np.array_equal(small, frame[[1, 3]][:, [1, 3, 5]])
    big = _frames.resize_nearest(frame, 12, 8)
    assert np.array_equal(big[::2, ::2], frame)

    monkeypatch.setattr(_frames, "_cv2", lambda: None)
    assert np.array_equal(_frames.fit_frame(frame, 3, 2), small)
    view = frame[:, ::2]
    fitted = _frames.fit_frame(view, 3, 4)
    assert fitted.flags.c_contiguous and np.array_equal(fitted, view)
    assert _frames.fit_frame(frame, 6, 4) is frame


def test_start_stop_restart_twice_with_new_sizes(gst, tmp_path):
    sky = FileSkyLine(tmp_path / "session{session}.mp4", fps=10, block=True)
    sizes = [(W, H), (320, 240), (640, 360)]
    for session, (width, height) in enumerate(sizes):
        assert sky.start_streaming(10, width, height) is True
        assert sky.session == session
        assert all(sky.put(frame) for frame in video_frames(12))
        sky.stop_streaming()
        assert sky.put(np.zeros((height, width, 3), np.uint8)) is False
    for session, (width, height) in enumerate(sizes):
        decoded = decode_video(tmp_path / f"session{session}.mp4")
        assert (decoded.frames, decoded.width, decoded.height) == (12, width, height)


def test_start_while_streaming_restarts_and_finalizes_the_first_file(gst, tmp_path):
    sky = FileSkyLine(tmp_path / "s{session}.mp4", fps=10, width=320, height=240, block=True)
    sky.start_streaming()
    frames = list(video_frames(6))
    assert all(sky.put(f) for f in frames)
    sky.start_streaming(-999, -999)  # the seed's USE_LAST_VALUE, as a literal
    assert (sky.session, sky.video_width, sky.video_height) == (1, 320, 240)
    assert all(sky.put(f) for f in frames[:3])
    sky.stop_streaming()
    assert decode_video(tmp_path / "s0.mp4").frames == 6
    assert decode_video(tmp_path / "s1.mp4").frames == 3


def test_put_rejects_invalid_frames_without_raising_and_logs_once(gst, caplog):
    sky = PipelineSkyLine("fakesink", fps=10, width=32, height=24)
    sky.start_streaming()
    caplog.set_level(logging.WARNING)
    bad = [None, "frame", np.zeros((24, 32, 3), np.float32), np.zeros((24, 32), np.uint8), [1, 2]]
    assert [sky.put(b) for b in bad] == [False] * len(bad)
    assert sky.state is SkyLine.State.STREAMING
    assert sky.put(np.zeros((24, 32, 3), np.uint8)) is True
    sky.stop_streaming()
    rejected = [r for r in caplog.records if "frame rejected" in r.getMessage()]
    assert len(rejected) == 1  # rate-limited to one per FRAME_LOG_INTERVAL


def test_runtime_bus_error_moves_to_error_state(gst, caplog):
    # videoconvert cannot scale: caps negotiation fails when the first frame flows.
    sky = PipelineSkyLine(
        "videoconvert ! video/x-raw,format=GRAY8,width=16,height=16 ! fakesink",
        fps=10,
        width=64,
        height=48,
    )
    assert sky.start_streaming() is True
    frame = np.zeros((48, 64, 3), np.uint8)
    deadline = time.monotonic() + 5
    while sky.state is not SkyLine.State.ERROR and time.monotonic() < deadline:
        sky.put(frame)
        time.sleep(0.02)
    assert sky.state is SkyLine.State.ERROR
    assert "not-negotiated" in sky.last_error
    assert sky.put(frame) is False
    assert any(
        r.levelno == logging.ERROR and "GStreamer error" in r.getMessage() for r in caplog.records
    )
    sky.stop_streaming()
    assert sky.state is SkyLine.State.STOPPED


def test_start_failure_is_an_error_state_and_start_again_recovers(gst, tmp_path):
    missing_dir = tmp_path / "not-yet"
    sky = FileSkyLine(missing_dir / "out.mkv", fps=10, width=64, height=48, block=True)
    assert sky.start_streaming() is False
    assert sky.state is SkyLine.State.ERROR
    assert "skyline_file" in sky.last_error
    assert sky.put(np.zeros((48, 64, 3), np.uint8)) is False
    missing_dir.mkdir()
    assert sky.start_streaming() is True
    assert sky.put(np.zeros((48, 64, 3), np.uint8)) is True
    sky.stop_streaming()
    assert decode_video(missing_dir / "out.mkv").frames == 1


def test_bad_description_is_an_error_state(gst):
    sky = PipelineSkyLine("videoconvert ! no_such_element_xyz", fps=10, width=64, height=48)
    assert sky.start_streaming() is False
    assert sky.state is SkyLine.State.ERROR
    assert "no_such_element_xyz" in sky.last_error


def test_put_never_blocks_when_the_pipeline_is_slow(gst):
    # identity sleeps 0.2 s per buffer: the queue (2 frames) fills and put() drops frames.
    sky = PipelineSkyLine(
        "identity sleep-time=200000 ! fakesink sync=false",
        fps=30,
        width=320,
        height=240,
        max_queued_frames=2,
    )
    sky.start_streaming()
    frame = np.zeros((240, 320, 3), np.uint8)
    durations, results = [], []
    for _ in range(20):
        start = time.perf_counter()
        results.append(sky.put(frame))
        durations.append(time.perf_counter() - start)
    assert max(durations) < 0.1
    assert results.count(True) >= 2 and results.count(False) >= 10
    assert (sky.frames_sent, sky.frames_dropped) == (results.count(True), results.count(False))
    sky.eos_timeout = 0.5
    sky.stop_streaming()


def test_seed_style_description_with_its_own_appsrc(gst):
    class SeedSkyLine(SkyLine):
        def _get_pipeline(self, fps, width, height):
            return f"appsrc ! videoconvert ! {h264_encoder(fps)} ! fakesink"

    sky = SeedSkyLine(fps=10, width=64, height=48)
    assert sky.start_streaming() is True
    assert all(sky.put(np.zeros((48, 64, 3), np.uint8)) for _ in range(3))
    sky.stop_streaming()
    assert sky.frames_sent == 3


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="suffix"):
        FileSkyLine("out.avi", fps=10)
    with pytest.raises(ValueError, match="fps"):
        FileSkyLine("out.mp4", fps=0)
    with pytest.raises(ValueError, match="width"):
        FileSkyLine("out.mp4", width=1)
    with pytest.raises(ValueError, match="warmup_frames"):
        FileSkyLine("out.mp4", warmup_frames=1)


def test_state_names_and_repr(gst, tmp_path):
    assert SkyLine.State.PLAYING is SkyLine.State.STREAMING
    assert [s.name for s in SkyLine.State] == [
        "STOPPED",
        "START_WARMUP",
        "WARMUP",
        "STREAMING",
        "ERROR",
    ]
    sky = FileSkyLine(tmp_path / "x.mkv", fps=10, width=64, height=48)
    assert repr(sky) == "<FileSkyLine state=STOPPED fps=10 width=64 height=48 sent=0 dropped=0>"


def test_backpack_imports_without_gi_and_names_the_missing_piece():
    code = (
        "import sys; sys.modules['gi'] = None\n"
        "import backpack.skyline, backpack.kvs, backpack.rtsp\n"
        "from backpack.errors import MissingDependencyError\n"
        "try:\n"
        "    backpack.skyline.FileSkyLine('out.mp4', fps=10)\n"
        "except MissingDependencyError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert "FileSkyLine needs the Python module 'gi'" in out.stdout
