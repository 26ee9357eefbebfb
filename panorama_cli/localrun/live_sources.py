"""Live frame sources (RTSP, V4L2) and GStreamer pipelines; see :mod:`.sources`.

- :class:`RtspSource`: PyAV (FFMPEG) over RTSP/TCP. A lost stream (read error, timeout, end of
  stream) is reopened with exponential backoff (tenacity) for up to ``reconnect_for`` seconds;
  the pts clock keeps running across reconnects.
- :class:`V4L2Source`: ``/dev/videoN`` through OpenCV's V4L2 backend.
- :class:`GstSource`: ``Gst.parse_launch`` of a launch string whose last element is an
  ``appsink``; a ``videoconvert`` to BGR is inserted before the appsink, so any raw video works.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from panorama_cli.errors import UserError
from panorama_cli.localrun.sources import DEFAULT_LIVE_FPS, Frame, positive_fps, redact_uri


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
                f"{self.uri}: cannot open the RTSP stream ({_reason(exc)})",
                hint="check the URL, credentials and that the camera serves H.264/H.265 over TCP",
            ) from None
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        self.fps = positive_fps(float(rate) if rate else None, DEFAULT_LIVE_FPS)
        ctx = stream.codec_context
        self.size: tuple[int, int] | None = (ctx.width, ctx.height) if ctx.width else None

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

    def read(self) -> Frame | None:
        """Next frame; reconnects on loss. pts follows the stream's timestamps within a
        connection and the wall clock across reconnects.

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
                    f"of reconnecting ({_reason(exc)})"
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

        self.uri = device
        self._capture: Any = cv2.VideoCapture(device, cv2.CAP_V4L2)
        if not self._capture.isOpened():
            self._capture.release()
            raise UserError(f"{device}: cannot open this V4L2 camera (missing, or in use)")
        self.fps = positive_fps(self._capture.get(cv2.CAP_PROP_FPS), DEFAULT_LIVE_FPS)
        width = int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.size: tuple[int, int] | None = (width, height) if width and height else None
        self._index = 0
        self._t0: float | None = None

    def read(self) -> Frame | None:
        """Next frame; None when the device stops delivering."""
        if self._capture is None:
            return None
        ok, image = self._capture.read()
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


