"""PolyLine: a connected series of segments through normalized points (see
:mod:`backpack.geometry` for the coordinate conventions; ``from backpack.geometry import
PolyLine`` works too).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from backpack._pixels import INT32_MAX, check_size, is_sequence
from backpack.geometry import Line, Point, Rectangle


@dataclass(frozen=True, slots=True)
class PolyLine:
    """A connected series of line segments through normalized points.

    Args:
        points: two or more points (:class:`Point` or anything :meth:`Point.from_value`
            accepts); stored as a tuple of :class:`Point`.
        closed: True (default, as in backpack) if the last point connects back to the first,
            making a polygon.

    Raises:
        ValueError: fewer than two points, or a point cannot be converted.
    """

    points: tuple[Point, ...]
    closed: bool = True

    def __post_init__(self) -> None:
        if not is_sequence(self.points):
            raise ValueError(f"PolyLine points must be a sequence, got {type(self.points)}")
        points = tuple(Point.from_value(p) for p in self.points)
        if len(points) < 2:
            raise ValueError(f"a PolyLine needs at least two points, got {len(points)}")
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "closed", bool(self.closed))

    def __len__(self) -> int:
        return len(self.points)

    def __iter__(self) -> Iterator[Point]:
        return iter(self.points)

    def __getitem__(self, index: int) -> Point:
        return self.points[index]

    @property
    def lines(self) -> list[Line]:
        """The segments, including the closing one for a closed polyline."""
        pts = self.points
        segments = [Line(a, b) for a, b in zip(pts, pts[1:], strict=False)]
        if self.closed and len(pts) > 2:
            segments.append(Line(pts[-1], pts[0]))
        return segments

    @property
    def length(self) -> float:
        """Total length (the perimeter when closed) in normalized units."""
        return sum(segment.length for segment in self.lines)

    @property
    def bounding_box(self) -> Rectangle:
        """The bounding box of the points."""
        return Rectangle.bounding(self.points)

    boundingbox = bounding_box  # backpack's original name

    @property
    def area(self) -> float:
        """Area enclosed by a closed polyline (shoelace formula), normalized units; 0 if open."""
        if not self.closed:
            return 0.0
        pts = self.points
        twice = sum(a.x * b.y - b.x * a.y for a, b in zip(pts, pts[1:] + pts[:1], strict=True))
        return abs(twice) / 2

    @property
    def self_intersects(self) -> bool:
        """True if two non-adjacent segments cross."""
        segments = self.lines
        count = len(segments)
        for i, first in enumerate(segments):
            for j in range(i + 2, count):
                if self.closed and i == 0 and j == count - 1:
                    continue  # the closing segment is adjacent to the first one
                if first.intersects(segments[j]):
                    return True
        return False

    def contains(self, point: Point) -> bool:
        """True if ``point`` is inside this closed polyline (even-odd ray casting).

        Raises:
            ValueError: the polyline is open.
        """
        if not self.closed:
            raise ValueError("PolyLine.contains needs a closed polyline (closed=True)")
        inside = False
        x, y = point.x, point.y
        pts = self.points
        for a, b in zip(pts, pts[-1:] + pts[:-1], strict=True):
            if (a.y > y) != (b.y > y) and x < (b.x - a.x) * (y - a.y) / (b.y - a.y) + a.x:
                inside = not inside
        return inside

    has_inside = contains  # backpack's original name

    def to_pixels(self, width: int, height: int, clamp: bool = True) -> np.ndarray:
        """The points as an ``int32`` array of shape ``(N, 2)`` holding ``(x, y)`` pixels, the
        form ``cv2.polylines`` takes. Rounding and clamping as in :func:`to_pixel`.

        Raises:
            ValueError: width or height < 1.
            OverflowError: ``clamp=False`` and a pixel coordinate does not fit in int32.
        """
        check_size(width, height)
        coords = np.array([(p.x, p.y) for p in self.points], dtype=np.float64)
        pixels = np.floor(coords * (width, height) + 0.5)
        if clamp:
            np.clip(pixels, 0, (width - 1, height - 1), out=pixels)
        elif not np.abs(pixels).max() <= INT32_MAX:
            raise OverflowError(f"{self} is too far outside a {width}x{height} image for int32")
        return pixels.astype(np.int32)

    @classmethod
    def from_value(cls, value: Any, closed: bool = True) -> PolyLine:
        """A PolyLine from a PolyLine, a sequence of points or a ``{"points", "closed"}``
        mapping (``closed`` is the default when the mapping has none).

        Raises:
            ValueError: ``value`` has none of these forms.
        """
        if isinstance(value, PolyLine):
            return value
        if isinstance(value, Mapping) and "points" in value:
            return cls(tuple(value["points"]), bool(value.get("closed", closed)))
        if is_sequence(value):
            return cls(tuple(value), closed)
        raise ValueError(f"cannot convert {value!r} to a PolyLine: expected a point sequence")
