"""Annotation driver drawing on OpenCV images (numpy BGR arrays) in place."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from backpack._optional import require
from backpack.annotation.annotations import (
    HorizontalAnchor,
    LabelAnnotation,
    LineAnnotation,
    MarkerAnnotation,
    MarkerStyle,
    PolyLineAnnotation,
    RectAnnotation,
    VerticalAnchor,
    _size,
    _thickness,
)
from backpack.annotation.color import Color
from backpack.annotation.driver import AnnotationDriver
from backpack.geometry import Point, to_pixel

__all__ = ["OpenCVImageAnnotationDriver"]

#: Smallest text height in pixels the driver draws (smaller Hershey text is unreadable).
MIN_TEXT_PIXELS = 8
#: Lines and polylines are converted without clamping to the image (clamping each end
#: separately would bend them) and OpenCV clips them; their ends are only bounded to
#: ``[-LINE_BOUND, 1 + LINE_BOUND]`` in normalized coordinates -- far enough not to change
#: what is visible in practice, near enough for OpenCV's fixed-point pixel coordinates.
LINE_BOUND = 2.0
_DESCENDERS = "gjpqy"


class OpenCVImageAnnotationDriver(AnnotationDriver):
    """Draws annotations on a numpy image with OpenCV, in place.

    The context passed to :meth:`render` is a writable ``uint8`` array of shape
    ``(height, width, 3)`` in BGR order (what OpenCV and ``panoramasdk.media.image`` use). It
    is drawn on directly -- never copied -- and returned; pass ``image.copy()`` to keep the
    original. Normalized coordinates become pixels as described in :mod:`backpack.geometry`:
    rectangle corners, label anchors and marker centers are clamped into the image; line and
    polyline ends are not (OpenCV clips the drawing), see :data:`LINE_BOUND`.

    Defaults are chosen for speed (see ``benchmarks/backpack_annotation.py``): 1-pixel lines
    with ``cv2.LINE_8`` (anti-aliased or thicker lines cost 3-4x as much) and Hershey simplex
    text whose height follows the image height. OpenCV 5 anti-aliases text whatever the line
    type.

    Args:
        color: default color (BGR) for annotations without one; white.
        thickness: default line thickness in pixels for rectangles, lines, polylines, markers.
        text_size: default text height (capitals) as a fraction of the image height; 0.02 is
            22 pixels on 1080p, 14 on 720p (never below :data:`MIN_TEXT_PIXELS`).
        text_thickness: stroke width of the text in pixels.
        marker_size: default marker size as a fraction of the image height.
        font: a ``cv2.FONT_HERSHEY_*`` constant; default ``FONT_HERSHEY_SIMPLEX``.
        line_type: ``cv2.LINE_8`` (default), ``cv2.LINE_4`` or ``cv2.LINE_AA``.
        logger: see :class:`~backpack.annotation.AnnotationDriver`.

    Raises:
        backpack.errors.MissingDependencyError: OpenCV (``cv2``) is not installed.
        ValueError: a thickness below 1 pixel, or a size outside (0, 1].
    """

    text_size = 0.02
    marker_size = 0.02

    def __init__(
        self,
        *,
        color: Color = Color.WHITE,
        thickness: int = 1,
        text_size: float = text_size,
        text_thickness: int = 1,
        marker_size: float = marker_size,
        font: int | None = None,
        line_type: int | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(logger)
        cv2 = require("cv2", "OpenCVImageAnnotationDriver")
        self._cv2 = cv2
        owner = type(self).__name__
        self.color = Color(*color)
        self.thickness = _thickness(thickness, owner) or 1
        self.text_size = _size(text_size, owner) or self.text_size
        self.text_thickness = _thickness(text_thickness, owner) or 1
        self.marker_size = _size(marker_size, owner) or self.marker_size
        self.font = cv2.FONT_HERSHEY_SIMPLEX if font is None else font
        self.line_type = cv2.LINE_8 if line_type is None else line_type
        self._marker_types = {
            MarkerStyle.CROSS: cv2.MARKER_CROSS,
            MarkerStyle.TILTED_CROSS: cv2.MARKER_TILTED_CROSS,
            MarkerStyle.STAR: cv2.MARKER_STAR,
            MarkerStyle.DIAMOND: cv2.MARKER_DIAMOND,
            MarkerStyle.SQUARE: cv2.MARKER_SQUARE,
            MarkerStyle.TRIANGLE_UP: cv2.MARKER_TRIANGLE_UP,
            MarkerStyle.TRIANGLE_DOWN: cv2.MARKER_TRIANGLE_DOWN,
        }
        # text height in pixels -> (font scale, ascent, descent), all in pixels but the scale
        self._fonts: dict[int, tuple[float, int, int]] = {}

    def render(self, annotations: Any, context: np.ndarray) -> np.ndarray:
        """Draws ``annotations`` on the image ``context`` in place and returns it.

        Args:
            annotations: iterable of annotations (normalized coordinates).
            context: writable ``uint8`` BGR image, shape ``(height, width, 3)``.

        Returns:
            ``context`` (the same array object).

        Raises:
            TypeError: ``context`` is not a numpy array, or an unknown annotation type.
            ValueError: ``context`` is not a writable uint8 ``(H, W, 3)`` image.
        """
        if not isinstance(context, np.ndarray):
            raise TypeError(f"expected a numpy BGR image, got {type(context).__name__}")
        if context.dtype != np.uint8 or context.ndim != 3 or context.shape[2] != 3:
            raise ValueError(
                f"expected a uint8 BGR image of shape (height, width, 3), "
                f"got {context.dtype} {context.shape}"
            )
        if not context.flags.writeable:
            raise ValueError("the image is read-only; render on a copy: image.copy()")
        return super().render(annotations, context)

    def add_rect(self, rect: RectAnnotation, context: np.ndarray) -> None:
        """Draws a rectangle outline, corners clamped into the image."""
        height, width = context.shape[:2]
        pt_min, pt_max = rect.rect.pt_min, rect.rect.pt_max
        self._cv2.rectangle(
            context,
            (to_pixel(pt_min.x, width), to_pixel(pt_min.y, height)),
            (to_pixel(pt_max.x, width), to_pixel(pt_max.y, height)),
            rect.color or self.color,
            rect.thickness or self.thickness,
            self.line_type,
        )

    def add_label(self, label: LabelAnnotation, context: np.ndarray) -> None:
        """Draws a label's text (and background box), anchored as the label says."""
        cv2 = self._cv2
        height, width = context.shape[:2]
        pixels = max(MIN_TEXT_PIXELS, round((label.size or self.text_size) * height))
        scale, ascent, descent = self._font_metrics(pixels)
        x = to_pixel(label.point.x, width)
        y = to_pixel(label.point.y, height)
        anchor = label.horizontal_anchor
        text_width = 0
        if anchor is not HorizontalAnchor.LEFT or label.background is not None:
            text_width = cv2.getTextSize(label.text, self.font, scale, self.text_thickness)[0][0]
            if anchor is HorizontalAnchor.CENTER:
                x -= text_width // 2
            elif anchor is HorizontalAnchor.RIGHT:
                x -= text_width
        vertical = label.vertical_anchor
        if vertical is VerticalAnchor.BOTTOM:
            y -= descent
        elif vertical is VerticalAnchor.TOP:
            y += ascent
        elif vertical is VerticalAnchor.CENTER:
            y += ascent // 2
        if label.background is not None:
            pad = max(1, ascent // 5)
            cv2.rectangle(
                context,
                (x - pad, y - ascent - pad),
                (x + text_width + pad, y + descent + pad),
                label.background,
                cv2.FILLED,
                self.line_type,
            )
        cv2.putText(
            context,
            label.text,
            (x, y),
            self.font,
            scale,
            label.color or self.color,
            self.text_thickness,
            self.line_type,
        )

    def add_line(self, line: LineAnnotation, context: np.ndarray) -> None:
        """Draws a line segment; OpenCV clips the parts outside the image."""
        height, width = context.shape[:2]
        self._cv2.line(
            context,
            self._unclamped(line.line.pt1, width, height),
            self._unclamped(line.line.pt2, width, height),
            line.color or self.color,
            line.thickness or self.thickness,
            self.line_type,
        )

    def add_polyline(self, polyline: PolyLineAnnotation, context: np.ndarray) -> None:
        """Draws a polyline (closed or open); OpenCV clips the parts outside the image."""
        height, width = context.shape[:2]
        coords = np.array([(p.x, p.y) for p in polyline.polyline.points], dtype=np.float64)
        np.clip(coords, -LINE_BOUND, 1.0 + LINE_BOUND, out=coords)
        points = np.floor(coords * (width, height) + 0.5).astype(np.int32)
        self._cv2.polylines(
            context,
            [points],
            polyline.polyline.closed,
            polyline.color or self.color,
            polyline.thickness or self.thickness,
            self.line_type,
        )

    def add_marker(self, marker: MarkerAnnotation, context: np.ndarray) -> None:
        """Draws a marker centered on its point (clamped into the image)."""
        height, width = context.shape[:2]
        self._cv2.drawMarker(
            context,
            (to_pixel(marker.point.x, width), to_pixel(marker.point.y, height)),
            marker.color or self.color,
            self._marker_types[marker.style],
            max(3, round((marker.size or self.marker_size) * height)),
            self.thickness,
            self.line_type,
        )

    def _font_metrics(self, pixels: int) -> tuple[float, int, int]:
        """(font scale, ascent, descent) for text ``pixels`` high, cached per height."""
        metrics = self._fonts.get(pixels)
        if metrics is None:
            cv2 = self._cv2
            scale = cv2.getFontScaleFromHeight(self.font, pixels, self.text_thickness)
            (_, ascent), descent = cv2.getTextSize(
                _DESCENDERS, self.font, scale, self.text_thickness
            )
            metrics = self._fonts[pixels] = (scale, ascent, descent)
        return metrics

    @staticmethod
    def _unclamped(point: Point, width: int, height: int) -> tuple[int, int]:
        x = min(max(point.x, -LINE_BOUND), 1.0 + LINE_BOUND)
        y = min(max(point.y, -LINE_BOUND), 1.0 + LINE_BOUND)
        return to_pixel(x, width, clamp=False), to_pixel(y, height, clamp=False)