class GstSource:
    """A GStreamer pipeline ending in an ``appsink`` (PyGObject), e.g.
    ``videotestsrc num-buffers=50 ! appsink``.

    A ``videoconvert ! video/x-raw,format=BGR`` pair is inserted before the appsink. Live
    pipelines (``is-live=true`` sources, cameras) are marked :attr:`live`; others are paced by
    the camera. pts come from the buffers' timestamps.

    Raises:
        UserError: PyGObject/GStreamer missing, a launch string that does not parse, no
            appsink at the end, or a pipeline that fails to start.
    """

    def __init__(self, launch: str, *, loop: bool = False, pull_timeout: float = 0.2) -> None:
        self.uri = "gst:" + redact_uri(launch)
        self.loop = loop
        self._pull_ns = int(pull_timeout * 1e9)
        try:
            from backpack._gst import gst

            self._gst, _, glib = gst("panorama-cli run gst: sources")
        except ImportError as exc:
            raise UserError(
                f"{self.uri}: GStreamer is not available here ({exc})",
                hint="install PyGObject and GStreamer, or use a video file / rtsp:// source",
            ) from None
        gst_mod = self._gst
        try:
            self._pipeline = gst_mod.parse_launch(launch)
        except glib.Error as exc:
            raise UserError(f"{self.uri}: not a GStreamer launch string ({exc.message})") from None
        self._sink = self._find_appsink()
        self._insert_bgr_conversion()
        self._sink.set_property("sync", False)
        self._sink.set_property("max-buffers", 4)
        self._sink.set_property("emit-signals", False)
        self.fps = DEFAULT_LIVE_FPS
        self.size: tuple[int, int] | None = None
        self.live = False
        self._index = 0
        self._pass_index = 0
        self._offset = 0.0
        self._first_pts: int | None = None
        self._last_pts = -1.0
        self._closing = False  # interrupt() or close() called: reads return None
        self._stopped = False
        self._start()
        self._peeked: Frame | None = self._pull()  # learn size/fps before the first read

    def _find_appsink(self) -> Any:
        gst_mod = self._gst
        pipeline = self._pipeline
        if pipeline.get_factory() is not None and pipeline.get_factory().get_name() == "appsink":
            raise UserError(f"{self.uri}: the launch string needs a source before the appsink")
        sinks = []
        iterator = pipeline.iterate_sinks()
        while True:
            result, element = iterator.next()
            if result != gst_mod.IteratorResult.OK:
                break
            sinks.append(element)
        appsinks = [s for s in sinks if s.get_factory().get_name() == "appsink"]
        if len(appsinks) != 1:
            raise UserError(
                f"{self.uri}: the launch string must end in one appsink (found {len(appsinks)})",
                hint="e.g. gst:rtspsrc location=... ! decodebin ! appsink",
            )
        return appsinks[0]

    def _insert_bgr_conversion(self) -> None:
        gst_mod = self._gst
        sink_pad = self._sink.get_static_pad("sink")
        peer = sink_pad.get_peer()
        convert = gst_mod.ElementFactory.make("videoconvert", None)
        if peer is None or convert is None:  # linked later (dynamic pads): ask for BGR only
            self._sink.set_property("caps", gst_mod.Caps.from_string("video/x-raw,format=BGR"))
            return
        caps = gst_mod.ElementFactory.make("capsfilter", None)
        caps.set_property("caps", gst_mod.Caps.from_string("video/x-raw,format=BGR"))
        peer.unlink(sink_pad)
        self._pipeline.add(convert)
        self._pipeline.add(caps)
        peer.link(convert.get_static_pad("sink"))
        convert.link(caps)
        caps.link(self._sink)

    def _start(self) -> None:
        gst_mod = self._gst
        # A live pipeline answers NO_PREROLL on the way to PAUSED (it cannot preroll).
        paused = self._pipeline.set_state(gst_mod.State.PAUSED)
        result = self._pipeline.set_state(gst_mod.State.PLAYING)
        if gst_mod.StateChangeReturn.FAILURE in (paused, result):
            self._pipeline.set_state(gst_mod.State.NULL)
            raise UserError(f"{self.uri}: the pipeline does not start ({self._bus_error()})")
        self.live = paused == gst_mod.StateChangeReturn.NO_PREROLL
        self._sink.set_property("drop", self.live)

    def _bus_error(self) -> str:
        gst_mod = self._gst
        message = self._pipeline.get_bus().pop_filtered(gst_mod.MessageType.ERROR)
        if message is None:
            return "no error message"
        error, _debug = message.parse_error()
        return str(error.message)

    def _pull(self) -> Frame | None:
        import numpy as np

        while True:
            sample = self._sink.emit("try-pull-sample", self._pull_ns)
            if sample is not None:
                break
            if self._closing or self._sink.get_property("eos"):
                return None
            error = self._pipeline.get_bus().pop_filtered(self._gst.MessageType.ERROR)
            if error is not None:
                raise UserError(f"{self.uri}: pipeline error ({error.parse_error()[0].message})")
        structure = sample.get_caps().get_structure(0)
        width, height = structure.get_value("width"), structure.get_value("height")
        if self.size is None:
            self.size = (width, height)
            ok, num, den = structure.get_fraction("framerate")
            self.fps = positive_fps(num / den if ok and den else None, DEFAULT_LIVE_FPS)
        buffer = sample.get_buffer()
        data = np.frombuffer(buffer.extract_dup(0, buffer.get_size()), np.uint8)
        stride = data.size // height
        image = np.ascontiguousarray(data.reshape(height, stride)[:, : width * 3])
        image = image.reshape(height, width, 3)
        if not image.flags.writeable:
            image = image.copy()
        return Frame(image, self._pts(buffer.pts), self._index)

    def _pts(self, buffer_pts: int) -> float:
        valid = buffer_pts != self._gst.CLOCK_TIME_NONE
        if self._first_pts is None and valid:
            self._first_pts = buffer_pts
        if valid and self._first_pts is not None:
            pts = self._offset + (buffer_pts - self._first_pts) / 1e9
        else:
            pts = self._offset + self._pass_index / self.fps
        pts = max(pts, self._last_pts + 1e-6)
        self._last_pts = pts
        return pts

    def read(self) -> Frame | None:
        """Next frame; at the end of a finite pipeline, None (or a restart with ``loop``)."""
        if self._closing:
            return None
        frame, self._peeked = self._peeked, None
        if frame is None:
            frame = self._pull()
        if frame is None and self.loop and self._pass_index > 0:
            gst_mod = self._gst
            self._pipeline.set_state(gst_mod.State.NULL)
            self._offset = self._last_pts + 1.0 / self.fps
            self._first_pts = None
            self._pass_index = 0
            self._start()
            frame = self._pull()
        if frame is None:
            return None
        frame.index = self._index
        self._index += 1
        self._pass_index += 1
        return frame

    def interrupt(self) -> None:
        """Makes a waiting :meth:`read` return None within ``pull_timeout`` (any thread)."""
        self._closing = True

    def close(self) -> None:
        """Stops the pipeline; safe from another thread than the reader's."""
        self._closing = True
        if not self._stopped:
            self._stopped = True
            self._pipeline.set_state(self._gst.State.NULL)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return redact_uri(text.splitlines()[0])
