"""2D geometry in normalized image coordinates: :class:`Point`, :class:`Line`, :class:`Rectangle`
and :class:`PolyLine`, with conversions to and from pixels.

Coordinates are **normalized**: ``x`` runs from 0 (left edge) to 1 (right edge) of the image,
``y`` from 0 (top edge) to 1 (bottom edge), as in ``panoramasdk.media.add_rect`` /
``add_label`` (``[0, 1)``). Any finite value is accepted, so an object partly outside the
frame can be described; only NaN and infinities are rejected (:class:`ValueError`), and
non-numbers raise :class:`TypeError`.

Pixel conversions take the image size as ``width, height`` in pixels -- note that a numpy
image has ``shape == (height, width, channels)``. A normalized coordinate ``v`` becomes the
pixel index ``floor(v * size + 0.5)`` (the nearest pixel grid position) and, by default, is
**clamped** into ``[0, size - 1]``, so a rectangle reaching past the frame is drawn along the
image border. A pixel index ``p`` becomes ``p / size``; pixel -> normalized -> pixel is
exact for every pixel inside the image.

Lengths and areas of normalized shapes are in normalized units, which are anisotropic on a
non-square image (0.1 of the width is not 0.1 of the height); use
:meth:`Line.pixel_length` for a length in pixels.

API after backpack's ``geometry`` module (``Point(x, y)``, ``Line(pt1, pt2)``,
``Rectangle(pt1, pt2)`` with ``pt_min`` / ``pt_max``, ``PolyLine(points, closed=True)``,
``from_value`` converters).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backpack._pixels import (
    check_size,
    coordinate,
    from_pixel,
    is_sequence,
    to_pixel,
)

__all__ = ["Line", "Point", "PolyLine", "Rectangle", "from_pixel", "to_pixel"]  # noqa: F822


@dataclass(frozen=True, slots=True)
class Point:
    """A point in normalized coordinates (see the module docstring).

    Args:
        x: horizontal position, 0 = left edge, 1 = right edge (any finite real; stored as float).
        y: vertical position, 0 = top edge, 1 = bottom edge.

    Raises:
        TypeError: a coordinate is not a real number.
        ValueError: a coordinate is NaN or infinite.
    """

    x: float
    y: float

    def __post_init__(self) -> None:
        x, y = self.x, self.y
        if not (type(x) is float and type(y) is float and x - x == 0.0 and y - y == 0.0):
            object.__setattr__(self, "x", coordinate(x, "Point.x"))
            object.__setattr__(self, "y", coordinate(y, "Point.y"))

    def __iter__(self) -> Iterator[float]:
        """Unpacks as ``x, y = point``."""
        yield self.x
        yield self.y

    def __getitem__(self, index: int) -> float:
        """``point[0]`` is x, ``point[1]`` is y."""
        return (self.x, self.y)[index]

    def __add__(self, other: Point) -> Point:
        """Vector sum of two points."""
        if not isinstance(other, Point):
            return NotImplemented
        return Point(self.x + other.x, self.y + other.y)

    def __sub__(self, other: Point) -> Point:
        """Vector difference of two points."""
        if not isinstance(other, Point):
            return NotImplemented
        return Point(self.x - other.x, self.y - other.y)

    def distance(self, other: Point) -> float:
        """Euclidean distance to ``other`` in normalized units."""
        return math.hypot(self.x - other.x, self.y - other.y)

    @staticmethod
    def ccw(pt1: Point, pt2: Point, pt3: Point) -> bool:
        """True if ``pt1 -> pt2 -> pt3`` turn counterclockwise (y up) or are collinear."""
        return (pt2.x - pt1.x) * (pt3.y - pt1.y) >= (pt3.x - pt1.x) * (pt2.y - pt1.y)

    def to_pixels(self, width: int, height: int, clamp: bool = True) -> tuple[int, int]:
        """This point as a pixel position ``(column, row)`` on a ``width`` x ``height`` image.

        Args:
            width: image width in pixels (numpy ``image.shape[1]``).
            height: image height in pixels (numpy ``image.shape[0]``).
            clamp: clamp into the image (default), see :func:`to_pixel`.

        Returns:
            ``(x, y)`` pixel indices, as OpenCV drawing functions take them.

        Raises:
            ValueError: width or height < 1.
        """
        check_size(width, height)
        return to_pixel(self.x, width, clamp), to_pixel(self.y, height, clamp)

    @classmethod
    def from_pixels(cls, x: float, y: float, width: int, height: int) -> Point:
        """The point at pixel position ``(x, y)`` (column, row) of a ``width`` x ``height`` image.

        Raises:
            ValueError: width or height < 1, or a coordinate is not finite.
        """
        check_size(width, height)
        return cls(x / width, y / height)

    @classmethod
    def from_value(cls, value: Any) -> Point:
        """A Point from a Point, an ``(x, y)`` sequence or a ``{"x": .., "y": ..}`` mapping.

        Raises:
            ValueError: ``value`` has none of these forms (or non-finite coordinates).
            TypeError: a coordinate is not a real number.
        """
        if isinstance(value, Point):
            return value
        if isinstance(value, Mapping) and "x" in value and "y" in value:
            return cls(value["x"], value["y"])
        if is_sequence(value) and len(value) == 2:
            return cls(value[0], value[1])
        raise ValueError(f"cannot convert {value!r} to a Point: expected (x, y) or {{'x', 'y'}}")


@dataclass(frozen=True, slots=True)
class Line:
    """A line segment between two normalized points.

    Args:
        pt1: first end point (a :class:`Point` or anything :meth:`Point.from_value` accepts).
        pt2: second end point.

    Raises:
        ValueError, TypeError: an end point cannot be converted to a :class:`Point`.
    """

    pt1: Point
    pt2: Point

    def __post_init__(self) -> None:
        object.__setattr__(self, "pt1", Point.from_value(self.pt1))
        object.__setattr__(self, "pt2", Point.from_value(self.pt2))

    def __iter__(self) -> Iterator[Point]:
        """Unpacks as ``pt1, pt2 = line``."""
        yield self.pt1
        yield self.pt2

    def __getitem__(self, index: int) -> Point:
        """``line[0]`` is pt1, ``line[1]`` is pt2."""
        return (self.pt1, self.pt2)[index]

    @property
    def length(self) -> float:
        """Length in normalized units (anisotropic on non-square images)."""
        return self.pt1.distance(self.pt2)

    def pixel_length(self, width: int, height: int) -> float:
        """Length in pixels on a ``width`` x ``height`` image (no rounding, no clamping)."""
        check_size(width, height)
        return math.hypot((self.pt2.x - self.pt1.x) * width, (self.pt2.y - self.pt1.y) * height)

    @property
    def midpoint(self) -> Point:
        """The point halfway between the end points."""
        return Point((self.pt1.x + self.pt2.x) / 2, (self.pt1.y + self.pt2.y) / 2)

    def intersects(self, other: Line) -> bool:
        """True if this segment properly crosses ``other`` (touching end points may not count)."""
        return Point.ccw(self.pt1, other.pt1, other.pt2) != Point.ccw(
            self.pt2, other.pt1, other.pt2
        ) and Point.ccw(self.pt1, self.pt2, other.pt1) != Point.ccw(self.pt1, self.pt2, other.pt2)

    def to_pixels(
        self, width: int, height: int, clamp: bool = True
    ) -> tuple[tuple[int, int], tuple[int, int]]:
        """End points as pixel positions ``((x1, y1), (x2, y2))``, see :meth:`Point.to_pixels`.

        Clamping moves each end point separately, which bends a segment that leaves the frame;
        the OpenCV driver therefore converts lines with ``clamp=False``.
        """
        return self.pt1.to_pixels(width, height, clamp), self.pt2.to_pixels(width, height, clamp)

    @classmethod
    def from_value(cls, value: Any) -> Line:
        """A Line from a Line, a ``(pt1, pt2)`` sequence or a ``{"pt1", "pt2"}`` mapping.

        Raises:
            ValueError: ``value`` has none of these forms.
        """
        if isinstance(value, Line):
            return value
        if isinstance(value, Mapping) and "pt1" in value and "pt2" in value:
            return cls(value["pt1"], value["pt2"])
        if is_sequence(value) and len(value) == 2:
            return cls(value[0], value[1])
        raise ValueError(f"cannot convert {value!r} to a Line: expected (pt1, pt2)")


@dataclass(frozen=True, slots=True, init=False)
class Rectangle:
    """An axis-aligned rectangle in normalized coordinates.

    ``Rectangle(pt1, pt2)`` takes any two opposite corners (points or ``(x, y)`` pairs) and
    stores the top-left one as :attr:`pt_min` and the bottom-right one as :attr:`pt_max`.
    A zero width or height is allowed (a degenerate rectangle).

    Raises:
        ValueError, TypeError: a corner cannot be converted to a :class:`Point`.
    """

    pt_min: Point
    pt_max: Point

    def __init__(self, pt1: Point | Sequence[float], pt2: Point | Sequence[float]) -> None:
        p1, p2 = Point.from_value(pt1), Point.from_value(pt2)
        if p1.x <= p2.x and p1.y <= p2.y:
            lo, hi = p1, p2
        else:
            lo = Point(min(p1.x, p2.x), min(p1.y, p2.y))
            hi = Point(max(p1.x, p2.x), max(p1.y, p2.y))
        object.__setattr__(self, "pt_min", lo)
        object.__setattr__(self, "pt_max", hi)

    def __iter__(self) -> Iterator[Point]:
        """Unpacks as ``pt_min, pt_max = rect``."""
        yield self.pt_min
        yield self.pt_max

    def __getitem__(self, index: int) -> Point:
        """``rect[0]`` is pt_min, ``rect[1]`` is pt_max."""
        return (self.pt_min, self.pt_max)[index]

    @property
    def left(self) -> float:
        """Normalized x of the left edge."""
        return self.pt_min.x

    @property
    def top(self) -> float:
        """Normalized y of the top edge."""
        return self.pt_min.y

    @property
    def right(self) -> float:
        """Normalized x of the right edge."""
        return self.pt_max.x

    @property
    def bottom(self) -> float:
        """Normalized y of the bottom edge."""
        return self.pt_max.y

    @property
    def width(self) -> float:
        """Width in normalized units (fraction of the image width)."""
        return self.pt_max.x - self.pt_min.x

    @property
    def height(self) -> float:
        """Height in normalized units (fraction of the image height)."""
        return self.pt_max.y - self.pt_min.y

    @property
    def size(self) -> tuple[float, float]:
        """``(width, height)`` in normalized units."""
        return self.width, self.height

    @property
    def area(self) -> float:
        """Area in normalized units (fraction of the image area)."""
        return self.width * self.height

    @property
    def aspect_ratio(self) -> float:
        """``width / height`` in normalized units; ``math.inf`` for a zero height."""
        return self.width / self.height if self.height else math.inf

    @property
    def center(self) -> Point:
        """The center point."""
        return Point((self.pt_min.x + self.pt_max.x) / 2, (self.pt_min.y + self.pt_max.y) / 2)

    @property
    def base(self) -> Point:
        """The middle of the bottom edge (where a detected person stands)."""
        return Point((self.pt_min.x + self.pt_max.x) / 2, self.pt_max.y)

    def contains(self, point: Point) -> bool:
        """True if ``point`` is inside or on the border."""
        return (
            self.pt_min.x <= point.x <= self.pt_max.x and self.pt_min.y <= point.y <= self.pt_max.y
        )

    has_inside = contains  # backpack's original name

    def intersection(self, other: Rectangle) -> Rectangle | None:
        """The overlap with ``other``; None if they are disjoint (touching gives a zero area)."""
        left, top = max(self.left, other.left), max(self.top, other.top)
        right, bottom = min(self.right, other.right), min(self.bottom, other.bottom)
        if left > right or top > bottom:
            return None
        return Rectangle(Point(left, top), Point(right, bottom))

    def union(self, other: Rectangle) -> Rectangle:
        """The smallest rectangle containing both (their bounding box)."""
        return Rectangle.bounding([self.pt_min, self.pt_max, other.pt_min, other.pt_max])

    def iou(self, other: Rectangle) -> float:
        """Intersection over union of the areas, in [0, 1]; 0 when both areas are zero."""
        overlap = self.intersection(other)
        inter = overlap.area if overlap is not None else 0.0
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    @classmethod
    def bounding(cls, points: Iterable[Point]) -> Rectangle:
        """The bounding box of one or more points.

        Raises:
            ValueError: ``points`` is empty.
        """
        pts = [Point.from_value(p) for p in points]
        if not pts:
            raise ValueError("Rectangle.bounding needs at least one point")
        xs, ys = [p.x for p in pts], [p.y for p in pts]
        return cls(Point(min(xs), min(ys)), Point(max(xs), max(ys)))

    from_points = bounding

    def to_pixels(self, width: int, height: int, clamp: bool = True) -> tuple[int, int, int, int]:
        """Corner pixels ``(x1, y1, x2, y2)`` (inclusive, as ``cv2.rectangle`` takes them).

        Args:
            width: image width in pixels; height: image height in pixels.
            clamp: clamp into the image (default), so a box reaching past the frame is drawn
                along the border.

        Raises:
            ValueError: width or height < 1.
        """
        check_size(width, height)
        return (
            to_pixel(self.pt_min.x, width, clamp),
            to_pixel(self.pt_min.y, height, clamp),
            to_pixel(self.pt_max.x, width, clamp),
            to_pixel(self.pt_max.y, height, clamp),
        )

    @classmethod
    def from_pixels(
        cls, x1: float, y1: float, x2: float, y2: float, width: int, height: int
    ) -> Rectangle:
        """The rectangle with pixel corners ``(x1, y1)`` and ``(x2, y2)`` on a ``width`` x
        ``height`` image (e.g. a detector's box in pixels).

        Raises:
            ValueError: width or height < 1, or a coordinate is not finite.
        """
        check_size(width, height)
        return cls(Point(x1 / width, y1 / height), Point(x2 / width, y2 / height))

    @classmethod
    def from_value(cls, value: Any) -> Rectangle:
        """A Rectangle from a Rectangle, a ``(pt1, pt2)`` sequence or a ``{"pt1", "pt2"}``
        mapping.

        Raises:
            ValueError: ``value`` has none of these forms.
        """
        if isinstance(value, Rectangle):
            return value
        if isinstance(value, Mapping) and "pt1" in value and "pt2" in value:
            return cls(value["pt1"], value["pt2"])
        if is_sequence(value) and len(value) == 2:
            return cls(value[0], value[1])
        raise ValueError(f"cannot convert {value!r} to a Rectangle: expected (pt1, pt2)")


def __getattr__(name: str) -> Any:
    """``PolyLine`` lives in :mod:`backpack.polyline` (it builds on the classes above) and is
    importable from here too, loaded on first use."""
    if name == "PolyLine":
        from backpack.polyline import PolyLine

        return PolyLine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
