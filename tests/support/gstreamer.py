"""GStreamer test fixtures (registered in tests/conftest.py through pytest_plugins).

- ``gst``          (session) the initialized ``Gst`` module (PyGObject), after checking the
  elements the backpack tests use (x264enc, muxers, rtph264pay, ...).
- ``gst_rtsp``     (session) ``GstRtspServer`` (gst-rtsp-server typelib).
- ``fake_kvssink`` (session) the factory name of a stand-in for kvssink: a bin with kvssink's
  properties (stream-name, aws-region, access-key, secret-key, session-token,
  credential-path, storage-size, framerate) and its sink caps (H.264, avc, au) that counts the
  buffers and, at the first one, records the properties and the credential file's content.

GStreamer is *required* when the environment variable CI is set (to anything but "", "0",
"false") or PANORAMA_REQUIRE_GSTREAMER=1: a missing piece then fails the test. Elsewhere the
tests skip, saying what is missing. gi is imported only inside the fixtures, so this module
loads without it.

Helpers: :func:`video_frames` (frames of ../shared/data/vtest.avi), :func:`decode_video`
(frame count, size and first frame of an encoded file, via OpenCV's FFMPEG backend).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.paths import VIDEO
from tests.support.shared import require

#: Elements the backpack SkyLine tests build pipelines from.
REQUIRED_ELEMENTS = (
    "appsrc",
    "videoconvert",
    "capsfilter",
    "x264enc",
    "h264parse",
    "mp4mux",
    "matroskamux",
    "rtph264pay",
    "identity",
    "fakesink",
)
FAKE_KVSSINK = "backpacktestkvssink"


def gstreamer_required() -> bool:
    """True when GStreamer tests must run (CI set, or PANORAMA_REQUIRE_GSTREAMER=1)."""
    ci = os.environ.get("CI", "").strip().lower()
    return ci not in ("", "0", "false", "no") or (
        os.environ.get("PANORAMA_REQUIRE_GSTREAMER", "").strip() == "1"
    )


def _unavailable(message: str) -> None:
    if gstreamer_required():
        pytest.fail(
            f"{message} [required: CI is set or PANORAMA_REQUIRE_GSTREAMER=1]", pytrace=False
        )
    pytest.skip(message)


@pytest.fixture(scope="session")
def gst() -> Any:
    """``Gst`` initialized by backpack, with the elements the tests need."""
    try:
        from backpack._gst import gst as import_gst

        gst_mod, _, _ = import_gst("backpack tests")
    except Exception as exc:
        _unavailable(f"GStreamer through PyGObject is not available: {exc}")
    missing = [name for name in REQUIRED_ELEMENTS if gst_mod.ElementFactory.find(name) is None]
    if missing:
        _unavailable(
            f"GStreamer elements missing: {', '.join(missing)} (Debian: gstreamer1.0-plugins-base, "
            "-good, -bad, -ugly)"
        )
    return gst_mod


@pytest.fixture(scope="session")
def gst_rtsp(gst: Any) -> Any:
    """``GstRtspServer`` from gi (Debian: gir1.2-gst-rtsp-server-1.0)."""
    try:
        from backpack._gst import rtsp_server

        return rtsp_server("backpack tests")
    except Exception as exc:
        _unavailable(f"gst-rtsp-server is not available: {exc}")


@dataclass
class FakeKvsSinkRecord:
    """What one stand-in kvssink instance saw."""

    properties: dict[str, Any]
    credential_file: str | None
    caps: str
    buffers: int = 0


def _register_fake_kvssink(gst_mod: Any) -> list[FakeKvsSinkRecord]:
    from gi.repository import GObject

    records: list[FakeKvsSinkRecord] = []
    string_props = (
        "stream-name",
        "aws-region",
        "access-key",
        "secret-key",
        "session-token",
        "credential-path",
    )

    class FakeKvsSink(gst_mod.Bin):
        __gtype_name__ = "BackpackTestFakeKvsSink"
        stream_name = GObject.Property(type=str, default="")
        aws_region = GObject.Property(type=str, default="")
        access_key = GObject.Property(type=str, default="")
        secret_key = GObject.Property(type=str, default="")
        session_token = GObject.Property(type=str, default="")
        credential_path = GObject.Property(type=str, default="")
        storage_size = GObject.Property(type=GObject.TYPE_UINT, default=128)
        framerate = GObject.Property(type=GObject.TYPE_UINT, default=25)

        def __init__(self) -> None:
            super().__init__()
            self.record: FakeKvsSinkRecord | None = None
            caps = gst_mod.ElementFactory.make("capsfilter", None)
            caps.set_property(
                "caps", gst_mod.Caps.from_string("video/x-h264,stream-format=avc,alignment=au")
            )
            sink = gst_mod.ElementFactory.make("fakesink", None)
            self.add(caps)
            self.add(sink)
            caps.link(sink)
            self.add_pad(gst_mod.GhostPad.new("sink", caps.get_static_pad("sink")))
            sink.get_static_pad("sink").add_probe(gst_mod.PadProbeType.BUFFER, self._on_buffer)

        def _on_buffer(self, pad: Any, _info: Any) -> Any:
            if self.record is None:
                props = {name: self.get_property(name) for name in string_props}
                props["storage-size"] = self.get_property("storage-size")
                props["framerate"] = self.get_property("framerate")
                path = props["credential-path"]
                content = Path(path).read_text() if path and Path(path).is_file() else None
                caps = pad.get_current_caps()
                self.record = FakeKvsSinkRecord(props, content, caps.to_string() if caps else "")
                records.append(self.record)
            self.record.buffers += 1
            return gst_mod.PadProbeReturn.OK

    if not gst_mod.Element.register(None, FAKE_KVSSINK, gst_mod.Rank.NONE, FakeKvsSink):
        raise RuntimeError(f"cannot register {FAKE_KVSSINK}")
    return records


@pytest.fixture(scope="session")
def _fake_kvssink_records(gst: Any) -> list[FakeKvsSinkRecord]:
    return _register_fake_kvssink(gst)


@pytest.fixture
def fake_kvssink(
    _fake_kvssink_records: list[FakeKvsSinkRecord],
) -> Iterator[list[FakeKvsSinkRecord]]:
    """Records of the stand-in kvssink (element factory :data:`FAKE_KVSSINK`), cleared per test."""
    _fake_kvssink_records.clear()
    yield _fake_kvssink_records
    _fake_kvssink_records.clear()


def video_frames(limit: int, path: Path = VIDEO) -> Iterator[np.ndarray]:
    """Up to ``limit`` BGR frames (768x576) of vtest.avi, decoded one at a time (the test is
    skipped without ../shared, failed under CI=true)."""
    import cv2

    require(path)

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise FileNotFoundError(f"cannot open {path}")
    try:
        for _ in range(limit):
            ok, frame = capture.read()
            if not ok:
                return
            yield frame
    finally:
        capture.release()


@dataclass
class DecodedVideo:
    """Summary of a decoded video file."""

    frames: int
    width: int
    height: int
    fps: float
    first: np.ndarray | None


def decode_video(path: Path) -> DecodedVideo:
    """Decode every frame of ``path`` with OpenCV (FFMPEG)."""
    import cv2

    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    assert capture.isOpened(), f"OpenCV cannot open {path}"
    count, first, shape = 0, None, (0, 0)
    try:
        fps = capture.get(cv2.CAP_PROP_FPS)
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if first is None:
                first = frame
            shape = frame.shape[:2]
            count += 1
    finally:
        capture.release()
    return DecodedVideo(count, shape[1], shape[0], fps, first)
