"""Annotation values: what to draw, in normalized coordinates, independent of the backend.

Each annotation is a frozen dataclass. Geometry arguments accept :mod:`backpack.geometry`
objects or anything their ``from_value`` accepts (``(x, y)`` tuples, ...), and are checked when
the annotation is created, so a bad value fails where it is made rather than in the middle of
rendering. ``color=None`` and ``thickness=None`` mean the driver's default. Thicknesses are in
pixels; sizes (label text height, marker size) are fractions of the image height.
"""

from __future__ import annotations

import datetime
import enum
import operator
from dataclasses import InitVar, dataclass, field
from typing import Any

from backpack.annotation.color import Color
from backpack.geometry import Line, Point, PolyLine, Rectangle

__all__ = [
    "Annotation",
    "HorizontalAnchor",
    "LabelAnnotation",
    "LineAnnotation",
    "MarkerAnnotation",
    "MarkerStyle",
    "PolyLineAnnotation",
    "RectAnnotation",
    "TimestampAnnotation",
    "VerticalAnchor",
]


class HorizontalAnchor(enum.Enum):
    """Which part of a label's text box sits at the label's point, horizontally."""

    LEFT = "left"
    CENTER = "center"
    RIGHT = "right"


class VerticalAnchor(enum.Enum):
    """Which part of a label's text box sits at the label's point, vertically.

    ``TOP``: top of the capitals; ``CENTER``: middle of the capitals; ``BASELINE``: the line
    the letters stand on; ``BOTTOM``: bottom of the descenders (the text is entirely above).
    """

    TOP = "top"
    CENTER = "center"
    BASELINE = "baseline"
    BOTTOM = "bottom"


class MarkerStyle(enum.Enum):
    """Marker shapes (those of ``cv2.drawMarker``)."""

    CROSS = "cross"
    TILTED_CROSS = "tilted_cross"
    STAR = "star"
    DIAMOND = "diamond"
    SQUARE = "square"
    TRIANGLE_UP = "triangle_up"
    TRIANGLE_DOWN = "triangle_down"


def _color(value: Any, owner: str) -> Color | None:
    if value is None or isinstance(value, Color):
        return value
    try:
        return Color(*value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{owner}.color must be a Color (b, g, r) or None: {exc}") from None


def _thickness(value: Any, owner: str) -> int | None:
    if value is None:
        return None
    try:
        number = operator.index(value)
    except TypeError:
        number = 0
    if isinstance(value, bool) or number < 1:
        raise ValueError(f"{owner}.thickness must be a positive number of pixels, got {value!r}")
    return number


def _size(value: Any, owner: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValueError(f"{owner}.size must be a fraction of the image height in (0, 1]")
    return float(value)


@dataclass(frozen=True, slots=True)
class LabelAnnotation:
    """A text label.

    Args:
        point: where the label is anchored (normalized; see :mod:`backpack.geometry`).
        text: the text. The OpenCV driver uses Hershey fonts, which draw '?' for characters
            outside ASCII.
        color: text color (BGR), None for the driver's default.
        horizontal_anchor, vertical_anchor: which part of the text box is at ``point``
            (default: left end, bottom of the descenders, so the text sits just above ``point``).
        size: text height as a fraction of the image height, None for the driver's default.
        background: fill color of a box behind the text, None for no box.

    Raises:
        TypeError: ``text`` is not a str. ValueError: a bad point, color or size.
    """

    point: Point
    text: str
    color: Color | None = None
    horizontal_anchor: HorizontalAnchor = HorizontalAnchor.LEFT
    vertical_anchor: VerticalAnchor = VerticalAnchor.BOTTOM
    size: float | None = None
    background: Color | None = None

    # The original backpack nests the anchor enums in the class.
    HorizontalAnchor = HorizontalAnchor
    VerticalAnchor = VerticalAnchor

    def __post_init__(self) -> None:
        owner = type(self).__name__
        if not isinstance(self.text, str):
            raise TypeError(f"{owner}.text must be a str, got {type(self.text).__name__}")
        object.__setattr__(self, "point", Point.from_value(self.point))
        object.__setattr__(self, "color", _color(self.color, owner))
        object.__setattr__(self, "background", _color(self.background, owner))
        object.__setattr__(self, "horizontal_anchor", HorizontalAnchor(self.horizontal_anchor))
        object.__setattr__(self, "vertical_anchor", VerticalAnchor(self.vertical_anchor))
        object.__setattr__(self, "size", _size(self.size, owner))


@dataclass(frozen=True, slots=True)
class RectAnnotation:
    """A rectangle outline.

    Give either ``rect`` or both ``point1`` and ``point2`` (two opposite corners, as in the
    backpack README: ``RectAnnotation(point1=Point(0.1, 0.1), point2=Point(0.9, 0.9))``).

    Args:
        rect: the rectangle (normalized), or a ``(pt1, pt2)`` pair.
        color: line color (BGR), None for the driver's default.
        thickness: line width in pixels (>= 1), None for the driver's default.
        point1, point2: corners, instead of ``rect``.

    Raises:
        ValueError: neither or both of ``rect`` and the corners, or a bad value.
    """

    rect: Rectangle | None = None
    color: Color | None = None
    thickness: int | None = None
    point1: InitVar[Point | None] = None
    point2: InitVar[Point | None] = None

    def __post_init__(self, point1: Point | None, point2: Point | None) -> None:
        corners = point1 is not None or point2 is not None
        if (self.rect is None) == (not corners) or (corners and (point1 is None or point2 is None)):
            raise ValueError("RectAnnotation needs either rect or both point1 and point2")
        rect = Rectangle(point1, point2) if corners else Rectangle.from_value(self.rect)
        object.__setattr__(self, "rect", rect)
        object.__setattr__(self, "color", _color(self.color, "RectAnnotation"))
        object.__setattr__(self, "thickness", _thickness(self.thickness, "RectAnnotation"))


@dataclass(frozen=True, slots=True)
class LineAnnotation:
    """A line segment.

    Args:
        line: the segment (normalized), or a ``(pt1, pt2)`` pair.
        color: BGR, None for the driver's default. thickness: pixels (>= 1) or None.
    """

    line: Line
    color: Color | None = None
    thickness: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "line", Line.from_value(self.line))
        object.__setattr__(self, "color", _color(self.color, "LineAnnotation"))
        object.__setattr__(self, "thickness", _thickness(self.thickness, "LineAnnotation"))


@dataclass(frozen=True, slots=True)
class PolyLineAnnotation:
    """A polyline (a polygon outline when ``polyline.closed``).

    Args:
        polyline: the polyline (normalized), or a sequence of points (closed).
        color: BGR, None for the driver's default. thickness: pixels (>= 1) or None.
    """

    polyline: PolyLine
    color: Color | None = None
    thickness: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "polyline", PolyLine.from_value(self.polyline))
        object.__setattr__(self, "color", _color(self.color, "PolyLineAnnotation"))
        object.__setattr__(self, "thickness", _thickness(self.thickness, "PolyLineAnnotation"))


