""":class:`SkyLine` streams the frames of your application (OpenCV images) to a GStreamer pipeline.

:class:`SkyLine` is an abstract base class; its subclasses say where the video goes:
:class:`FileSkyLine` (an H.264 file), :class:`PipelineSkyLine` (any GStreamer description you
give), :class:`~backpack.kvs.KVSSkyLine` (AWS Kinesis Video Streams) and
:class:`~backpack.rtsp.RTSPSkyLine` (an RTSP server).

How it works: each streaming session builds a pipeline ``appsrc ! <subclass description>`` with
PyGObject (``gi``; PyPI's OpenCV has no GStreamer, so no ``cv2.VideoWriter`` is involved).
:meth:`SkyLine.put` copies the frame once into a ``Gst.Buffer`` and queues it in the appsrc;
encoding runs in GStreamer's threads. The queue holds ``max_queued_frames`` frames; when it is
full the frame is dropped and ``put()`` returns False instead of blocking the frame loop.

Frame rate and size: pass ``fps``, ``width`` and ``height`` (to the constructor or to
:meth:`~SkyLine.start_streaming`) to start streaming with the first frame. Any that is left
``None`` is measured during a *warm-up*: the first ``warmup_frames`` frames (default
:attr:`SkyLine.FPS_METER_WARMUP_FRAMES` = 100) are only timed, the frame rate is their mean
rate rounded to whole frames per second, and the size is that of the last warm-up frame, which
is the first one streamed. (When only the size is missing, one frame is enough.) Frames of
another size are resized to the stream's size (OpenCV if installed, else numpy
nearest-neighbour; see :mod:`backpack._frames`), which costs time in ``put()``.

Timestamps: a *live* SkyLine (the default; :class:`FileSkyLine` is not live) stamps each frame
with the pipeline clock when it is put, so the stream follows the real pace of your loop;
a non-live one stamps frame ``n`` at ``n / fps`` seconds. Call ``put()`` at about ``fps``.

``put()`` never raises: problems are logged (at most once a minute for per-frame ones) and
reported by its return value and :attr:`SkyLine.state`. An error from the pipeline (its bus)
moves the SkyLine to ``State.ERROR``; call :meth:`~SkyLine.start_streaming` again to recover.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from backpack._appsrc import AppSrcPipeline
from backpack._frames import fit_frame, frame_problem
from backpack._gst import fps_fraction, gst, h264_encoder  # noqa: F401 - public here

#: Pass this to :meth:`SkyLine.start_streaming` to reuse the previous session's value (the
#: sentinel value of the aws-panorama-samples backpack).
USE_LAST_VALUE: Any = -999


def _is_last(value: Any) -> bool:
    return value is USE_LAST_VALUE or (
        isinstance(value, int | float) and not isinstance(value, bool) and value == USE_LAST_VALUE
    )


class SkyLine(ABC):
    """Abstract base: streams OpenCV frames into a GStreamer pipeline built by the subclass.

    Subclasses implement :meth:`_get_pipeline` (the elements after the appsrc) and may
    override :meth:`_configure_pipeline`; a subclass that does not own a pipeline (such as
    :class:`~backpack.rtsp.RTSPSkyLine`) overrides ``_open_stream``, ``_push`` and
    ``_close_stream`` instead.

    Args:
        fps: frames per second of the stream, or None to measure it during warm-up.
        width, height: frame size in pixels, or None to take it from the frames.
        warmup_frames: frames timed to measure the frame rate (default
            :attr:`FPS_METER_WARMUP_FRAMES`); at least 2.
        max_queued_frames: frames waiting for the pipeline before ``put()`` drops new ones.
        block: True makes ``put()`` wait for room instead of dropping. Only for writing
            files offline; never in a Panorama frame loop.
        live: overrides the class's :attr:`LIVE` (see the module docstring on timestamps).
        eos_timeout: seconds :meth:`stop_streaming` waits for the end-of-stream to reach the
            sink (files get finalized then).
        parent_logger: logger to attach this SkyLine's logger to (default logger:
            ``<module>.<class>``, e.g. ``backpack.kvs.KVSSkyLine``).
        gst_log_file: sets ``GST_DEBUG_FILE`` (effective only before GStreamer initializes).
        gst_log_level: sets ``GST_DEBUG``, e.g. ``"3"`` or ``"x264enc:5"``.

    Attributes:
        video_fps, video_width, video_height: the stream's frame rate (frames per second)
            and size (pixels); None while still to be measured.
        frames_sent: frames queued on the pipeline, over all sessions.
        frames_dropped: frames put while streaming but not queued (queue full, or no RTSP
            client watching).
        last_error: why the stream is in ``State.ERROR`` (None otherwise).
        session: number of the current streaming session (0 for the first start).

    Raises:
        MissingDependencyError: PyGObject or GStreamer is not installed.
        ValueError: an argument is out of range.
    """

    class State(Enum):
        """States of a :class:`SkyLine` (as in the aws-panorama-samples backpack;
        ``PLAYING`` is ``STREAMING``)."""

        STOPPED = 0
        START_WARMUP = 1
        WARMUP = 2
        STREAMING = 3
        PLAYING = 3  # alias of STREAMING
        ERROR = -1

    #: Frames timed to measure the frame rate when it is not given.
    FPS_METER_WARMUP_FRAMES = 100
    #: Whether buffers are stamped with the clock when put (True) or at n / fps (False).
    LIVE = True
    #: Seconds between two logs of the same per-frame problem.
    FRAME_LOG_INTERVAL = 60.0

    def __init__(
        self,
        *,
        fps: float | None = None,
        width: int | None = None,
        height: int | None = None,
        warmup_frames: int | None = None,
        max_queued_frames: int = 5,
        block: bool = False,
        live: bool | None = None,
        eos_timeout: float = 5.0,
        parent_logger: logging.Logger | None = None,
        gst_log_file: str | os.PathLike[str] | None = None,
        gst_log_level: str | None = None,
    ) -> None:
        cls = self.__class__
        self.logger = (
            logging.getLogger(f"{cls.__module__}.{cls.__name__}")
            if parent_logger is None
            else parent_logger.getChild(cls.__name__)
        )
        self._check_params(fps, width, height)
        self.warmup_frames = (
            self.FPS_METER_WARMUP_FRAMES if warmup_frames is None else warmup_frames
        )
        if self.warmup_frames < 2:
            raise ValueError("warmup_frames must be at least 2 to measure a frame rate")
        if max_queued_frames < 1:
            raise ValueError("max_queued_frames must be at least 1")
        self.max_queued_frames = max_queued_frames
        self.block = block
        self.live = self.LIVE if live is None else live
        self.eos_timeout = eos_timeout
        self._setup_gst_logging(gst_log_file, gst_log_level)
        self.video_fps: float | None = fps
        self.video_width: int | None = width
        self.video_height: int | None = height
        self._last = (fps, width, height)
        self.frames_sent = 0
        self.frames_dropped = 0
        self.last_error: str | None = None
        self.session = -1
        self._lock = threading.RLock()
        self._pipeline: AppSrcPipeline | None = None
        self._warmup_times: list[float] = []
        self._last_log: dict[str, float] = {}
        self._state = SkyLine.State.STOPPED

    # ------------------------------------------------------------------ configuration

    @staticmethod
    def _check_params(fps: Any, width: Any, height: Any) -> None:
        if fps is not None:
            fps_fraction(fps)
        for name, value in (("width", width), ("height", height)):
            if value is not None and (not isinstance(value, int | np.integer) or value < 2):
                raise ValueError(f"{name} must be an integer number of pixels >= 2, got {value!r}")

    def _setup_gst_logging(self, log_file: Any, level: str | None) -> None:
        if log_file is not None:
            os.environ["GST_DEBUG_FILE"] = os.fspath(log_file)
        if level is not None:
            os.environ["GST_DEBUG"] = level
        gst_mod, _, _ = gst(self.__class__.__name__)  # fails early if GStreamer is missing
        if level is not None:
            gst_mod.debug_set_threshold_from_string(level, True)

    @property
    def state(self) -> SkyLine.State:
        """The current :class:`SkyLine.State`."""
        return self._state

    @state.setter
    def state(self, state: SkyLine.State) -> None:
        if state is not self._state:
            self.logger.info("state = %s", state.name)
        self._state = state

    # ------------------------------------------------------------------ subclass interface

    @abstractmethod
    def _get_pipeline(self, fps: float, width: int, height: int) -> str:
        """GStreamer description of the elements after the appsrc.

        The appsrc outputs ``video/x-raw,format=BGR,width=<width>,height=<height>,
        framerate=<fps>``. A description starting with ``appsrc`` is used whole (as the
        aws-panorama-samples backpack did).
        """

    def _configure_pipeline(self, pipeline: Any) -> None:
        """Hook: set element properties on the parsed ``Gst.Pipeline`` before it starts."""
        return None

    def _open_stream(self, fps: float, width: int, height: int) -> None:
        """Build and start this session's pipeline. Raises on failure (any exception)."""
        description = self._get_pipeline(fps, width, height)
        self.logger.info("GStreamer pipeline: appsrc ! %s", description)
        session = self.session
        pipeline = AppSrcPipeline(
            description,
            fps,
            width,
            height,
            live=self.live,
            max_queued_frames=self.max_queued_frames,
            block=self.block,
            logger=self.logger,
            on_error=lambda text: self._on_stream_error(text, session),
            configure=self._configure_pipeline,
        )
        pipeline.start()
        self._pipeline = pipeline

    def _push(self, frame: np.ndarray) -> bool:
        """Queue a frame of the stream's size; False if it was dropped."""
        pipeline = self._pipeline
        return pipeline is not None and pipeline.push(frame)

    def _close_stream(self) -> None:
        """Finish this session's stream (EOS, so files are finalized) and free it."""
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            pipeline.stop(self.eos_timeout)

    def _on_stream_error(self, text: str, session: int) -> None:
        # Called from a GStreamer thread: no lock (put() may hold it while pushing).
        if session == self.session:
            self.last_error = text
            if self._state is SkyLine.State.STREAMING:
                self.state = SkyLine.State.ERROR

    # ------------------------------------------------------------------ control

    def start_streaming(
        self,
        fps: float | None = USE_LAST_VALUE,
        width: int | None = USE_LAST_VALUE,
        height: int | None = USE_LAST_VALUE,
    ) -> bool:
        """Start (or restart) streaming; then call :meth:`put` about ``fps`` times a second.

        Any number of start/stop cycles is allowed on one instance; a running stream is
        finished first.

        Args:
            fps: frames per second, None to measure it in a warm-up, or
                :data:`USE_LAST_VALUE` (default) for the previous session's (or the
                constructor's) value.
            width, height: frame size in pixels; None / :data:`USE_LAST_VALUE` as for fps.

        Returns:
            True when the stream is open or a warm-up has begun; False when the pipeline
            failed to start (state ``ERROR``, reason in :attr:`last_error` and the log).

        Raises:
            ValueError: an argument is out of range.
        """
        last_fps, last_width, last_height = self._last
        fps = last_fps if _is_last(fps) else fps
        width = last_width if _is_last(width) else width
        height = last_height if _is_last(height) else height
        self._check_params(fps, width, height)
        with self._lock:
            self._close()
            self.session += 1
            self.last_error = None
            self.video_fps, self.video_width, self.video_height = fps, width, height
            if fps is None or width is None or height is None:
                self.logger.info("starting warm-up (fps=%s width=%s height=%s)", fps, width, height)
                self._warmup_times = []
                self.state = SkyLine.State.START_WARMUP
                return True
            return self._open_session(fps, width, height)

    def stop_streaming(self) -> None:
        """Stop streaming; the stream gets an end-of-stream. Later ``put()`` calls return False."""
        with self._lock:
            self._close()
            self.state = SkyLine.State.STOPPED

    def _open_session(self, fps: float, width: int, height: int) -> bool:
        try:
            self._open_stream(fps, width, height)
        except Exception as exc:
            self._close()
            self.last_error = self.last_error or str(exc)
            self.logger.error("cannot open the stream: %s", exc)
            self.state = SkyLine.State.ERROR
            return False
        self.video_fps, self.video_width, self.video_height = fps, width, height
        self._last = (fps, width, height)
        self.state = SkyLine.State.STREAMING
        return True

    def _close(self) -> None:
        try:
            self._close_stream()
        except Exception:
            self.logger.exception("error while closing the stream")

    # ------------------------------------------------------------------ frames

    def put(self, frame: np.ndarray) -> bool:
        """Put a frame on the stream. Never raises and never blocks (unless ``block``).

        Args:
            frame: BGR image, numpy array ``(height, width, 3)`` of uint8. Resized if its size
                differs from the stream's. The caller may reuse it as soon as put() returns.

        Returns:
            True if the frame was queued on the pipeline; False when stopped, warming up,
            in error, when the frame is invalid or was dropped because the queue is full.
        """
        try:
            state = self._state
            if state is SkyLine.State.STREAMING:
                return self._put_streaming(frame)
            if state is SkyLine.State.STOPPED:
                return False
            if state is SkyLine.State.ERROR:
                self._frame_log(
                    "error", self.logger.warning, "put() in ERROR state: %s", self.last_error
                )
                return False
            return self._put_warmup(frame)
        except Exception:
            self._frame_log("exception", self.logger.exception, "put() failed")
            return False

    def _put_streaming(self, frame: np.ndarray) -> bool:
        problem = frame_problem(frame)
        if problem is not None:
            self._frame_log("frame", self.logger.warning, "frame rejected: %s", problem)
            return False
        width, height = self.video_width, self.video_height
        if frame.shape[1] != width or frame.shape[0] != height:
            self._frame_log(
                "resize",
                self.logger.info,
                "resizing %dx%d frames to %dx%d (costs time in put)",
                frame.shape[1],
                frame.shape[0],
                width,
                height,
            )
        frame = fit_frame(frame, width, height)
        with self._lock:
            if self._state is not SkyLine.State.STREAMING:
                return False
            queued = self._push(frame)
        if queued:
            self.frames_sent += 1
        else:
            self.frames_dropped += 1
        return queued

    def _put_warmup(self, frame: np.ndarray) -> bool:
        problem = frame_problem(frame)
        if problem is not None:
            self._frame_log("frame", self.logger.warning, "frame rejected: %s", problem)
            return False
        with self._lock:
            if self._state is SkyLine.State.START_WARMUP:
                self.state = SkyLine.State.WARMUP
            elif self._state is not SkyLine.State.WARMUP:
                return False
            self._warmup_times.append(time.perf_counter())
            needed = self.warmup_frames if self.video_fps is None else 1
            if len(self._warmup_times) < needed:
                return False
            fps = self.video_fps or self._measured_fps()
            width = self.video_width or frame.shape[1]
            height = self.video_height or frame.shape[0]
            self.logger.info("warm-up finished: fps=%s width=%d height=%d", fps, width, height)
            if not self._open_session(fps, width, height):
                return False
        return self._put_streaming(frame)

    def _measured_fps(self) -> int:
        times = self._warmup_times
        elapsed = times[-1] - times[0]
        if elapsed <= 0:
            return 1
        return max(1, round((len(times) - 1) / elapsed))

    def _frame_log(self, key: str, log: Callable[..., None], msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last_log.get(key, -self.FRAME_LOG_INTERVAL) >= self.FRAME_LOG_INTERVAL:
            self._last_log[key] = now
            log(msg, *args)

    def __repr__(self) -> str:
        return (
            f"<{self.__class__.__name__} state={self._state.name} fps={self.video_fps} "
            f"width={self.video_width} height={self.video_height} "
            f"sent={self.frames_sent} dropped={self.frames_dropped}>"
        )


class PipelineSkyLine(SkyLine):
    """A SkyLine into any GStreamer description you give (live by default).

    Args:
        pipeline: elements after the appsrc in gst-launch syntax; they receive
            ``video/x-raw,format=BGR`` at the stream's size and rate. Example:
            ``"videoconvert ! x264enc tune=zerolatency ! rtph264pay ! udpsink host=h port=5000"``.
        **kwargs: :class:`SkyLine` arguments (fps, width, height, live, ...).
    """

    def __init__(self, pipeline: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline

    def _get_pipeline(self, fps: float, width: int, height: int) -> str:
        return self.pipeline


class FileSkyLine(SkyLine):
    """A SkyLine that encodes H.264 (x264) into a file; not live (frame n at n / fps s).

    Args:
        path: output file; the suffix picks the container (``.mp4``/``.m4v``: mp4mux,
            ``.mov``: qtmux, ``.mkv``: matroskamux, ``.ts``: mpegtsmux). ``{session}`` in
            the name is replaced by the session number (0 for the first
            :meth:`~SkyLine.start_streaming`), otherwise each session overwrites the file.
            MP4 is readable only after :meth:`~SkyLine.stop_streaming`; Matroska and
            MPEG-TS survive a crash.
        bitrate_kbps: H.264 bit rate in kbit/s.
        speed_preset: x264 speed preset (see :func:`h264_encoder`).
        **kwargs: :class:`SkyLine` arguments (fps, width, height, block, ...).

    Raises:
        ValueError: unknown suffix.
    """

    LIVE = False
    MUXERS = {
        ".mp4": "mp4mux",
        ".m4v": "mp4mux",
        ".mov": "qtmux",
        ".mkv": "matroskamux",
        ".ts": "mpegtsmux",
    }

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        bitrate_kbps: int = 2000,
        speed_preset: str = "ultrafast",
        **kwargs: Any,
    ) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in self.MUXERS:
            raise ValueError(
                f"unknown video file suffix {suffix!r}; use one of {sorted(self.MUXERS)}"
            )
        self.muxer = self.MUXERS[suffix]
        self.bitrate_kbps = bitrate_kbps
        self.speed_preset = speed_preset
        super().__init__(**kwargs)

    def session_path(self, session: int | None = None) -> Path:
        """The file written by ``session`` (default: the current one)."""
        number = self.session if session is None else session
        return Path(str(self.path).replace("{session}", str(number)))

    def _get_pipeline(self, fps: float, width: int, height: int) -> str:
        encoder = h264_encoder(fps, self.bitrate_kbps, self.speed_preset)
        return f"{encoder} ! h264parse ! {self.muxer} ! filesink name=skyline_file"

    def _configure_pipeline(self, pipeline: Any) -> None:
        pipeline.get_by_name("skyline_file").set_property(
            "location", os.fspath(self.session_path())
        )
