"""HdmiSink: what a data-sink node (``panorama::hdmi_data_sink``) shows, written to a file.

Each stream put to an output connected to a data sink becomes ``hdmi/<stream_id>.mp4``: H.264
(PyAV's libx264, ``yuv420p``), the profile and pixel format every browser plays, in a
*fragmented* mp4 (``movflags=frag_keyframe+empty_moov+default_base_moof``: the moov comes
first, then one fragment per keyframe, a keyframe every second), so the file plays up to its
last full fragment even when the runner is killed (SIGKILL, power loss) and never closes it.
The overlays an app stored with ``media.add_rect`` / ``media.add_label`` (normalized [0, 1]
coordinates) are drawn by :class:`backpack.annotation.OpenCVImageAnnotationDriver` on a COPY of
the frame, so the app's pixels never change. A malformed overlay (not numbers, NaN, wrong
length) is skipped and counted, one warning for the stream; out-of-range coordinates are
clipped and an inverted rect is drawn between its corners. ``snapshot_every=N`` also writes
every N-th drawn frame as a PNG. Odd frame sizes are padded by one black pixel column/row
(yuv420p needs even sizes). The frame rate is constant (``fps``); frame i is shown at i / fps.
"""

from __future__ import annotations

import logging
import math
import os
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

Rect = tuple[float, float, float, float]
Label = tuple[str, float, float]

#: Colors (BGR) and stroke of the overlays, close to what the device draws.
RECT_COLOR = (0, 255, 0)
LABEL_COLOR = (255, 255, 255)
RECT_THICKNESS = 2
#: Label text height as a fraction of the frame height, and its stroke in pixels: big and
#: bold enough to stay legible through H.264 (20 pixels high on 576p).
LABEL_SIZE = 0.035
LABEL_THICKNESS = 2
#: mp4 muxer flags: a fragment per keyframe after an empty moov (survives a killed runner).
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
#: Seconds between keyframes (and so at most lost, with the fragment, when killed).
KEYFRAME_S = 1.0


def _clamp(value: float) -> float:
    return 0.0 if not value > 0.0 else (1.0 if value > 1.0 else float(value))


def _numbers(values: Any, count: int) -> list[float] | None:
    """``values`` as ``count`` finite floats, or None (wrong type, length, NaN, inf)."""
    if isinstance(values, (str, bytes)):
        return None
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError, OverflowError):
        return None
    if len(numbers) != count or not all(math.isfinite(v) for v in numbers):
        return None
    return numbers


def as_list(items: Any) -> list[Any]:
    """``items`` as a list; something that is not a list of overlays is one bad overlay."""
    if not items:
        return []
    if isinstance(items, (str, bytes)):
        return [items]
    try:
        return list(items)
    except TypeError:
        return [items]


def clean_rect(rect: Any) -> Rect | None:
    """``(left, top, right, bottom)`` clipped into [0, 1] with left <= right, top <= bottom;
    None when it is not four finite numbers."""
    numbers = _numbers(rect, 4)
    if numbers is None:
        return None
    left, top, right, bottom = (_clamp(v) for v in numbers)
    return (min(left, right), min(top, bottom), max(left, right), max(top, bottom))


def clean_label(label: Any) -> Label | None:
    """``(text, x, y)`` with x, y clipped into [0, 1]; None when malformed."""
    if isinstance(label, (str, bytes)):
        return None
    try:
        text, *xy = label
    except (TypeError, ValueError):
        return None
    numbers = _numbers(xy, 2)
    if numbers is None:
        return None
    return (str(text), _clamp(numbers[0]), _clamp(numbers[1]))


def clean_overlays(rects: Any, labels: Any) -> tuple[list[Rect], list[Label], int, Any]:
    """The drawable overlays of one frame (see :func:`clean_rect`, :func:`clean_label`).

    Returns:
        ``(rects, labels, bad, first_bad)``: the good ones, how many were malformed, and the
        first malformed one (None when none was).
    """
    rect_list, label_list = as_list(rects), as_list(labels)
    good_rects = [r for r in map(clean_rect, rect_list) if r is not None]
    good_labels = [x for x in map(clean_label, label_list) if x is not None]
    bad = len(rect_list) - len(good_rects) + len(label_list) - len(good_labels)
    first = None
    if bad:
        first = next(
            (r for r in rect_list if clean_rect(r) is None),
            next((x for x in label_list if clean_label(x) is None), None),
        )
    return good_rects, good_labels, bad, first