@dataclass(frozen=True, slots=True)
class MarkerAnnotation:
    """A marker symbol centered on a point.

    Args:
        point: the center (normalized).
        style: the shape, :class:`MarkerStyle`.
        color: BGR, None for the driver's default.
        size: marker size as a fraction of the image height, None for the driver's default.
    """

    point: Point
    style: MarkerStyle = MarkerStyle.CROSS
    color: Color | None = None
    size: float | None = None

    Style = MarkerStyle  # the original backpack nests the enum in the class

    def __post_init__(self) -> None:
        object.__setattr__(self, "point", Point.from_value(self.point))
        object.__setattr__(self, "style", MarkerStyle(self.style))
        object.__setattr__(self, "color", _color(self.color, "MarkerAnnotation"))
        object.__setattr__(self, "size", _size(self.size, "MarkerAnnotation"))


#: Where a :class:`TimestampAnnotation` goes when no point is given: near the top-left corner.
TIMESTAMP_POINT = Point(0.02, 0.04)
#: ``strftime`` format of a :class:`TimestampAnnotation`.
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True, slots=True, init=False)
class TimestampAnnotation(LabelAnnotation):
    """A label showing a time, by default now (local time) near the top-left corner.

    Drivers render it as a :class:`LabelAnnotation` (it is one).

    Args:
        timestamp: the time to show; None for the current local time.
        point: the label's anchor point (default :data:`TIMESTAMP_POINT`).
        color: BGR, None for the driver's default.
        time_format: ``strftime`` format (default :data:`TIMESTAMP_FORMAT`).
        **label_options: other :class:`LabelAnnotation` arguments (anchors, size, background).
    """

    timestamp: datetime.datetime | None = field(default=None)

    def __init__(
        self,
        timestamp: datetime.datetime | None = None,
        point: Point = TIMESTAMP_POINT,
        color: Color | None = None,
        time_format: str = TIMESTAMP_FORMAT,
        **label_options: Any,
    ) -> None:
        moment = datetime.datetime.now().astimezone() if timestamp is None else timestamp
        LabelAnnotation.__init__(
            self, point, moment.strftime(time_format), color=color, **label_options
        )
        object.__setattr__(self, "timestamp", moment)


#: Any annotation type of this module.
Annotation = (
    LabelAnnotation | RectAnnotation | LineAnnotation | PolyLineAnnotation | MarkerAnnotation
)
