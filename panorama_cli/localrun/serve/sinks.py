"""ServeSink: serve's HDMI output, drawn once and handed to the live view, RTSP and recorder.

Same interface as :class:`panorama_cli.localrun.frames.sinks.HdmiSink` (``write(image, rects,
labels)``, ``progress()``, ``close()``), and the same overlay drawing
(:func:`~panorama_cli.localrun.frames.sinks.clean_overlays` /
:func:`~panorama_cli.localrun.frames.sinks.draw_overlays`): the overlays are drawn ONCE per frame
on a copy, and that one drawn frame goes to the stream's
:class:`~panorama_cli.localrun.serve.live.LiveFrame` (MJPEG / web page, JPEG-encoded only when
someone looks), to :class:`~panorama_cli.localrun.serve.rtsp_out.RtspOut` (encoded only while a
client watches) and to the optional :class:`~panorama_cli.localrun.serve.recorder.Recorder`.
None of them blocks: RTSP and the recorder drop a frame when their small queues are full.
The RTSP mount point and the recording start at the first frame (its size is the stream's).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from panorama_cli.localrun.frames.sinks import clean_overlays, draw_overlays, overlay_driver

if TYPE_CHECKING:
    import numpy as np

    from panorama_cli.localrun.serve.live import LiveFrame
    from panorama_cli.localrun.serve.recorder import Recorder
    from panorama_cli.localrun.serve.rtsp_out import RtspOut

log = logging.getLogger(__name__)


class ServeSink:
    """One HDMI stream under serve.

    Args:
        stream: the stream id (the camera node's name), also the RTSP mount point and the
            recording's folder name.
        fps: the stream's frame rate (RTSP caps, recording time base).
        live: where the latest drawn frame goes.
        rtsp: the shared RTSP server (None: no RTSP out); the stream is added at the first frame.
        record: the shared recorder (None: no recording); the stream is added at the first frame.

    Attributes:
        frames: frames written; skipped: malformed overlays skipped; notes: a line for the
        first skipped overlay (as HdmiSink); rtsp_url: the stream's URL once its first frame came.
    """

    def __init__(
        self,
        stream: str,
        fps: float,
        live: LiveFrame,
        rtsp: RtspOut | None = None,
        record: Recorder | None = None,
    ) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.stream, self.fps, self.live = stream, float(fps), live
        self.rtsp, self.record = rtsp, record
        self.frames = 0
        self.skipped = 0
        self.drawn = 0  # frames that had overlays drawn
        self.notes: list[str] = []
        self.rtsp_url: str | None = None
        self.rtsp_sent = 0
        self.recorded = 0
        self._driver: Any = None
        self._started = False
        self._closed = False

    def _start(self, width: int, height: int) -> None:
        self._started = True
        if self.rtsp is not None:
            try:
                self.rtsp_url = self.rtsp.add_stream(self.stream, self.fps, width, height)
            except Exception as exc:  # RTSP out is extra: the stream keeps going without it
                log.warning("RTSP out for %s failed: %s", self.stream, exc)
                self.rtsp = None
        if self.record is not None:
            try:
                self.record.add_stream(self.stream, self.fps, width, height)
            except Exception as exc:
                log.warning("recording %s failed: %s", self.stream, exc)
                self.record = None

    def write(
        self,
        image: np.ndarray,
        rects: Any = (),
        labels: Any = (),
    ) -> None:
        """Draw the overlays on a copy of ``image`` and hand it on (see the module docstring).

        Args:
            image: H×W×3 BGR uint8 (not modified, not kept).
            rects: ``(left, top, right, bottom)`` normalized [0, 1) (malformed ones skipped).
            labels: ``(text, x, y)`` normalized.

        Raises:
            ValueError: ``image`` is not H×W×3 uint8. RuntimeError: after close().
        """
        import numpy as np

        if self._closed:
            raise RuntimeError(f"HDMI {self.stream}: sink closed")
        if (
            not isinstance(image, np.ndarray)
            or image.dtype != np.uint8
            or image.ndim != 3
            or image.shape[2] != 3
        ):
            raise ValueError("an HDMI frame must be an H×W×3 uint8 BGR array")
        good_rects: list[Any] = []
        good_labels: list[Any] = []
        if rects or labels:
            good_rects, good_labels, bad, first = clean_overlays(rects, labels)
            if bad:
                if not self.skipped:
                    self.notes.append(
                        f"HDMI {self.stream}: skipping malformed overlays (first: "
                        f"{str(first)[:60]!s} on frame {self.frames}); the rest is drawn"
                    )
                self.skipped += bad
        if good_rects or good_labels:
            if self._driver is None:
                self._driver = overlay_driver()
            drawn = draw_overlays(image, good_rects, good_labels, self._driver)
            self.drawn += 1
        else:
            drawn = np.array(image, copy=True)  # LiveFrame keeps it; the caller may reuse image
        if not self._started:
            self._start(drawn.shape[1], drawn.shape[0])
        self.live.update(drawn)
        if self.rtsp is not None and self.rtsp.push(self.stream, drawn):
            self.rtsp_sent += 1
        if self.record is not None and self.record.push(self.stream, drawn):
            self.recorded += 1
        self.frames += 1

    def progress(self) -> dict[str, Any]:
        """``{"frames", "rtsp" (URL or None), "rtsp_sent", "recorded"}`` so far."""
        return {
            "frames": self.frames,
            "rtsp": self.rtsp_url,
            "rtsp_sent": self.rtsp_sent,
            "recorded": self.recorded,
        }

    def close(self) -> dict[str, Any]:
        """Finish this stream's recording (the shared RtspOut/Recorder stay up; their owner
        stops them); idempotent. Returns :meth:`progress`."""
        if not self._closed:
            self._closed = True
            if self.skipped:
                self.notes.append(f"HDMI {self.stream}: {self.skipped} malformed overlays skipped")
            if self.record is not None:
                self.record.close_stream(self.stream)
        return self.progress()
