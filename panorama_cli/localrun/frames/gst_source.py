"""``gst:`` sources: a GStreamer launch string ending in an ``appsink`` (PyGObject).

``Gst.parse_launch`` builds the pipeline; a ``videoconvert ! video/x-raw,format=BGR`` pair is
inserted before the appsink, so any raw video works (e.g. ``gst:videotestsrc ! appsink``,
``gst:rtspsrc location=... ! decodebin ! appsink``). Frames are pulled with
``try-pull-sample``; pts come from the buffers' timestamps. See :mod:`.sources`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from panorama_cli.errors import UserError
from panorama_cli.localrun.frames.frame import DEFAULT_LIVE_FPS, Frame, positive_fps, redact_uri

if TYPE_CHECKING:
    import numpy as np


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
        self._gst, self._pipeline, self._sink = _parse(launch, self.uri)
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

    def read(self, out: np.ndarray | None = None) -> Frame | None:
        """Next frame; at the end of a finite pipeline, None (or a restart with ``loop``).
        ``out`` is ignored (the appsink's buffer is copied into a new array)."""
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


def _parse(launch: str, uri: str) -> tuple[Any, Any, Any]:
    """``(Gst, pipeline, appsink)`` of a launch string, not started.

    Raises:
        UserError: GStreamer missing, a launch string that does not parse, or not exactly one
            appsink at the end.
    """
    try:
        from backpack._gst import gst

        gst_mod, _, glib = gst("panorama-cli run gst: sources")
    except ImportError as exc:
        raise UserError(
            f"{uri}: GStreamer is not available here ({exc})",
            hint="install PyGObject and GStreamer, or use a video file / rtsp:// source",
        ) from None
    try:
        pipeline = gst_mod.parse_launch(launch)
    except glib.Error as exc:
        raise UserError(f"{uri}: not a GStreamer launch string ({exc.message})") from None
    if pipeline.get_factory() is not None and pipeline.get_factory().get_name() == "appsink":
        raise UserError(f"{uri}: the launch string needs a source before the appsink")
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
            f"{uri}: the launch string must end in one appsink (found {len(appsinks)})",
            hint="e.g. gst:rtspsrc location=... ! decodebin ! appsink",
        )
    return gst_mod, pipeline, appsinks[0]


def check_launch(launch: str) -> None:
    """Checks that ``launch`` is a pipeline a :class:`GstSource` can run, without starting
    it (nothing is opened: a camera may be down).

    Raises:
        UserError: as :class:`GstSource` for GStreamer missing, syntax, or the appsink.
    """
    _gst, pipeline, _sink = _parse(launch, "gst:" + redact_uri(launch))
    pipeline.set_state(_gst.State.NULL)