def overlay_driver() -> Any:
    """The OpenCV annotation driver with the HDMI output's colors and strokes."""
    from backpack.annotation import Color, OpenCVImageAnnotationDriver

    return OpenCVImageAnnotationDriver(
        color=Color(*LABEL_COLOR),
        thickness=RECT_THICKNESS,
        text_size=LABEL_SIZE,
        text_thickness=LABEL_THICKNESS,
    )


def draw_overlays(
    image: np.ndarray, rects: list[Rect], labels: list[Label], driver: Any = None
) -> np.ndarray:
    """A COPY of ``image`` (H×W×3 BGR uint8) with clean ``rects``/``labels`` (normalized
    [0, 1], from :func:`clean_overlays`) drawn; ``driver`` from :func:`overlay_driver`
    (one is made when None)."""
    from backpack.annotation import Color, LabelAnnotation, RectAnnotation
    from backpack.geometry import Point

    driver = overlay_driver() if driver is None else driver
    annotations: list[Any] = [
        RectAnnotation(
            point1=Point(left, top), point2=Point(right, bottom), color=Color(*RECT_COLOR)
        )
        for left, top, right, bottom in rects
    ]
    annotations += [LabelAnnotation(point=Point(x, y), text=text) for text, x, y in labels]
    return driver.render(annotations, image.copy())


