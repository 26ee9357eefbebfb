"""Frame sources for ``panorama-cli run``: what a camera node's ``--camera NODE=SOURCE`` names.

:func:`open_source` turns a SOURCE string into a :class:`FrameSource`:

- a video file (any container/codec FFMPEG reads; decoded by OpenCV's FFMPEG backend);
- an image file, a folder of images (natural name order) or a glob (``frames/*.png``);
- ``rtsp://...`` (PyAV/FFMPEG over TCP; reconnects with exponential backoff through tenacity);
- ``/dev/videoN`` (V4L2 through OpenCV);
- ``gst:<launch string ending in an appsink>`` (PyGObject, when installed): e.g.
  ``gst:videotestsrc num-buffers=100 ! videoconvert ! appsink``.

Every source yields :class:`Frame` objects: an H×W×3 BGR uint8 C-contiguous image, its
presentation time in seconds since the stream's first frame, and its 0-based index. Files and
image sequences are *not live* (the :class:`~.pacing.Camera` paces them at
their fps); RTSP, V4L2 and live GStreamer pipelines are *live* (they pace themselves).
``uri`` is the display form of the source with any password replaced by ``***``. The live
sources are in :mod:`.live_sources`, the GStreamer source in :mod:`.gst_source`.

OpenCV's and FFmpeg's own messages (``[ WARN:0@0.019] ...``, ``moov atom not found``) never
reach the terminal: :func:`native_logs_to_debug` silences them unless ``--debug`` is on, and
opening a file captures what native code writes to stderr into the debug log
(:func:`native_stderr_to_debug`). A video file must decode a first frame to open; an image
that cannot be read in an image sequence is skipped and counted (``notes``), and a sequence
with no readable first image does not open.
"""

from __future__ import annotations

import glob
import logging
import math
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from panorama_cli.errors import UserError
from panorama_cli.localrun.frames.frame import (
    Frame,
    FrameSource,
    fourcc_text,
    native_logs_to_debug,
    native_stderr_to_debug,
    positive_fps,
    redact_uri,
)

if TYPE_CHECKING:
    import numpy as np

#: Image file extensions an image file / folder / glob source reads (OpenCV ``imread``).
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm"}
)
#: Frame rate of image sequences unless given.
DEFAULT_IMAGE_FPS = 10.0
_GLOB_CHARS = re.compile(r"[*?\[]")
log = logging.getLogger(__name__)
#: FFmpeg's AV_LOG_QUIET, for the FFmpeg that OpenCV's wheels bundle (OPENCV_FFMPEG_LOGLEVEL).
_FFMPEG_QUIET = "-8"


@contextmanager
def _first_capture() -> Iterator[None]:
    """``OPENCV_FFMPEG_LOGLEVEL`` quiet (unless debug) while OpenCV may initialise FFmpeg."""
    if log.isEnabledFor(logging.DEBUG) or "OPENCV_FFMPEG_LOGLEVEL" in os.environ:
        yield
        return
    os.environ["OPENCV_FFMPEG_LOGLEVEL"] = _FFMPEG_QUIET
    try:
        yield
    finally:
        os.environ.pop("OPENCV_FFMPEG_LOGLEVEL", None)


