"""backpack.clips.ClipRecorder: clips of pre_s + post_s seconds that decode, bounded memory,
a trigger during a clip extends it, and add() never waits for the encoder."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from backpack.clips import ClipRecorder, _label_part
from tests.support.paths import REPO

av = pytest.importorskip("av")

W, H, FPS = 320, 240, 10
BACKENDS = ["pyav", "opencv"]


def _frame(i: int) -> np.ndarray:
    image = np.full((H, W, 3), (i * 5) % 256, np.uint8)
    cv2.putText(image, str(i), (20, 200), cv2.FONT_HERSHEY_SIMPLEX, 4, (0, 0, 255), 6)
    return image


def _feed(recorder: ClipRecorder, count: int, triggers: dict[int, str], pace: float = 0.002):
    for i in range(count):
        recorder.add(_frame(i))
        if i in triggers:
            recorder.trigger(triggers[i])
        time.sleep(pace)


def _decode(path: Path) -> tuple[str, list[float]]:
    with av.open(str(path)) as container:
        name = container.streams.video[0].codec_context.name
        times = [float(f.time) for f in container.decode(video=0)]
    return name, times


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_clip_holds_pre_and_post_seconds_and_decodes(tmp_path: Path, backend: str) -> None:
    recorder = ClipRecorder(pre_s=2, post_s=3, fps=FPS, folder=tmp_path, backend=backend)
    _feed(recorder, 100, {50: "people >= 3"})  # trigger at t = 5.0 s
    clips = recorder.close()
    assert len(clips) == 1 and recorder.dropped == 0
    clip = clips[0]
    assert clip.parent == tmp_path and clip.name.endswith("Z_people-3.mp4")
    codec, times = _decode(clip)
    assert codec == ("h264" if backend == "pyav" else "mpeg4")
    # 2 s before (from a keyframe at most 1 s earlier) and 3 s after, at 10 fps.
    assert 50 <= len(times) <= 61, len(times)
    assert 4.9 <= times[-1] - times[0] + 0.1 <= 6.1
    capture = cv2.VideoCapture(str(clip))
    ok, first = capture.read()
    capture.release()
    assert ok and first.shape == (H, W, 3)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no partial left"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_trigger_during_a_clip_extends_it(tmp_path: Path, backend: str) -> None:
    recorder = ClipRecorder(pre_s=1, post_s=2, fps=FPS, folder=tmp_path, backend=backend)
    _feed(recorder, 120, {30: "first", 45: "second", 100: "later"})
    clips = recorder.close()
    assert len(clips) == 2, clips  # 30 and 45 make one clip; 100 another
    first = next(c for c in clips if "first" in c.name)
    _, times = _decode(first)
    # from ~2.0 s (1 s before 3.0, keyframe-aligned) to 4.5 + 2 = 6.5 s
    assert 4.4 <= len(times) / FPS <= 5.6, len(times)


def test_memory_is_bounded_by_pre_seconds(tmp_path: Path) -> None:
    recorder = ClipRecorder(pre_s=2, post_s=1, fps=FPS, folder=tmp_path, backend="pyav")
    sizes, seconds = [], []
    for i in range(300):
        recorder.add(_frame(i))
        time.sleep(0.002)
        if i % 20 == 19:
            time.sleep(0.05)
            sizes.append(recorder.buffered_bytes)
            seconds.append(recorder.buffered_seconds)
    recorder.close()
    assert max(seconds) <= 2 + 1.0 + 1e-6  # pre_s plus at most one keyframe interval
    assert min(seconds[3:]) >= 2 - 0.2
    assert max(sizes[5:]) < 3 * min(sizes[5:]) + 50_000  # flat, not growing with the frames
    assert recorder.encoded == 300 and recorder.clips == []


def test_add_never_waits_for_a_slow_encoder(tmp_path: Path) -> None:
    recorder = ClipRecorder(pre_s=1, post_s=1, fps=FPS, folder=tmp_path, max_queued=5)
    gate = threading.Event()
    real = recorder._encoder.encode

    def slow(image, t):
        gate.wait(10)  # an encoder stuck until released
        return real(image, t)

    recorder._encoder.encode = slow  # type: ignore[method-assign]
    worst = 0.0
    for i in range(60):
        start = time.perf_counter()
        recorder.add(_frame(i))
        worst = max(worst, time.perf_counter() - start)
    recorder.trigger("stuck")
    assert worst < 0.02, f"add() took {worst * 1e3:.1f} ms"
    assert recorder.dropped >= 60 - 5 - 1 and recorder.frames + recorder.dropped == 60
    gate.set()
    recorder.close()
    assert recorder.encoded == recorder.frames


def test_frames_timed_by_the_clock_without_fps(tmp_path: Path) -> None:
    recorder = ClipRecorder(pre_s=0.5, post_s=0.5, folder=tmp_path)
    for i in range(30):
        recorder.add(_frame(i))
        if i == 15:
            recorder.trigger("now")
        time.sleep(0.04)  # ~25 fps
    (clip,) = recorder.close()
    _, times = _decode(clip)
    assert 0.6 <= times[-1] - times[0] <= 1.8 and len(times) >= 15


def test_labels_become_safe_file_names() -> None:
    assert _label_part("../../etc/passwd") == "etc-passwd"
    assert _label_part("people: 12 (crowd)") == "people-12-crowd"
    assert _label_part("") == _label_part("///") == "event"
    assert len(_label_part("x" * 200)) == 40


def test_without_pyav_clips_are_written_with_opencv(tmp_path: Path) -> None:
    code = (
        "import sys, time, numpy as np\n"
        "sys.modules['av'] = None  # as if not installed\n"
        "from backpack.clips import ClipRecorder\n"
        f"r = ClipRecorder(pre_s=1, post_s=1, fps=10, folder={str(tmp_path)!r})\n"
        "for i in range(40):\n"
        "    r.add(np.full((120, 160, 3), i, np.uint8))\n"
        "    if i == 20: r.trigger('x')\n"
        "    time.sleep(0.002)\n"
        "print(r.backend, len(r.close()))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.split() == ["opencv", "1"], out.stderr
    (clip,) = tmp_path.glob("*.mp4")
    capture = cv2.VideoCapture(str(clip))
    count = 0
    while capture.read()[0]:
        count += 1
    assert 15 <= count <= 31


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        ClipRecorder(pre_s=-1, folder=tmp_path)
    with pytest.raises(ValueError):
        ClipRecorder(post_s=0, folder=tmp_path)
    with pytest.raises(ValueError):
        ClipRecorder(backend="gif", folder=tmp_path)
