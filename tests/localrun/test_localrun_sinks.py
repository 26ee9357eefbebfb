"""HdmiSink: H.264 mp4 files decoded back with PyAV; overlays drawn on a copy; PNG snapshots."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from panorama_cli.localrun.frames.sinks import HdmiSink
from tests.support.paths import VIDEO
from tests.support.shared import require


def frames_of(width: int, height: int, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(7)  # smooth texture: what a camera sees, not chroma noise
    base = cv2.GaussianBlur(rng.integers(40, 140, (height, width, 3), dtype=np.uint8), (0, 0), 3)
    return [np.roll(base, i, axis=1).copy() for i in range(count)]


def decode(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        info = (
            stream.codec_context.name,
            stream.codec_context.pix_fmt,
            stream.codec_context.profile,
            float(stream.average_rate),
        )
        images = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
    return info, images


def test_mp4_with_overlays_drawn_on_a_copy(tmp_path):
    path = tmp_path / "run" / "hdmi" / "cam.mp4"
    sink = HdmiSink(path, fps=10)
    frames = frames_of(320, 240, 30)
    originals = [f.copy() for f in frames]
    for i, frame in enumerate(frames):
        rects = [(0.25, 0.25, 0.75, 0.75)] if i == 10 else []
        labels = [("COUNT 3", 0.05, 0.15)] if i == 10 else []
        sink.write(frame, rects, labels)
    assert all(np.array_equal(a, b) for a, b in zip(frames, originals, strict=True))
    assert sink.close() == {"frames": 30, "path": "hdmi/cam.mp4"}
    assert sink.close() == {"frames": 30, "path": "hdmi/cam.mp4"}  # idempotent
    with pytest.raises(RuntimeError, match="sink closed"):
        sink.write(frames[0])

    (codec, pix_fmt, profile, fps), images = decode(path)
    assert (codec, pix_fmt, fps, len(images)) == ("h264", "yuv420p", 10.0, 30)
    assert profile in ("High", "Main", "Constrained Baseline", "Baseline")
    assert images[0].shape == (240, 320, 3)
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # faststart: plays while downloading

    # The rectangle's left edge (x = 80) is green on frame 10 only.
    edge = images[10][70:170, 79:82].reshape(-1, 3).astype(int)
    assert edge[:, 1].mean() > 200 and edge[:, 0].mean() < 80 and edge[:, 2].mean() < 80
    assert images[9][70:170, 79:82, 1].mean() < 150 and images[11][70:170, 79:82, 1].mean() < 150
    # The label's text is white, top-left.
    text = images[10][10:40, 10:120].reshape(-1, 3).min(axis=1)
    assert (text > 200).sum() > 30 and (images[9][10:40, 10:120].min(axis=2) > 200).sum() == 0
    # The rest of the picture is the input, give or take the encoder's loss.
    assert np.abs(images[5].astype(int) - originals[5]).mean() < 8


def test_png_snapshots_every_n_frames_are_exact(tmp_path):
    sink = HdmiSink(
        tmp_path / "hdmi" / "a.mp4", fps=5, snapshot_dir=tmp_path / "snaps", snapshot_every=4
    )
    frames = frames_of(64, 48, 10)
    for i, frame in enumerate(frames):
        sink.write(frame, [(0.0, 0.0, 1.0, 1.0)] if i == 4 else [])
    sink.close()
    names = sorted(p.name for p in (tmp_path / "snaps").iterdir())
    assert names == ["a-000000.png", "a-000004.png", "a-000008.png"]
    assert np.array_equal(cv2.imread(str(tmp_path / "snaps" / "a-000000.png")), frames[0])
    drawn = cv2.imread(str(tmp_path / "snaps" / "a-000004.png"))
    assert tuple(drawn[20, 0]) == (0, 255, 0) and tuple(drawn[0, 30]) == (0, 255, 0)
    assert np.array_equal(drawn[5:-5, 5:-5], frames[4][5:-5, 5:-5])


def test_odd_sizes_are_padded_and_other_sizes_resized(tmp_path):
    sink = HdmiSink(tmp_path / "hdmi" / "odd.mp4", fps=30)
    sink.write(np.full((121, 161, 3), 200, np.uint8))
    sink.write(np.full((60, 80, 3), 200, np.uint8))  # resized to the first frame's size
    sink.close()
    _, images = decode(tmp_path / "hdmi" / "odd.mp4")
    assert [i.shape for i in images] == [(122, 162, 3)] * 2
    assert images[0][:120, :160].mean() > 190 and images[0][121, :].mean() < 30  # black padding


def test_no_frames_no_file_and_bad_input(tmp_path):
    sink = HdmiSink(tmp_path / "hdmi" / "none.mp4", fps=10)
    with pytest.raises(ValueError, match="H×W×3 uint8 BGR"):
        sink.write(np.zeros((10, 10), np.uint8))
    assert sink.close() == {"frames": 0, "path": None}
    assert not (tmp_path / "hdmi").exists()
    with pytest.raises(ValueError, match="fps must be > 0"):
        HdmiSink(tmp_path / "x.mp4", fps=0)


def test_vtest_frames_with_out_of_range_boxes(tmp_path):
    require(VIDEO)
    from tests.support.gstreamer import video_frames

    sink = HdmiSink(tmp_path / "hdmi" / "street.mp4", fps=10)
    for frame in video_frames(20):
        sink.write(frame, [(-0.2, 0.5, 1.3, 0.9)], [("far", 1.5, -1.0)])  # clamped, no error
    assert sink.close()["frames"] == 20
    _, images = decode(tmp_path / "hdmi" / "street.mp4")
    assert len(images) == 20 and images[0].shape == (576, 768, 3)
    assert images[3][int(0.5 * 576) - 1 : int(0.5 * 576) + 2, 100:600, 1].mean() > 200  # top edge


def test_malformed_overlays_are_skipped_counted_and_noted_once(tmp_path):
    from panorama_cli.localrun.frames.sinks import clean_label, clean_rect

    assert clean_rect((0.9, 0.8, 0.2, 0.1)) == (0.2, 0.1, 0.9, 0.8)  # inverted: its corners
    assert clean_rect((-1, 0.5, 3, 0.6)) == (0.0, 0.5, 1.0, 0.6)  # clipped
    for bad in ((float("nan"), 0, 1, 1), (0, float("inf"), 1, 1), "abcd", (0.1, 0.2), None, 5):
        assert clean_rect(bad) is None
    assert clean_label(("hi", 2, -1)) == ("hi", 1.0, 0.0)
    assert clean_label(12) is None and clean_label(("x", float("nan"), 0)) is None
    path = tmp_path / "hdmi" / "cam.mp4"
    sink = HdmiSink(path, fps=10)
    for frame in frames_of(64, 48, 5):
        sink.write(frame, [(0.1, 0.1, 0.5, 0.5), "bad", (float("nan"),) * 4], [("ok", 0.1, 0.9), 7])
    sink.write(frames_of(64, 48, 1)[0], 42, "not labels")  # not even lists
    assert sink.close()["frames"] == 6
    assert sink.skipped == 5 * 3 + 2
    assert len(sink.notes) == 2 and "skipping malformed overlays" in sink.notes[0]
    assert sink.notes[1] == "HDMI cam: 17 malformed overlays skipped"
    assert len(decode(path)[1]) == 6


def test_a_killed_writer_leaves_a_playable_fragmented_mp4(tmp_path):
    """The mp4 is fragmented: cut anywhere after its first fragment, it still plays."""
    path = tmp_path / "cam.mp4"
    sink = HdmiSink(path, fps=10)
    for frame in frames_of(160, 120, 45):
        sink.write(frame)
    sink.close()
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"moof")
    fragments = [i - 4 for i in range(len(data)) if data.startswith(b"moof", i)]
    assert len(fragments) >= 4  # a keyframe (and a fragment) every second
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: fragments[3]])  # the writer killed before its 4th fragment
    assert len(decode(cut)[1]) == 30
    cut.write_bytes(data[: (fragments[3] + fragments[4]) // 2])  # ... in the middle of it
    with av.open(str(cut)) as container:
        frames = 0
        for packet in container.demux(container.streams.video[0]):
            try:
                frames += len(packet.decode())
            except av.error.InvalidDataError:
                break  # the cut-off sample
    assert frames >= 20  # up to the cut (less what the decoder still held)
