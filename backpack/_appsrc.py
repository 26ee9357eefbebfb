"""One running GStreamer pipeline whose head is an ``appsrc`` fed with numpy frames.

:class:`AppSrcPipeline` is what a :class:`~backpack.skyline.SkyLine` opens for each streaming
session: ``appsrc name=skyline_src ! <description>``. It never blocks the caller unless asked
to (see ``block``), timestamps the buffers, watches the bus from GStreamer's own threads
(a sync handler, so no GLib main loop is needed and no message piles up) and finishes the
stream with an end-of-stream event so muxers write their headers and indexes.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from backpack._gst import bgr_caps, fps_fraction, frame_copier, gst
from backpack.errors import PipelineError

#: Name given to the appsrc element SkyLine creates.
APPSRC_NAME = "skyline_src"


class AppSrcFeeder:
    """Configures one appsrc for BGR frames and pushes frames into it.

    Args:
        src: the ``GstApp.AppSrc`` element.
        fps: frames per second (caps and buffer durations).
        width, height: frame size in pixels.
        live: True: ``is-live`` and ``do-timestamp`` (PTS = running time at push); False:
            frame ``n`` gets PTS ``n / fps`` seconds.
        max_queued_frames: frames the appsrc may hold; more are dropped by :meth:`push`.
        block: True: :meth:`push` waits for room instead of dropping.
    """

    def __init__(
        self,
        src: Any,
        fps: float,
        width: int,
        height: int,
        *,
        live: bool,
        max_queued_frames: int,
        block: bool,
    ) -> None:
        self._gst, self._app, _ = gst("SkyLine")
        self.src = src
        self._live = live
        self._block = block
        self._frame_bytes = width * height * 3
        self._max_bytes = max(1, max_queued_frames) * self._frame_bytes
        rate = fps_fraction(fps)
        self._rate = (rate.numerator, rate.denominator)
        self._index = 0
        self._copier = frame_copier(self._gst)
        src.set_property("caps", self._gst.Caps.from_string(bgr_caps(fps, width, height)))
        src.set_property("format", self._gst.Format.TIME)
        src.set_property("is-live", live)
        src.set_property("do-timestamp", live)
        src.set_property("block", block)
        src.set_property("max-bytes", self._max_bytes)
        if src.find_property("max-buffers") is not None:  # GStreamer >= 1.20
            src.set_property("max-buffers", max(1, max_queued_frames))
        if not block and src.find_property("leaky-type") is not None:
            src.set_property("leaky-type", self._app.AppLeakyType.UPSTREAM)

    @property
    def single_copy(self) -> bool:
        """True when frames are copied once (ctypes route), see :class:`FrameCopier`."""
        return self._copier.single_copy

    def push(self, frame: np.ndarray) -> bool:
        """Queue one C-contiguous ``(height, width, 3)`` uint8 frame; never blocks unless
        ``block``. Returns False when the frame was dropped (queue full) or refused."""
        src = self.src
        index = self._index
        self._index = index + 1
        if not self._block and src.get_current_level_bytes() + self._frame_bytes > self._max_bytes:
            return False
        buf = self._copier.buffer(frame)
        num, den = self._rate
        second = self._gst.SECOND
        start = index * second * den // num
        buf.duration = (index + 1) * second * den // num - start
        if not self._live:
            buf.pts = start
        return src.push_buffer(buf) == self._gst.FlowReturn.OK


class AppSrcPipeline:
    """A pipeline ``appsrc ! description`` for frames of one size and rate.

    Args:
        description: gst-launch syntax of the elements after the appsrc, e.g.
            ``"videoconvert ! x264enc ! mp4mux ! filesink location=out.mp4"``. If it starts
            with ``appsrc`` it is used whole and its first appsrc is fed (the
            ``_get_pipeline`` convention of the aws-panorama-samples backpack).
        fps: frames per second declared in the caps and used for buffer durations.
        width, height: frame size in pixels.
        live: True: the appsrc is live and stamps each buffer with the pipeline's running
            time when it is pushed (``do-timestamp``), so the stream follows the real pace of
            ``put()``. False: buffer ``n`` gets PTS ``n / fps`` seconds from 0, whatever the
            pace (deterministic files).
        max_queued_frames: frames the appsrc may hold; beyond that ``push`` drops the frame.
        block: True: ``push`` waits for room instead of dropping (offline file writing only).
        logger: where bus errors and warnings go.
        on_error: called (from a GStreamer thread) with a one-line message on a bus error.
        configure: called with the ``Gst.Pipeline`` after parsing, before it starts (set
            properties that must not appear in the description, such as credentials).

    Raises:
        PipelineError: the description does not parse or has no appsrc.
    """

    def __init__(
        self,
        description: str,
        fps: float,
        width: int,
        height: int,
        *,
        live: bool,
        max_queued_frames: int,
        block: bool,
        logger: logging.Logger,
        on_error: Callable[[str], None],
        configure: Callable[[Any], None] | None = None,
    ) -> None:
        self._gst, self._app, glib = gst("SkyLine")
        self.logger = logger
        self._on_error = on_error
        self._eos = threading.Event()
        self.failed = False
        full = description.lstrip()
        if not full.startswith("appsrc"):
            full = f"appsrc name={APPSRC_NAME} ! {description}"
        try:
            self.pipeline = self._gst.parse_launch(full)
        except glib.Error as exc:
            raise PipelineError(f"cannot build pipeline: {exc.message}") from exc
        self.feeder = AppSrcFeeder(
            self._find_appsrc(),
            fps,
            width,
            height,
            live=live,
            max_queued_frames=max_queued_frames,
            block=block,
        )
        self.src = self.feeder.src
        if configure is not None:
            configure(self.pipeline)
        bus = self.pipeline.get_bus()
        bus.set_sync_handler(_on_bus_message, weakref.ref(self))

    def _find_appsrc(self) -> Any:
        if not isinstance(self.pipeline, self._gst.Bin):
            raise PipelineError("the description must have elements after the appsrc")
        src = self.pipeline.get_by_name(APPSRC_NAME)
        if src is None:
            for element in _iterate(self.pipeline.iterate_sources()):
                if isinstance(element, self._app.AppSrc):
                    src = element
                    break
        if src is None:
            raise PipelineError("the pipeline has no appsrc element")
        return src

    def start(self) -> None:
        """Set the pipeline PLAYING.

        Raises:
            PipelineError: an element refused to start (e.g. a file cannot be opened).
        """
        ret = self.pipeline.set_state(self._gst.State.PLAYING)
        if ret == self._gst.StateChangeReturn.FAILURE or self.failed:
            self.pipeline.set_state(self._gst.State.NULL)
            raise PipelineError("the pipeline refused to start (see the logged bus error)")

    def push(self, frame: np.ndarray) -> bool:
        """Queue a frame (see :meth:`AppSrcFeeder.push`)."""
        return self.feeder.push(frame)

    def stop(self, eos_timeout: float) -> bool:
        """Send end-of-stream, wait up to ``eos_timeout`` seconds for it to reach the sinks,
        then tear the pipeline down. Returns True when the EOS arrived in time."""
        arrived = False
        try:
            if not self.failed:
                self.src.end_of_stream()
                arrived = self._eos.wait(eos_timeout)
                if not arrived and not self.failed:
                    self.logger.warning("end-of-stream did not arrive within %.1f s", eos_timeout)
        finally:
            self.pipeline.set_state(self._gst.State.NULL)
            self.pipeline.get_bus().set_sync_handler(None)
        return arrived

    def _handle(self, message: Any) -> None:
        kind = message.type
        types = self._gst.MessageType
        if kind == types.EOS:
            self._eos.set()
        elif kind == types.ERROR:
            err, debug = message.parse_error()
            source = message.src.get_name() if message.src is not None else "pipeline"
            text = f"{source}: {err.message}"
            detail = debug.strip().splitlines()[-1].strip() if debug and debug.strip() else ""
            if detail:
                text += f" ({detail})"
            self.logger.error("GStreamer error from %s (debug: %s)", text, debug)
            self.failed = True
            self._eos.set()
            self._on_error(text)
        elif kind == types.WARNING:
            err, debug = message.parse_warning()
            self.logger.warning("GStreamer warning: %s (debug: %s)", err.message, debug)


def _on_bus_message(_bus: Any, message: Any, ref: weakref.ref) -> Any:
    owner = ref()
    if owner is not None:
        try:
            owner._handle(message)
        except Exception:  # never let an exception escape into a GStreamer thread
            owner.logger.exception("error while handling a GStreamer bus message")
        return owner._gst.BusSyncReply.DROP
    from gi.repository import Gst

    return Gst.BusSyncReply.DROP


def _iterate(iterator: Any) -> list[Any]:
    items = []
    while True:
        result, value = iterator.next()
        if result.value_nick == "ok":
            items.append(value)
        elif result.value_nick == "resync":
            iterator.resync()
            items.clear()
        else:
            return items
