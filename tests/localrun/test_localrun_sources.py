"""Frame sources and camera pacing of `panorama-cli run` on real video, images, RTSP and GStreamer."""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from panorama_cli.errors import UserError
from panorama_cli.localrun.frames.pacing import Camera
from panorama_cli.localrun.frames.sources import Frame, open_source, redact_uri
from tests.support.paths import VIDEO
from tests.support.shared import require


def write_pngs(folder: Path, count: int, size: tuple[int, int] = (64, 48)) -> list[np.ndarray]:
    """PNG frames whose top-left pixel encodes the frame number (names not zero-padded)."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for i in range(count):
        image = np.full((size[1], size[0], 3), (i * 7) % 256, np.uint8)
        image[0, 0] = (i, 255 - i, 0)
        assert cv2.imwrite(str(folder / f"frame{i}.png"), image)
        images.append(image)
    return images


def number(frame) -> int:
    return int(frame.image[0, 0, 0])


# -- files and image sequences ---------------------------------------------------------------
def test_video_file_frames_size_fps_and_pts():
    require(VIDEO)
    source = open_source(str(VIDEO))
    assert (source.fps, source.size, source.live, source.uri) == (
        10.0,
        (768, 576),
        False,
        str(VIDEO),
    )
    frames = 0
    last = None
    while (frame := source.read()) is not None:
        assert frame.index == frames and frame.pts == pytest.approx(frames / 10, abs=1e-6)
        frames += 1
        last = frame
    assert frames == 795
    assert last.image.shape == (576, 768, 3) and last.image.dtype == np.uint8
    assert last.image.flags.c_contiguous and last.image.flags.writeable
    assert source.read() is None
    source.close()


def test_video_file_loop_restarts_with_growing_pts():
    require(VIDEO)
    source = open_source(str(VIDEO), loop=True)
    first = source.read()
    for _ in range(794):
        source.read()
    again = source.read()  # frame 0 of the second pass
    source.close()
    assert again.index == 795 and again.pts == pytest.approx(79.5, abs=1e-6)
    assert np.array_equal(again.image, first.image)


def test_folder_in_natural_order_glob_and_single_image(tmp_path):
    images = write_pngs(tmp_path / "frames", 12)
    (tmp_path / "frames" / "notes.txt").write_text("not an image")
    folder = open_source(str(tmp_path / "frames"), fps=25)
    read = [folder.read() for _ in range(12)]
    assert folder.read() is None
    assert [number(f) for f in read] == list(range(12))  # frame2 before frame10
    assert read[3].pts == pytest.approx(3 / 25) and folder.size == (64, 48)
    assert np.array_equal(read[5].image, images[5])

    pattern = open_source(str(tmp_path / "frames" / "frame1*.png"))
    assert pattern.fps == 10.0
    assert [number(pattern.read()) for _ in range(3)] == [1, 10, 11]
    assert pattern.read() is None

    single = open_source(str(tmp_path / "frames" / "frame7.png"), loop=True)
    assert [number(single.read()) for _ in range(3)] == [7, 7, 7]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("missing.mp4", "missing.mp4: no such video file"),
        ("empty", "empty: no image files"),
        ("nothing/*.png", "nothing/*.png: no image files match this pattern"),
        (
            "http://user:pw@cam/stream",
            "http://user:***@cam/stream: http:// sources are not supported",
        ),
        ("notvideo.mp4", "notvideo.mp4: not a video FFMPEG can open"),
    ],
)
def test_unusable_sources_are_one_line(tmp_path, monkeypatch, spec, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "notvideo.mp4").write_bytes(b"this is not a video" * 100)
    with pytest.raises(UserError) as info:
        open_source(spec)
    assert info.value.message.startswith(message) and "\n" not in str(info.value)


def test_password_redaction():
    assert redact_uri("rtsp://admin:s3cr:t@10.0.0.2:554/live?token=abc&x=1") == (
        "rtsp://admin:***@10.0.0.2:554/live?token=***&x=1"
    )
    assert redact_uri("rtsp://10.0.0.2:8554/a@b") == "rtsp://10.0.0.2:8554/a@b"
    assert redact_uri("rtspsrc location=rtsp://u:p@h/x ! appsink") == (
        "rtspsrc location=rtsp://u:***@h/x ! appsink"
    )


# -- camera pacing -----------------------------------------------------------------------------
def test_real_time_with_a_slow_consumer_drops_the_oldest_and_counts(tmp_path):
    write_pngs(tmp_path / "f", 30)
    camera = Camera("cam", open_source(str(tmp_path / "f"), fps=50), fast=False, max_frames=None)
    camera.start()
    got = []
    while (frame := camera.get(timeout=5)) is not None:
        got.append(frame.index)
        time.sleep(0.06)  # 3 source frames per frame taken
    stats = camera.stats
    assert stats.dropped > 0 and stats.frames == len(got)
    assert stats.frames + stats.dropped == 30  # every frame read was delivered or dropped
    assert got == sorted(got) and got[-1] == 29  # the newest frame survives, the oldest go
    assert len(set(np.diff(got))) > 1 or got[1] - got[0] > 1


def test_real_time_paces_at_source_fps_without_drops_for_a_fast_consumer(tmp_path):
    write_pngs(tmp_path / "f", 20)
    camera = Camera("cam", open_source(str(tmp_path / "f"), fps=20), fast=False, max_frames=None)
    camera.start()
    got = []
    while (frame := camera.get(timeout=5)) is not None:
        got.append(frame.index)
    stats = camera.stats
    assert got == list(range(20)) and stats.dropped == 0
    assert stats.last_t - stats.first_t >= 19 / 20 - 0.02  # 19 frame intervals at 20 fps
    assert stats.fps == pytest.approx(19 / (stats.last_t - stats.first_t))


def test_fast_mode_delivers_every_frame_to_a_slow_consumer(tmp_path):
    write_pngs(tmp_path / "f", 15)
    camera = Camera("cam", open_source(str(tmp_path / "f"), fps=1000), fast=True, max_frames=None)
    camera.start()
    got = []
    while (frame := camera.get(timeout=5)) is not None:
        got.append(number(frame))
        time.sleep(0.02)
    assert got == list(range(15)) and camera.stats.dropped == 0


def test_fast_is_not_paced(tmp_path):
    write_pngs(tmp_path / "f", 10)
    camera = Camera("cam", open_source(str(tmp_path / "f"), fps=1), fast=True, max_frames=None)
    started = time.monotonic()
    camera.start()
    while camera.get(timeout=5) is not None:
        pass
    assert time.monotonic() - started < 5  # at 1 fps real time this would take 9 s


def test_loop_and_max_frames(tmp_path):
    write_pngs(tmp_path / "f", 7)
    source = open_source(str(tmp_path / "f"), loop=True, fps=100)
    camera = Camera("cam", source, fast=True, max_frames=20)
    camera.start()
    frames = []
    while (frame := camera.get(timeout=5)) is not None:
        frames.append(frame)
    assert [number(f) for f in frames] == [i % 7 for i in range(20)]
    assert [f.index for f in frames] == list(range(20))
    assert all(b.pts > a.pts for a, b in zip(frames, frames[1:], strict=False))
    assert camera.get(timeout=1) is None and camera.ended
    camera.stop()
    assert not camera._thread.is_alive()


def test_max_frames_in_real_time_counts_delivered_frames(tmp_path):
    write_pngs(tmp_path / "f", 40)
    camera = Camera("cam", open_source(str(tmp_path / "f"), fps=200), fast=False, max_frames=5)
    camera.start()
    got = []
    while (frame := camera.get(timeout=5)) is not None:
        got.append(frame)
        time.sleep(0.02)
    assert len(got) == 5 and camera.stats.frames == 5


def test_get_times_out_and_stop_ends_the_reader(tmp_path):
    write_pngs(tmp_path / "f", 5)
    camera = Camera("cam", open_source(str(tmp_path / "f"), fps=0.5), fast=False, max_frames=None)
    camera.start()
    assert camera.get(timeout=5).index == 0
    with pytest.raises(TimeoutError, match="camera cam: no frame within 0.2 s"):
        camera.get(timeout=0.2)
    camera.stop()
    assert not camera._thread.is_alive() and camera.get(timeout=1) is None


def test_a_broken_source_is_raised_after_the_frames_before_it():
    class Breaks:
        uri, fps, size, live = "stub", 10.0, (4, 4), False

        def __init__(self) -> None:
            self.index = 0

        def read(self, out=None):
            if self.index == 3:
                raise UserError("stub: the stream broke")
            self.index += 1
            return Frame(np.zeros((4, 4, 3), np.uint8), self.index / 10, self.index - 1)

        def close(self) -> None:
            pass

    camera = Camera("cam", Breaks(), fast=True, max_frames=None)
    camera.start()
    assert [camera.get(timeout=5).index for _ in range(3)] == [0, 1, 2]
    with pytest.raises(UserError, match="stub: the stream broke"):
        camera.get(timeout=5)


def test_unreadable_images_are_skipped_and_counted(tmp_path):
    write_pngs(tmp_path / "f", 4)
    (tmp_path / "f" / "frame2.png").write_bytes(b"\x89PNG broken")
    source = open_source(str(tmp_path / "f"))
    numbers = []
    while (frame := source.read()) is not None:
        numbers.append(number(frame))
    source.close()
    assert numbers == [0, 1, 3] and source.skipped == 1
    assert source.notes == [
        f"{tmp_path / 'f' / 'frame2.png'}: not an image OpenCV can read; skipping unreadable images",
        f"{tmp_path / 'f'}: 1 unreadable images skipped",
    ]


def test_a_sequence_whose_first_image_is_unreadable_does_not_open(tmp_path, capfd):
    write_pngs(tmp_path / "f", 2)
    (tmp_path / "f" / "frame0.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="frame0.png: not an image OpenCV can read"):
        open_source(str(tmp_path / "f"))
    assert capfd.readouterr().err == ""  # OpenCV's own [ WARN ] line stays off stderr


def test_a_video_that_decodes_no_frame_does_not_open_and_native_chatter_stays_quiet(
    tmp_path, capfd
):
    no_moov = tmp_path / "cut.mp4"  # an mp4 cut before its moov box, as a killed writer leaves
    no_moov.write_bytes(b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + b"\0" * 4096)
    with pytest.raises(UserError, match="cut.mp4: not a video FFMPEG can open"):
        open_source(str(no_moov))
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(b"RIFF" + bytes(range(256)) * 8)
    with pytest.raises(UserError, match="garbage.avi: "):
        open_source(str(garbage))
    assert capfd.readouterr().err == ""


# -- GStreamer ---------------------------------------------------------------------------------
def test_gst_source_ends_in_an_appsink(gst):
    launch = (
        "videotestsrc num-buffers=12 ! video/x-raw,width=161,height=120,framerate=30/1 ! appsink"
    )
    source = open_source("gst:" + launch)
    assert (source.size, source.fps, source.live, source.uri) == (
        (161, 120),
        30.0,
        False,
        "gst:" + launch,
    )
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    source.close()
    assert len(frames) == 12 and frames[0].image.shape == (120, 161, 3)
    assert [f.index for f in frames] == list(range(12))
    assert frames[6].pts == pytest.approx(6 / 30, abs=1e-3)
    assert frames[0].image.std() > 30  # test pattern, not a blank frame
    assert frames[0].image.flags.c_contiguous and frames[0].image.flags.writeable


def test_gst_source_live_and_loop(gst):
    live = open_source("gst:videotestsrc is-live=true ! video/x-raw,width=64,height=48 ! appsink")
    assert live.live and live.read().image.shape == (48, 64, 3)
    live.close()
    looped = open_source("gst:videotestsrc num-buffers=3 ! appsink", loop=True)
    frames = [looped.read() for _ in range(7)]
    looped.close()
    assert [f.index for f in frames] == list(range(7))
    assert all(b.pts > a.pts for a, b in zip(frames, frames[1:], strict=False))


@pytest.mark.parametrize(
    ("launch", "message"),
    [
        ("videotestsrc ! ! appsink", "not a GStreamer launch string"),
        ("videotestsrc ! fakesink", "must end in one appsink (found 0)"),
    ],
)
def test_gst_source_errors(gst, launch, message):
    with pytest.raises(UserError, match=re.escape(message)):
        open_source("gst:" + launch)


# -- RTSP --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Producer:
    """put() vtest.avi frames into a SkyLine at ``fps`` from a thread, as an app would."""

    def __init__(self, skyline, fps: float) -> None:
        from tests.support.gstreamer import video_frames

        self.skyline, self.fps = skyline, fps
        self.frames = list(video_frames(10))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        index = 0
        while not self.stop.wait(1 / self.fps):
            self.skyline.put(self.frames[index % len(self.frames)])
            index += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)


def test_rtsp_camera_is_read_and_reconnects_after_a_server_restart(gst_rtsp):
    require(VIDEO)
    from backpack.rtsp import RTSPSkyLine

    port = free_port()
    sky = RTSPSkyLine(None, "cam", port=port, host="127.0.0.1", fps=10, width=320, height=240)
    sky.start_streaming()
    url = sky.url.replace("rtsp://", "rtsp://viewer:hunter2@")
    source = None
    try:
        with Producer(sky, fps=10):
            source = open_source(url)
            assert source.live and source.uri == sky.url.replace("rtsp://", "rtsp://viewer:***@")
            before = [source.read() for _ in range(5)]
            assert [f.image.shape for f in before] == [(240, 320, 3)] * 5
            assert float(before[-1].image.std()) > 20  # the street, not a blank frame

            sky.stop_streaming()  # the camera goes away ...
            restart = threading.Timer(1.5, sky.start_streaming)  # ... and comes back
            restart.start()
            # FFMPEG delivers what it buffered before the loss (about 1 s), then reconnects.
            drained = []
            while source.reconnects == 0 and len(drained) < 50:
                drained.append(source.read())
            after = [drained.pop()] + [source.read() for _ in range(4)]
            restart.join()
        assert source.reconnects == 1 and len(drained) < 49
        assert [f.image.shape for f in after] == [(240, 320, 3)] * 5
        frames = before + drained + after
        assert [f.index for f in frames] == list(range(len(frames)))
        pts = [f.pts for f in frames]
        assert all(b > a for a, b in zip(pts, pts[1:], strict=False))
        assert after[0].pts - pts[-6] >= 1.0  # the outage shows in the pts
    finally:
        if source is not None:
            source.close()
        sky.stop_streaming()


def test_rtsp_that_does_not_answer_is_one_line():
    port = free_port()
    with pytest.raises(UserError) as info:
        open_source(f"rtsp://admin:secret@127.0.0.1:{port}/none")
    message = str(info.value)
    assert message.startswith(
        f"rtsp://admin:***@127.0.0.1:{port}/none: cannot open the RTSP stream"
    )
    assert "secret" not in message and "\n" not in message


def test_rtsp_camera_that_stays_away_gives_up_or_stops_promptly(gst_rtsp):
    require(VIDEO)
    from backpack.rtsp import RTSPSkyLine
    from panorama_cli.localrun.frames.live_sources import RtspSource

    sky = RTSPSkyLine(
        None, "cam", port=free_port(), host="127.0.0.1", fps=10, width=160, height=120
    )
    sky.start_streaming()
    with Producer(sky, fps=10):
        camera = Camera("cam", open_source(sky.url), fast=False, max_frames=None)
        gives_up = RtspSource(sky.url, reconnect_for=1.0)
        camera.start()
        assert camera.get(timeout=10).image.shape == (120, 160, 3)
        sky.stop_streaming()
        time.sleep(2.0)  # the reader drains what FFMPEG buffered, then reconnects in a loop
        started = time.monotonic()
        camera.stop(timeout=5)
        assert not camera._thread.is_alive() and time.monotonic() - started < 2.5
        with pytest.raises(UserError, match="stream lost and not back after 1 s of reconnecting"):
            for _ in range(100):
                gives_up.read()
        gives_up.close()


# -- decoding into given buffers (the runner's shared-memory slots) ---------------------------
def write_video(path: Path, count: int, fps: float = 25.0) -> Path:
    """A lossless (FFV1) 64x48 video whose frame i is filled with the value i (count <= 256)."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (64, 48))
    assert writer.isOpened()
    for i in range(count):
        writer.write(np.full((48, 64, 3), i, np.uint8))
    writer.release()
    return path


