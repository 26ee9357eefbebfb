"""serve's outputs: LiveFrame, ServeSink (overlays drawn once, handed on), the segmented
recorder (segments rotate, the oldest goes, every segment decodes), list_clips."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from panorama_cli.localrun.frames import sinks as frame_sinks
from panorama_cli.localrun.serve.clips import list_clips
from panorama_cli.localrun.serve.live import LiveFrame
from panorama_cli.localrun.serve.sinks import ServeSink

W, H = 320, 240


def _gray(value: int) -> np.ndarray:
    return np.full((H, W, 3), value, np.uint8)


def test_live_frame_encodes_jpeg_once_per_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    live = LiveFrame()
    assert live.jpeg() is None and live.latest() is None and live.seq == 0
    calls = []
    real = cv2.imencode

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(cv2, "imencode", counting)
    live.update(_gray(200))
    first = live.jpeg()
    assert first is not None and first[0] == 1
    assert live.jpeg() == first and len(calls) == 1  # cached for the same frame
    decoded = cv2.imdecode(np.frombuffer(first[1], np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (H, W, 3) and abs(int(decoded.mean()) - 200) <= 2
    live.update(_gray(50))
    seq, data = live.jpeg()
    assert seq == 2 and data != first[1] and len(calls) == 2


def test_live_frame_wait_wakes_on_a_new_frame_and_times_out() -> None:
    live = LiveFrame()
    assert live.wait(0, timeout=0.05) is None
    got: list[int | None] = []
    waiter = threading.Thread(target=lambda: got.append(live.wait(0, timeout=5)))
    waiter.start()
    time.sleep(0.1)
    start = time.monotonic()
    live.update(_gray(1))
    waiter.join(5)
    assert got == [1] and time.monotonic() - start < 1
    assert live.wait(0, timeout=0) == 1  # already newer: no wait


class _Spy:
    """Stands in for RtspOut / Recorder: records what the sink hands on."""

    def __init__(self, accept: bool = True) -> None:
        self.added: list[tuple] = []
        self.frames: list[np.ndarray] = []
        self.closed: list[str] = []
        self.accept = accept

    def add_stream(self, stream, fps, width, height):
        self.added.append((stream, fps, width, height))
        return f"rtsp://127.0.0.1:8554/{stream}"

    def push(self, stream, image):
        self.frames.append(image)
        return self.accept

    def close_stream(self, stream):
        self.closed.append(stream)


def test_serve_sink_draws_once_and_hands_the_same_frame_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    draws = []
    real = frame_sinks.draw_overlays

    def counting(*args, **kwargs):
        draws.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr("panorama_cli.localrun.serve.sinks.draw_overlays", counting)
    live, rtsp, record = LiveFrame(), _Spy(), _Spy(accept=False)
    sink = ServeSink("front_camera", 10, live, rtsp=rtsp, record=record)
    image = _gray(0)
    sink.write(image, [(0.25, 0.25, 0.75, 0.75), ("bad",)], [("people: 3", 0.05, 0.1)])
    assert len(draws) == 1
    assert image.max() == 0, "the app's pixels are not changed"
    _, shown = live.latest()
    assert rtsp.frames[0] is shown and record.frames[0] is shown
    # The rect's edge is green (BGR 0,255,0) where HdmiSink draws it.
    assert tuple(shown[H // 4, W // 2]) == frame_sinks.RECT_COLOR
    assert shown[H // 2, W // 2].max() == 0  # inside the rect: untouched
    assert rtsp.added == [("front_camera", 10.0, W, H)] and record.added == rtsp.added
    sink.write(_gray(9))  # no overlays: nothing drawn, a copy handed on
    assert len(draws) == 1 and live.seq == 2 and rtsp.frames[1].max() == 9
    assert sink.skipped == 1 and sink.notes
    assert sink.close() == {
        "frames": 2,
        "rtsp": "rtsp://127.0.0.1:8554/front_camera",
        "rtsp_sent": 2,
        "recorded": 0,
    }
    assert record.closed == ["front_camera"]
    with pytest.raises(RuntimeError):
        sink.write(_gray(0))
    with pytest.raises(ValueError):
        ServeSink("x", 10, LiveFrame()).write(np.zeros((4, 4), np.uint8))


def test_serve_sink_matches_hdmi_sinks_drawing() -> None:
    rects, labels = [(0.1, 0.2, 0.6, 0.9)], [("hello", 0.1, 0.1)]
    live = LiveFrame()
    ServeSink("s", 10, live).write(_gray(30), rects, labels)
    hdmi = frame_sinks.HdmiSink(Path("/nonexistent/never-opened.mp4"), fps=10)
    expected = hdmi._draw(_gray(30), *hdmi._clean(rects, labels))
    assert np.array_equal(live.latest()[1], expected)


def test_recorder_segments_rotate_oldest_deleted_and_decode(tmp_path: Path) -> None:
    pytest.importorskip("gi")
    av = pytest.importorskip("av")
    from panorama_cli.localrun.serve.recorder import Recorder

    recorder = Recorder(tmp_path / "rec", segment_s=1.0, max_files=3, live=False)
    folder = recorder.add_stream("front_camera", 10, W, H)
    seen: set[str] = set()
    push_s = []
    for i in range(140):  # 14 s of video at 10 fps in 1 s segments
        image = _gray((i * 7) % 256)
        cv2.putText(image, str(i), (20, 200), cv2.FONT_HERSHEY_SIMPLEX, 4, (0, 0, 255), 6)
        start = time.perf_counter()
        recorder.push("front_camera", image)
        push_s.append(time.perf_counter() - start)
        time.sleep(0.004)
        seen.update(p.name for p in folder.glob("*.mp4"))
    recorder.close()
    segments = recorder.segments("front_camera")
    assert len(segments) == 3, segments  # max_files: the oldest ones were deleted
    assert recorder.pushed["front_camera"] > 100 and not recorder.errors
    assert max(push_s) < 0.05
    mtimes = [p.stat().st_mtime_ns for p in segments]
    assert mtimes == sorted(mtimes)
    total = 0
    for path in segments:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
        assert frames and frames[0].shape == (H, W, 3)
        total += len(frames)
        capture = cv2.VideoCapture(str(path))
        assert capture.read()[0], f"{path.name} does not decode with OpenCV"
        capture.release()
    assert 15 <= total <= 100  # the last 3 segments of 14 s, not all of it


def test_list_clips_newest_first(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    assert list_clips(storage) == []
    (storage / "counter" / "clips").mkdir(parents=True)
    (storage / "other" / "clips").mkdir(parents=True)
    (storage / "no_clips").mkdir()
    old = storage / "counter" / "clips" / "20260101T000000Z_crowd.mp4"
    new = storage / "other" / "clips" / "20260102T000000Z_crowd.mp4"
    old.write_bytes(b"x" * 10)
    new.write_bytes(b"y" * 20)
    (storage / "counter" / "clips" / ".20260103T000000Z_open.mp4").write_bytes(b"")  # writing
    (storage / "counter" / "clips" / "notes.txt").write_text("")
    os.utime(old, (1_000, 1_000))
    os.utime(new, (2_000, 2_000))
    assert list_clips(storage) == [
        {
            "node": "other",
            "name": new.name,
            "path": f"storage/other/clips/{new.name}",
            "bytes": 20,
            "created": 2000.0,
        },
        {
            "node": "counter",
            "name": old.name,
            "path": f"storage/counter/clips/{old.name}",
            "bytes": 10,
            "created": 1000.0,
        },
    ]


def test_after_sigkill_the_finished_segments_still_play(tmp_path: Path) -> None:
    pytest.importorskip("gi")
    av = pytest.importorskip("av")
    import signal
    import subprocess
    import sys

    from tests.support.paths import REPO

    code = (
        "import sys, time, numpy as np\n"
        "from pathlib import Path\n"
        "from panorama_cli.localrun.serve.recorder import Recorder\n"
        f"r = Recorder(Path({str(tmp_path)!r}), segment_s=1.0, max_files=0, live=False)\n"
        "r.add_stream('cam', 10, 160, 120)\n"
        "for i in range(75):\n"
        "    r.push('cam', np.full((120, 160, 3), i * 3, np.uint8)); time.sleep(0.005)\n"
        "time.sleep(1.0); print('recorded', flush=True); time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "recorded"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    segments = sorted((tmp_path / "cam").glob("cam-*.mp4"))
    assert len(segments) >= 3, segments  # 7.5 s in 1 s segments (+ the current)
    decoded = []
    for path in segments[:-1]:  # the current one may be lost (see recorder.py)
        with av.open(str(path)) as container:
            decoded.append(sum(1 for _ in container.decode(video=0)))
    assert all(n >= 10 for n in decoded), decoded


def test_a_reopened_recording_goes_on_instead_of_overwriting(tmp_path: Path) -> None:
    pytest.importorskip("gi")
    from panorama_cli.localrun.serve.recorder import Recorder

    names = []
    for _generation in range(2):  # serve restarted, or a SIGHUP reload: a new pipeline
        recorder = Recorder(tmp_path, segment_s=1.0, max_files=10, live=False)
        recorder.add_stream("cam", 10, 160, 120)
        for i in range(25):
            recorder.push("cam", np.full((120, 160, 3), i * 5, np.uint8))
            time.sleep(0.004)
        time.sleep(0.3)
        recorder.close()
        names.append({p.name for p in recorder.segments("cam")})
    first, both = names
    assert first and first < both, names  # the first generation's segments are all kept
