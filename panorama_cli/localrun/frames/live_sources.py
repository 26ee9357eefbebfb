"""Live frame sources: RTSP cameras and V4L2 devices; see :mod:`.sources`.

- :class:`RtspSource`: PyAV (FFMPEG) over RTSP/TCP. A lost stream (read error, timeout, end of
  stream) is reopened with exponential backoff (tenacity) for up to ``reconnect_for`` seconds;
  the pts clock keeps running across reconnects.
- :class:`V4L2Source`: ``/dev/videoN`` through OpenCV's V4L2 backend.

GStreamer pipelines (``gst:``) are in :mod:`.gst_source`.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from panorama_cli.errors import UserError
from panorama_cli.localrun.frames.frame import (
    DEFAULT_LIVE_FPS,
    Frame,
    fourcc_text,
    positive_fps,
    redact_uri,
)

if TYPE_CHECKING:
    import numpy as np


class RtspSource:
    """An RTSP camera read with PyAV over TCP.

    Args:
        url: ``rtsp://[user:password@]host[:port]/path``.
        open_timeout: seconds to wait for the server to answer and describe the stream.
        read_timeout: seconds without a packet after which the stream counts as lost.
        reconnect_for: seconds of reconnect attempts (exponential backoff from 0.25 s up to
            4 s between them) before :meth:`read` gives up with a UserError.

    Raises:
        UserError: the first connection fails (server down, wrong path, not H.264/H.265/...).
    """

    live = True

    def __init__(
        self,
        url: str,
        *,
        open_timeout: float = 10.0,
        read_timeout: float = 5.0,
        reconnect_for: float = 30.0,
    ) -> None:
        self._url = url
        self.uri = redact_uri(url)
        self.open_timeout = open_timeout
        self.read_timeout = read_timeout
        self.reconnect_for = reconnect_for
        #: Number of times the stream was reopened after a loss.
        self.reconnects = 0
        self._container: Any = None
        self._frames: Any = None
        self._index = 0
        self._t0: float | None = None  # monotonic time of the first frame ever
        self._conn_base = 0.0  # source pts of this connection's first frame
        self._conn_first: float | None = None  # stream time of this connection's first frame
        self._last_pts = -1.0
        self._closed = False
        self._interrupted = threading.Event()
        try:
            container = self._connect()
        except Exception as exc:
            raise UserError(
                f"{self.uri}: cannot open the RTSP stream ({reason(exc)})",
                hint="check the URL, credentials and that the camera serves H.264/H.265 over TCP",
            ) from None
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        self.fps = positive_fps(float(rate) if rate else None, DEFAULT_LIVE_FPS)
        ctx = stream.codec_context
        self.size: tuple[int, int] | None = (ctx.width, ctx.height) if ctx.width else None
        #: The stream's codec as FFmpeg names it (``h264``, ``hevc``, ``mjpeg``...).
        self.codec: str | None = ctx.name or None

    def _connect(self) -> Any:
        """(Re)opens the stream; returns the PyAV input container."""
        import av

        self._close_container()
        container = av.open(
            self._url,
            options={"rtsp_transport": "tcp", "analyzeduration": "1000000", "probesize": "500000"},
            timeout=(self.open_timeout, self.read_timeout),
        )
        if not container.streams.video:
            container.close()
            raise UserError(f"{self.uri}: the stream has no video")
        self._container = container
        self._frames = container.decode(video=0)
        self._conn_first = None
        return container

    def _close_container(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
            self._container = None
            self._frames = None

    def _next_av_frame(self) -> Any:
        if self._frames is None:
            raise EOFError("not connected")
        return next(self._frames)

    def read(self, out: np.ndarray | None = None) -> Frame | None:
        """Next frame; reconnects on loss. pts follows the stream's timestamps within a
        connection and the wall clock across reconnects. ``out`` is ignored (PyAV converts
        into a new array).

        Returns None once closed or :meth:`interrupt`-ed (also in the middle of reconnecting).

        Raises:
            UserError: the stream stayed lost for ``reconnect_for`` seconds.
        """
        import av
        from tenacity import (
            Retrying,
            retry_if_exception_type,
            stop_after_delay,
            stop_when_event_set,
            wait_exponential,
        )

        lost = (av.error.FFmpegError, OSError, EOFError, StopIteration)
        try:
            av_frame = self._next_av_frame()
        except lost:
            if self._closed or self._interrupted.is_set():
                return None
            try:
                for attempt in Retrying(
                    retry=retry_if_exception_type(lost),
                    wait=wait_exponential(multiplier=0.25, max=4.0),
                    stop=stop_after_delay(self.reconnect_for)
                    | stop_when_event_set(self._interrupted),
                    sleep=self._interrupted.wait,
                    reraise=True,
                ):
                    with attempt:
                        self._connect()
                        av_frame = self._next_av_frame()
            except lost as exc:
                if self._interrupted.is_set():
                    return None
                raise UserError(
                    f"{self.uri}: stream lost and not back after {self.reconnect_for:g} s "
                    f"of reconnecting ({reason(exc)})"
                ) from None
            self.reconnects += 1
        return self._frame(av_frame)

    def _frame(self, av_frame: Any) -> Frame:
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        stream_time = av_frame.time
        if self._conn_first is None or stream_time is None:
            self._conn_first = stream_time
            self._conn_base = max(now - self._t0, self._last_pts + 1e-6)
        offset = 0.0 if stream_time is None else stream_time - (self._conn_first or 0.0)
        pts = max(self._conn_base + offset, self._last_pts + 1e-6)
        self._last_pts = pts
        image = av_frame.to_ndarray(format="bgr24")
        frame = Frame(image, pts, self._index)
        self._index += 1
        return frame

    def interrupt(self) -> None:
        """Makes a :meth:`read` blocked in reconnecting return None soon (any thread); a read
        waiting for a packet returns within ``read_timeout``."""
        self._interrupted.set()

    def close(self) -> None:
        """Closes the connection; call it from the reading thread (or when no read runs)."""
        self._closed = True
        self._interrupted.set()
        self._close_container()


class V4L2Source:
    """A V4L2 camera (``/dev/videoN``) read with OpenCV; pts from the arrival time.

    Raises:
        UserError: the device does not exist or cannot be opened.
    """

    live = True

    def __init__(self, device: str) -> None:
        import cv2

        from panorama_cli.localrun.frames.frame import native_logs_to_debug, native_stderr_to_debug

        self.uri = device
        native_logs_to_debug()  # OpenCV's "[ WARN:0@0.020] ... can't be used" stays off stderr
        with native_stderr_to_debug(device):
            self._capture: Any = cv2.VideoCapture(device, cv2.CAP_V4L2)
        if not self._capture.isOpened():
            self._capture.release()
            raise UserError(f"{device}: cannot open this V4L2 camera (missing, or in use)")
        self.fps = positive_fps(self._capture.get(cv2.CAP_PROP_FPS), DEFAULT_LIVE_FPS)
        width = int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.size: tuple[int, int] | None = (width, height) if width and height else None
        #: The device's pixel format (FOURCC: ``YUYV``, ``MJPG``...), None if it tells none.
        self.codec = fourcc_text(self._capture.get(cv2.CAP_PROP_FOURCC))
        self._index = 0
        self._t0: float | None = None

    def read(self, out: np.ndarray | None = None) -> Frame | None:
        """Next frame; None when the device stops delivering. Decoded into ``out`` when its
        shape matches (see :meth:`.sources.FrameSource.read`)."""
        if self._capture is None:
            return None
        ok, image = self._capture.read() if out is None else self._capture.read(image=out)
        if not ok:
            return None
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        frame = Frame(image, now - self._t0, self._index)
        self._index += 1
        return frame

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


def reason(exc: BaseException) -> str:
    """First line of an exception's message, passwords redacted."""
    text = str(exc).strip() or type(exc).__name__
    return redact_uri(text.splitlines()[0])