def test_video_file_decodes_into_a_buffer_of_its_size_only(tmp_path):
    video = write_video(tmp_path / "v.avi", 3)
    source = open_source(str(video))
    out = np.zeros((48, 64, 3), np.uint8)
    frame = source.read(out=out)
    assert frame.image is out and int(out[47, 63, 2]) == 0
    frame = source.read(out=out)
    assert frame.image is out and (out == 1).all()
    small = np.zeros((8, 8, 3), np.uint8)
    frame = source.read(out=small)  # another size: the source allocates, the buffer is untouched
    assert frame.image is not small and frame.image.shape == (48, 64, 3)
    assert (frame.image == 2).all() and not small.any()
    assert source.read(out=out) is None
    source.close()


def test_camera_decodes_into_claimed_slots_and_gives_back_the_dropped_ones(tmp_path):
    from panorama_cli.localrun.frames.ring import FrameRing

    video = write_video(tmp_path / "v.avi", 30, fps=50)
    ring = FrameRing((48, 64, 3), slots=8)
    given_back: list[int | None] = []

    def unclaim(image: np.ndarray) -> None:
        given_back.append(ring.slot_of(image))
        ring.unclaim(image)

    camera = Camera("cam", open_source(str(video)), fast=False, max_frames=None)
    camera.read_into(ring.claim_view, unclaim)
    camera.start()
    try:
        got = []
        while (frame := camera.get(timeout=5)) is not None:
            slot = ring.slot_of(frame.image)
            assert slot is not None  # decoded in place: no copy
            got.append(int(frame.image[0, 0, 0]))
            assert got[-1] == frame.index
            time.sleep(0.06)  # 3 source frames per frame taken: the camera drops
        stats = camera.stats
        assert stats.dropped > 0 and stats.frames + stats.dropped == 30
        assert got == sorted(got) and got[-1] == 29
        # every dropped frame's slot came back, and the buffer claimed for end of input
        assert len(given_back) == stats.dropped + 1 and None not in given_back
        with pytest.raises(RuntimeError, match="already started"):
            camera.read_into(ring.claim_view, ring.unclaim)
    finally:
        camera.stop()
        ring.close()


def test_a_missing_v4l2_camera_is_one_error_without_opencv_chatter(capfd):
    device = next(f"/dev/video{n}" for n in range(90, 100) if not Path(f"/dev/video{n}").exists())
    with pytest.raises(UserError, match=f"{device}: cannot open this V4L2 camera"):
        open_source(device)
    assert capfd.readouterr().err == ""
