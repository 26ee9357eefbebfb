"""What every frame source shares: :class:`Frame`, the :class:`FrameSource` protocol, URI
redaction and the native-log helpers (OpenCV's and FFmpeg's messages go to the debug log).

The sources themselves are in :mod:`.sources` (files, image folders), :mod:`.live_sources`
(RTSP, V4L2) and :mod:`.gst_source` (GStreamer); each imports this module, never the reverse.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

#: Frame rate assumed for a live stream that does not report one.
DEFAULT_LIVE_FPS = 15.0

_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/@\s:]*:)[^@\s/]*@")
_SECRET_QUERY = re.compile(r"(?i)(?P<key>[?&;](?:password|passwd|pwd|pass|token|secret)=)[^&\s]*")
log = logging.getLogger(__name__)


def native_logs_to_debug() -> None:
    """Keep OpenCV's log and its FFmpeg's messages off the terminal unless debug logging is on.

    OpenCV: its log level (``cv2.utils.logging``, what ``OPENCV_LOG_LEVEL`` sets). Its FFmpeg
    reads ``OPENCV_FFMPEG_LOGLEVEL`` once, at the process's first FFMPEG capture: set here
    only for that moment (:func:`_first_capture`), so the apps' environment never gets it.
    """
    import cv2

    debug = log.isEnabledFor(logging.DEBUG)
    levels = cv2.utils.logging
    levels.setLogLevel(levels.LOG_LEVEL_DEBUG if debug else levels.LOG_LEVEL_SILENT)


@contextmanager
def native_stderr_to_debug(what: str) -> Iterator[None]:
    """Within the block, what native code writes on file descriptor 2 goes to the debug log
    (one record per line, naming ``what``) instead of the terminal. Only in the main thread,
    and only while the block runs (opening a source, before any app prints); elsewhere it
    does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read(1 << 16).decode("utf-8", "replace").splitlines():
                if line.strip():
                    log.debug("%s: %s", what, line)


@dataclass
class Frame:
    """One decoded frame.

    Attributes:
        image: H×W×3 BGR uint8, C-contiguous, writeable (the source keeps no reference to it).
        pts: presentation time in seconds since the stream's first frame (monotonic; keeps
            growing across ``--loop`` restarts and RTSP reconnects).
        index: 0-based index of the frame among those this source has read.
    """

    image: np.ndarray
    pts: float
    index: int


class FrameSource(Protocol):
    """What :func:`open_source` returns. ``read`` is called from one thread at a time."""

    uri: str
    """Display form of the source, password redacted (``rtsp://user:***@host/...``)."""
    fps: float
    """Nominal frames per second (files: the container's; image sequences: 10 unless given;
    live streams: reported or 15)."""
    size: tuple[int, int] | None
    """``(width, height)`` in pixels when known before the first frame."""
    live: bool
    """True when the source paces itself (RTSP, V4L2, live GStreamer); False for files."""

    def read(self, out: np.ndarray | None = None) -> Frame | None:
        """The next frame; None at the end of input (after ``loop`` handling).

        Args:
            out: where to decode the frame if the source can (H×W×3 uint8, C-contiguous, the
                frame's size): a frame decoded into it has ``out`` as its ``image``. A source
                that cannot, or a frame of another size, ignores it (check
                ``frame.image is out``). The runner passes a shared-memory slot, saving a copy.

        Raises:
            UserError: the source broke (unreadable image, lost stream that did not come back).
        """
        ...

    def close(self) -> None:
        """Releases the decoder; idempotent."""
        ...


# Live sources also have ``interrupt()``: from any thread, makes a blocked ``read`` (waiting
# for a frame, or reconnecting) return None soon; :meth:`Camera.stop` calls it when present.


def redact_uri(uri: str) -> str:
    """``uri`` with passwords replaced by ``***``: ``rtsp://u:pw@h/`` → ``rtsp://u:***@h/``.

    Also redacts ``password=``/``token=``-like query values, and URLs inside ``gst:`` launch
    strings (``rtspsrc location=rtsp://u:pw@...``).
    """
    redacted = _PASSWORD_IN_URL.sub(lambda m: f"{m.group('head')}***@", uri)
    return _SECRET_QUERY.sub(lambda m: f"{m.group('key')}***", redacted)


def positive_fps(value: float | None, fallback: float) -> float:
    """``value`` (frames per second) when it is a finite number > 0, else ``fallback``."""
    return float(value) if value and math.isfinite(value) and value > 0 else fallback


def fourcc_text(value: float) -> str | None:
    """OpenCV's ``CAP_PROP_FOURCC`` (a float holding 4 bytes) as text (``XVID``), or None."""
    code = int(value) if value and value > 0 else 0
    text = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4)).strip("\x00 ")
    return text if text.isprintable() and text else None
