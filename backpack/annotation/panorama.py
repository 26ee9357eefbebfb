"""Annotation driver for ``panoramasdk.media`` objects (the frames of a Panorama application)."""

from __future__ import annotations

import math
from typing import Any

from backpack.annotation.annotations import (
    LabelAnnotation,
    MarkerAnnotation,
    MarkerStyle,
    RectAnnotation,
)
from backpack.annotation.driver import AnnotationDriver

__all__ = ["PanoramaMediaAnnotationDriver"]

#: The largest float below 1: ``panoramasdk.media`` takes coordinates in [0, 1).
_BELOW_ONE = math.nextafter(1.0, 0.0)

#: Text that stands in for each marker style (``media`` has no marker primitive).
MARKER_TEXT = {
    MarkerStyle.CROSS: "+",
    MarkerStyle.TILTED_CROSS: "x",
    MarkerStyle.STAR: "*",
    MarkerStyle.DIAMOND: "<>",
    MarkerStyle.SQUARE: "[]",
    MarkerStyle.TRIANGLE_UP: "^",
    MarkerStyle.TRIANGLE_DOWN: "v",
}


def _unit(value: float) -> float:
    """``value`` clamped into [0, 1) as a Python float."""
    return 0.0 if value < 0.0 else (_BELOW_ONE if value >= 1.0 else float(value))


class PanoramaMediaAnnotationDriver(AnnotationDriver):
    """Adds annotations to a ``panoramasdk.media`` object as overlay metadata.

    The context passed to :meth:`render` is the media object of a frame (an item of
    ``self.inputs.video_in.get()``). Per the Panorama Application SDK reference,
    ``media.add_rect(left, top, right, bottom)`` and ``media.add_label(text, x, y)`` take
    coordinates in [0, 1); this driver clamps every coordinate into that range, so a box
    reaching past the frame is drawn along its border. The SDK attaches them as metadata and
    its output (e.g. the HDMI data sink) draws them; ``media.image`` is not touched.

    The media API has no colors, thicknesses, fonts or anchors: those are ignored, and a label
    is placed at its point. A :class:`~backpack.annotation.MarkerAnnotation` is approximated by
    a short text label (:data:`MARKER_TEXT`) at its point. Line and polyline annotations have
    no equivalent and are skipped with a debug log (draw them with the OpenCV driver on
    ``media.image`` instead).

    Args:
        logger: see :class:`~backpack.annotation.AnnotationDriver`.
    """

    def add_rect(self, rect: RectAnnotation, context: Any) -> None:
        """Calls ``context.add_rect(left, top, right, bottom)`` with clamped coordinates."""
        pt_min, pt_max = rect.rect.pt_min, rect.rect.pt_max
        context.add_rect(_unit(pt_min.x), _unit(pt_min.y), _unit(pt_max.x), _unit(pt_max.y))

    def add_label(self, label: LabelAnnotation, context: Any) -> None:
        """Calls ``context.add_label(text, x, y)`` with the clamped point."""
        context.add_label(label.text, _unit(label.point.x), _unit(label.point.y))

    def add_marker(self, marker: MarkerAnnotation, context: Any) -> None:
        """Approximates the marker by ``context.add_label(symbol, x, y)``."""
        context.add_label(MARKER_TEXT[marker.style], _unit(marker.point.x), _unit(marker.point.y))