def _natural_key(path: Path) -> list[Any]:
    """Sort key putting ``frame2.png`` before ``frame10.png``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


class VideoFileSource:
    """A video file decoded by OpenCV's FFMPEG backend (BGR frames, container fps).

    Args:
        path: the video file.
        loop: restart at the end (``--loop``); pts and index keep growing.

    Raises:
        UserError: the file does not exist, or FFMPEG cannot open it / decode a first frame.
    """

    live = False

    def __init__(self, path: Path, *, loop: bool = False) -> None:
        import cv2

        self._cv2 = cv2
        self.path = Path(path)
        self.uri = str(self.path)
        self.loop = loop
        if not self.path.is_file():
            raise UserError(
                f"{self.path}: no such video file",
                hint="give a video file, image, folder, "
                "glob, rtsp:// URL, /dev/videoN or gst:<pipeline>",
            )
        native_logs_to_debug()
        with native_stderr_to_debug(self.uri), _first_capture():
            self._capture = self._open()
            ok, first = self._capture.read()
            first_msec = self._capture.get(cv2.CAP_PROP_POS_MSEC)
        if not ok:
            self._capture.release()
            raise UserError(
                f"{self.path}: FFMPEG opens it but decodes no frame (a broken or empty video)",
                hint="check it plays (ffplay), or convert it: ffmpeg -i IN -c:v libx264 OUT.mp4",
            )
        #: The probed first frame and its position (ms), delivered by the first read.
        self._first: tuple[Any, float] | None = (first, first_msec)
        self.fps = positive_fps(self._capture.get(cv2.CAP_PROP_FPS), DEFAULT_IMAGE_FPS)
        width = int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.size: tuple[int, int] | None = (width, height) if width and height else None
        #: The video's codec tag (FOURCC: ``XVID``, ``avc1``...), None if the file has none.
        self.codec = fourcc_text(self._capture.get(cv2.CAP_PROP_FOURCC))
        frames = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        #: Frames in one pass as the container reports it (may be an estimate; 0 = unknown).
        self.frame_count = max(frames, 0)
        self._index = 0
        self._pass_index = 0
        self._offset = 0.0  # pts of this pass's first frame
        self._last_pts = -1.0

    def _open(self) -> Any:
        cv2 = self._cv2
        capture = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not capture.isOpened():
            capture.release()
            raise UserError(
                f"{self.path}: not a video FFMPEG can open",
                hint="convert it (ffmpeg -i IN -c:v libx264 OUT.mp4) or give an image/folder",
            )
        return capture

    def read(self, out: np.ndarray | None = None) -> Frame | None:
        """Next frame (see :class:`FrameSource`); pts from the container's timestamps.

        ``out``: OpenCV decodes into it when its shape and dtype match the frame
        (``VideoCapture.read(image=out)``), else into a new array."""
        cv2 = self._cv2
        if self._capture is None:
            return None
        in_pass: float | None = None
        if self._first is not None:
            image, in_pass = self._first
            self._first = None
            ok = True
            if out is not None and out.shape == image.shape and out.dtype == image.dtype:
                out[...] = image
                image = out
            in_pass /= 1000.0
        else:
            ok, image = self._read(out)
        if not ok:
            if not self.loop or self._pass_index == 0:
                return None
            self._capture.release()
            self._capture = self._open()
            self._offset = self._last_pts + 1.0 / self.fps
            self._pass_index = 0
            ok, image = self._read(out)
            if not ok:
                return None
        if in_pass is None:
            in_pass = self._capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        pts = self._offset + in_pass
        if not math.isfinite(pts) or pts <= self._last_pts:  # no/odd timestamps: fps clock
            pts = max(self._last_pts + 1.0 / self.fps, self._offset + self._pass_index / self.fps)
        self._last_pts = pts
        frame = Frame(image, pts, self._index)
        self._index += 1
        self._pass_index += 1
        return frame

    def _read(self, out: np.ndarray | None) -> tuple[bool, Any]:
        if out is None:
            return self._capture.read()
        return self._capture.read(image=out)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class ImageSequenceSource:
    """Still images read in order with OpenCV (``imread``, 3-channel BGR), at ``fps``.

    Args:
        paths: the image files, in delivery order.
        uri: display form (the folder or glob as given).
        fps: frames per second of the sequence.
        loop: restart at the end.

    Raises:
        UserError: ``paths`` is empty, or its first image cannot be read.

    Attributes:
        skipped: images that could not be read and were skipped (after the first).
        notes: a line at the first skipped image, and their count at close().
    """

    live = False

    def __init__(self, paths: list[Path], uri: str, *, fps: float, loop: bool = False) -> None:
        import cv2

        self._cv2 = cv2
        if not paths:
            raise UserError(f"{uri}: no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        self.paths = paths
        self.uri = uri
        self.fps = fps
        self.loop = loop
        self.size: tuple[int, int] | None = None
        self.frame_count = len(paths)
        self.skipped = 0
        self.notes: list[str] = []
        self._index = 0
        self._closed = False
        native_logs_to_debug()
        with native_stderr_to_debug(uri):
            first = self._imread(paths[0])
        if first is None:
            raise UserError(f"{paths[0]}: not an image OpenCV can read")
        self.size = (first.shape[1], first.shape[0])
        self._pending: Any = first  # delivered by the first read

    def _imread(self, path: Path) -> Any:
        try:
            return self._cv2.imread(str(path), self._cv2.IMREAD_COLOR)
        except Exception:  # noqa: BLE001 - OpenCV raises cv2.error for some broken files
            return None

    def read(self, out: np.ndarray | None = None) -> Frame | None:
        """Next image; pts = index / fps. ``out`` is ignored (``imread`` allocates)."""
        tries = 0
        while True:
            if self._closed or (not self.loop and self._index >= len(self.paths)):
                return None
            if tries >= len(self.paths):  # --loop over images none of which reads now
                raise UserError(f"{self.uri}: no image in it can be read")
            path = self.paths[self._index % len(self.paths)]
            if self._pending is not None:
                image, self._pending = self._pending, None
            else:
                image = self._imread(path)
            if image is not None:
                break
            self._skip(path)
            tries += 1
        frame = Frame(image, self._index / self.fps, self._index)
        self._index += 1
        return frame

    def _skip(self, path: Path) -> None:
        """An unreadable image: counted, one note for the first, and the next one read."""
        if not self.skipped:
            self.notes.append(f"{path}: not an image OpenCV can read; skipping unreadable images")
        self.skipped += 1
        self._index += 1

    def close(self) -> None:
        if not self._closed and self.skipped:
            self.notes.append(f"{self.uri}: {self.skipped} unreadable images skipped")
        self._closed = True


def _image_sequence(spec: str, *, fps: float, loop: bool) -> ImageSequenceSource | None:
    path = Path(spec)
    if path.is_dir():
        files = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
        return ImageSequenceSource(sorted(files, key=_natural_key), spec, fps=fps, loop=loop)
    if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
        return ImageSequenceSource([path], spec, fps=fps, loop=loop)
    if _GLOB_CHARS.search(spec) and not path.exists():
        matches = [Path(p) for p in glob.glob(spec, recursive=True)]
        files = [p for p in matches if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
        if not files:
            raise UserError(f"{spec}: no image files match this pattern")
        return ImageSequenceSource(sorted(files, key=_natural_key), spec, fps=fps, loop=loop)
    return None


def open_source(spec: str, *, loop: bool = False, fps: float | None = None) -> FrameSource:
    """Open a camera SOURCE (see the module docstring for the forms it takes).

    Args:
        spec: the SOURCE string as the user wrote it after ``--camera NODE=``.
        loop: restart files, image sequences and finite GStreamer pipelines at their end.
        fps: frame rate of image sequences (default :data:`DEFAULT_IMAGE_FPS`).

    Returns:
        An open :class:`FrameSource`; close it when done.

    Raises:
        UserError: one line naming the source when it cannot be opened (missing file, URL
            that does not answer, ``gst:`` without PyGObject, ...).
    """
    from panorama_cli.localrun.frames import live_sources

    spec = spec.strip()
    if not spec:
        raise UserError("empty camera source", hint="--camera NODE=video.mp4 (or rtsp://...)")
    lowered = spec.lower()
    if lowered.startswith("gst:"):
        from panorama_cli.localrun.frames.gst_source import GstSource

        return GstSource(spec[4:].strip(), loop=loop)
    if lowered.startswith(("rtsp://", "rtsps://")):
        return live_sources.RtspSource(spec)
    if re.fullmatch(r"/dev/video\d+", spec):
        return live_sources.V4L2Source(spec)
    if "://" in spec:
        scheme = spec.split("://", 1)[0]
        raise UserError(
            f"{redact_uri(spec)}: {scheme}:// sources are not supported",
            hint="use a video file, image, folder, glob, rtsp://, /dev/videoN or gst:<pipeline>",
        )
    images = _image_sequence(spec, fps=positive_fps(fps, DEFAULT_IMAGE_FPS), loop=loop)
    if images is not None:
        return images
    return VideoFileSource(Path(spec), loop=loop)