class HdmiSink:
    """Encodes the frames put to one data-sink stream to an H.264 mp4.

    Args:
        path: the mp4 to write (``<run folder>/hdmi/<stream_id>.mp4``); its folder is created.
            Written at the first frame; nothing is created when no frame comes.
        fps: frame rate of the file (the camera's fps).
        snapshot_dir: folder for PNG snapshots (created on the first one).
        snapshot_every: write frames 0, N, 2N, ... as ``<stem>-<frame:06d>.png`` (0 = never).
        preset, crf: libx264 speed preset and quality (lower crf = better, bigger).
        threads: libx264 threads (0 = its own choice; 2 keeps it from crowding a small machine).

    Attributes:
        skipped: malformed rects / labels skipped so far.
        notes: a line when the first one was skipped, and their count at close().

    Raises:
        ValueError: fps not > 0, or snapshot_every < 0.
    """

    def __init__(
        self,
        path: Path,
        *,
        fps: float,
        snapshot_dir: Path | None = None,
        snapshot_every: int = 0,
        preset: str = "veryfast",
        crf: int = 23,
        threads: int = 2,
    ) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        if snapshot_every < 0:
            raise ValueError("snapshot_every must be >= 0")
        self.path = Path(path)
        self.fps = fps
        self.snapshot_dir = snapshot_dir
        self.snapshot_every = snapshot_every if snapshot_dir is not None else 0
        self.preset = preset
        self.crf = crf
        self.threads = threads
        self.frames = 0
        self.skipped = 0
        self.notes: list[str] = []
        self.snapshots: list[Path] = []
        self._container: Any = None
        self._stream: Any = None
        self._size: tuple[int, int] | None = None  # encoded (width, height), even
        self._driver: Any = None
        self._closed = False

    def _open(self, width: int, height: int) -> None:
        import av

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._size = (width + width % 2, height + height % 2)
        self._container = av.open(
            str(self.path),
            mode="w",
            format="mp4",
            options={"movflags": MOVFLAGS, "flush_packets": "1"},
        )
        rate = Fraction(self.fps).limit_denominator(1001)
        stream = self._container.add_stream("libx264", rate=rate)
        stream.width, stream.height = self._size
        stream.pix_fmt = "yuv420p"
        stream.time_base = 1 / rate
        stream.codec_context.time_base = 1 / rate
        stream.options = {"preset": self.preset, "crf": str(self.crf)}
        stream.codec_context.thread_count = self.threads
        stream.codec_context.gop_size = max(1, round(self.fps * KEYFRAME_S))
        self._stream = stream

    def _clean(self, rects: Any, labels: Any) -> tuple[list[Rect], list[Label]]:
        """The drawable overlays; malformed ones are counted (one warning per stream)."""
        good_rects, good_labels, bad, first = clean_overlays(rects, labels)
        if bad:
            if not self.skipped:
                text = (
                    f"HDMI {self.path.stem}: skipping malformed overlays (first: "
                    f"{str(first)[:60]!s} on frame {self.frames}); the rest is drawn"
                )
                log.debug("%s", text)
                self.notes.append(text)
            self.skipped += bad
        return good_rects, good_labels

    def _draw(self, image: np.ndarray, rects: list[Rect], labels: list[Label]) -> np.ndarray:
        if self._driver is None:
            self._driver = overlay_driver()
        return draw_overlays(image, rects, labels, self._driver)

    def write(
        self,
        image: np.ndarray,
        rects: list[Rect] | tuple[Rect, ...] = (),
        labels: list[Label] | tuple[Label, ...] = (),
    ) -> None:
        """Draws the overlays on a copy of ``image`` and encodes it as the next frame.

        Args:
            image: H×W×3 BGR uint8 (not modified). Later frames of another size are resized
                to the first frame's size.
            rects: ``(left, top, right, bottom)`` normalized [0, 1], clamped into the frame
                (malformed ones skipped, see the module docstring).
            labels: ``(text, x, y)``: text anchored at its bottom-left, normalized [0, 1].

        Raises:
            ValueError: ``image`` is not an H×W×3 uint8 array. RuntimeError: after close().
        """
        import av
        import cv2
        import numpy as np

        if self._closed:
            raise RuntimeError(f"{self.path}: sink closed")
        if (
            not isinstance(image, np.ndarray)
            or image.dtype != np.uint8
            or image.ndim != 3
            or (image.shape[2] != 3)
        ):
            raise ValueError("an HDMI frame must be an H×W×3 uint8 BGR array")
        if rects or labels:
            rects, labels = self._clean(rects, labels)
        drawn = self._draw(image, list(rects), list(labels)) if rects or labels else image
        height, width = drawn.shape[:2]
        if self._container is None:
            self._open(width, height)
        assert self._size is not None
        if (width + width % 2, height + height % 2) != self._size:
            drawn = cv2.resize(drawn, self._size, interpolation=cv2.INTER_AREA)
        elif width % 2 or height % 2:
            drawn = cv2.copyMakeBorder(drawn, 0, height % 2, 0, width % 2, cv2.BORDER_CONSTANT)
        if self.snapshot_every and self.frames % self.snapshot_every == 0:
            self._snapshot(drawn)
        # OpenCV's BGR -> I420 conversion is cheaper than swscale's reformat inside PyAV.
        bgr = np.ascontiguousarray(drawn)
        yuv = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = self.frames
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def _snapshot(self, image: np.ndarray) -> None:
        import cv2

        assert self.snapshot_dir is not None
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        target = self.snapshot_dir / f"{self.path.stem}-{self.frames:06d}.png"
        tmp = target.with_name(f".{target.name}.tmp.png")
        if not cv2.imwrite(str(tmp), image):
            raise OSError(f"{target}: cannot write the snapshot")
        os.replace(tmp, target)
        self.snapshots.append(target)

    def progress(self) -> dict[str, Any]:
        """What :meth:`close` returns, so far (for the reports written during the run)."""
        path = f"{self.path.parent.name}/{self.path.name}" if self.frames else None
        return {"frames": self.frames, "path": path}

    def close(self) -> dict[str, Any]:
        """Flushes the encoder and closes the file; idempotent.

        Returns:
            ``{"frames": n, "path": "hdmi/<stream_id>.mp4"}``: the path relative to the run
            folder (the mp4's grandparent); ``path`` is None when no frame was written.
        """
        if not self._closed:
            self._closed = True
            if self.skipped:
                self.notes.append(
                    f"HDMI {self.path.stem}: {self.skipped} malformed overlays skipped"
                )
            if self._container is not None:
                self._container.mux(self._stream.encode(None))
                self._container.close()
        return self.progress()
