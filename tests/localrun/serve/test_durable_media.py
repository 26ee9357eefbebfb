"""Media that outlives a SIGKILL: serve's ``--record`` segments are fragmented mp4 written as
they go (a kill loses at most ~2 s of the current segment, not the segment), and an event clip
a killed app left hidden is recovered (or removed) at serve's next start, never listed before.
Real processes killed with SIGKILL, real GStreamer and PyAV, frames decoded."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from panorama_cli.localrun.serve.clips import list_clips, settle_partial_clips
from tests.support.paths import REPO

FPS = 10


def _boxes(path: Path) -> list[bytes]:
    """Top-level mp4 box types, in order (the test's own reading of the file)."""
    data, kinds, offset = path.read_bytes(), [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        kinds.append(kind)
        if size < 8:
            break
        offset += size
    return kinds


def _decoded(path: Path) -> int:
    av = pytest.importorskip("av")
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def _killed_after(code: str, tmp_path: Path) -> int:
    """Run ``code`` (it prints ``done N`` when its N frames are in), then SIGKILL it: N."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        assert proc.stdout is not None
        word, count = proc.stdout.readline().split()
        assert word == "done"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    return int(count)


FRAMES = """
import sys, time, numpy as np, cv2

def frame(i):
    image = np.full((120, 160, 3), 80, np.uint8)
    cv2.putText(image, str(i), (10, 90), cv2.FONT_HERSHEY_SIMPLEX, 2, (0, 0, 255), 3)
    return image
"""


def test_sigkill_during_a_segment_keeps_all_but_its_last_two_seconds(tmp_path):
    pytest.importorskip("gi")
    frames = 100  # 10 s at 10 fps, all in the first (300 s) segment
    code = FRAMES + (
        "from pathlib import Path\n"
        "from panorama_cli.localrun.serve.recorder import Recorder\n"
        "r = Recorder(Path('rec'), segment_s=300.0, max_files=0, live=False)\n"
        "r.add_stream('cam', 10, 160, 120)\n"
        f"for i in range({frames}):\n"
        "    r.push('cam', frame(i)); time.sleep(0.01)\n"
        "time.sleep(1.5); print('done', r.pushed['cam'], flush=True); time.sleep(60)\n"
    )
    pushed = _killed_after(code, tmp_path)  # the frames the recorder took (none dropped?)
    (segment,) = (tmp_path / "rec" / "cam").glob("cam-*.mp4")
    kinds = _boxes(segment)
    assert kinds[:3] == [b"ftyp", b"moov", b"moof"], kinds  # fragmented, header first
    assert kinds.count(b"moof") >= 5, kinds  # 1 s fragments, on disk as they were muxed
    decoded = _decoded(segment)
    # at most ~2 s lost (a GOP held by splitmuxsink, a fragment by the muxer), not the segment
    assert pushed > 50 and decoded >= pushed - 2 * FPS - 2, (decoded, pushed)
    import cv2

    capture = cv2.VideoCapture(str(segment))
    assert capture.read()[0], "the killed segment does not decode with OpenCV"
    capture.release()


def test_a_killed_apps_partial_clip_is_recovered_at_the_next_start_never_listed_before(
    tmp_path,
):
    pytest.importorskip("av")
    storage = tmp_path / "storage"
    clips = storage / "code_node" / "clips"
    code = FRAMES + (
        "from backpack.clips import ClipRecorder\n"
        f"r = ClipRecorder(pre_s=1, post_s=60, fps=10, folder={str(clips)!r})\n"
        "for i in range(80):\n"
        "    r.add(frame(i)); time.sleep(0.01)\n"
        "    if i == 10: r.trigger('crowd')\n"
        "time.sleep(1.5); print('done', r.frames, flush=True); time.sleep(60)\n"
    )
    _killed_after(code, tmp_path)
    (partial,) = clips.iterdir()
    assert partial.name.startswith(".") and partial.name.endswith("_crowd.mp4")
    assert list_clips(storage) == []  # hidden: not listed while partial
    (clips / ".20260101T000000Z_broken.mp4").write_bytes(  # OpenCV's, killed: no index
        b"\0\0\0\x1cftypisom" + bytes(16) + b"\0\0\0\0mdat" + bytes(100)
    )
    (clips / ".20260101T000000Z_link.mp4").symlink_to(tmp_path / "outside.mp4")
    (tmp_path / "outside.mp4").write_bytes(b"not touched")
    notes = settle_partial_clips(storage)
    assert len(notes) == 2 and any("recovered" in n for n in notes), notes
    assert any("broken.mp4 held no whole fragment: removed" in n for n in notes), notes
    listed = list_clips(storage)
    assert [c["name"] for c in listed] == [partial.name[1:]]
    assert _decoded(clips / partial.name[1:]) >= 40  # 1 s before the trigger, then ~6 s
    left = sorted(p.name for p in clips.iterdir())  # a link: left alone, never followed
    assert left == [".20260101T000000Z_link.mp4", partial.name[1:]]
    assert (tmp_path / "outside.mp4").read_bytes() == b"not touched"
    assert settle_partial_clips(storage) == []  # nothing left to settle


def test_a_partial_clip_still_being_written_is_left_when_asked(tmp_path):
    clips = tmp_path / "storage" / "node" / "clips"
    clips.mkdir(parents=True)
    partial = clips / ".20260101T000000Z_live.mp4"
    partial.write_bytes(b"\0\0\0\x1cftypisom" + bytes(20))
    assert settle_partial_clips(tmp_path / "storage", idle_s=60.0) == []  # external nodes
    assert partial.exists()
    os.utime(partial, (0, 0))
    assert len(settle_partial_clips(tmp_path / "storage", idle_s=60.0)) == 1
    assert not partial.exists()
