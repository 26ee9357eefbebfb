"""backpack.geometry: validation, pixel conversions (properties with hypothesis), shapes."""

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from backpack.geometry import Line, Point, PolyLine, Rectangle, from_pixel, to_pixel

sizes = st.integers(min_value=1, max_value=8192)
unit = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)
points = st.builds(Point, finite, finite)
unit_points = st.builds(Point, unit, unit)
rects = st.builds(Rectangle, unit_points, unit_points)


# --- validation -------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, np.float32("nan")])
def test_point_rejects_non_finite(bad):
    with pytest.raises(ValueError, match=r"Point\.x must be a finite number"):
        Point(bad, 0.5)
    with pytest.raises(ValueError, match=r"Point\.y must be a finite number"):
        Point(0.5, bad)


@pytest.mark.parametrize("bad", ["0.5", None, b"1", [0.5], complex(1, 0)])
def test_point_rejects_non_numbers(bad):
    with pytest.raises(TypeError, match=r"Point\.x must be a real number"):
        Point(bad, 0.5)


def test_point_stores_python_floats():
    point = Point(np.float32(0.25), 1)
    assert type(point.x) is float and type(point.y) is float
    assert point == Point(0.25, 1.0)
    assert tuple(point) == (0.25, 1.0) and point[1] == 1.0


def test_point_allows_values_outside_the_frame():
    assert Point(-0.5, 1.5).to_pixels(100, 10) == (0, 9)
    assert Point(-0.5, 1.5).to_pixels(100, 10, clamp=False) == (-50, 15)


@pytest.mark.parametrize("width, height", [(0, 10), (10, 0), (-1, 5)])
def test_pixel_conversions_reject_bad_sizes(width, height):
    with pytest.raises(ValueError, match="image size must be positive pixels"):
        Point(0.5, 0.5).to_pixels(width, height)
    with pytest.raises(ValueError, match="image size must be positive pixels"):
        Rectangle.from_pixels(0, 0, 1, 1, width, height)
    with pytest.raises(ValueError, match="image size must be positive pixels"):
        PolyLine([(0, 0), (1, 1)]).to_pixels(width, height)


@pytest.mark.parametrize("bad", ["ab", (1, 2, 3), {"x": 1}, 5, None])
def test_point_from_value_errors(bad):
    with pytest.raises(ValueError, match="cannot convert .* to a Point"):
        Point.from_value(bad)


def test_from_value_forms():
    assert Point.from_value({"x": 0.1, "y": 0.2}) == Point(0.1, 0.2)
    assert Point.from_value(np.array([0.1, 0.2])) == Point(0.1, 0.2)
    assert Line.from_value({"pt1": (0, 0), "pt2": (1, 1)}) == Line(Point(0, 0), Point(1, 1))
    assert Rectangle.from_value(((0.9, 0.1), (0.1, 0.9))) == Rectangle((0.1, 0.1), (0.9, 0.9))
    poly = PolyLine.from_value({"points": [(0, 0), (1, 0), (1, 1)], "closed": False})
    assert poly.closed is False and len(poly) == 3
    assert PolyLine.from_value(np.array([[0, 0], [1, 1]])).points == (Point(0, 0), Point(1, 1))
    with pytest.raises(ValueError, match="to a Rectangle"):
        Rectangle.from_value(((0, 0), (1, 1), (2, 2)))
    with pytest.raises(ValueError, match="to a Line"):
        Line.from_value("line")


def test_shapes_are_immutable_and_hashable():
    rect = Rectangle((0.1, 0.1), (0.2, 0.2))
    with pytest.raises(AttributeError):
        rect.pt_min = Point(0, 0)
    assert len({rect, Rectangle((0.2, 0.2), (0.1, 0.1))}) == 1


# --- pixel conversions ------------------------------------------------------------------


@given(sizes, sizes, st.data())
def test_pixel_to_normalized_to_pixel_is_exact(width, height, data):
    px = data.draw(st.integers(0, width - 1))
    py = data.draw(st.integers(0, height - 1))
    assert Point.from_pixels(px, py, width, height).to_pixels(width, height) == (px, py)


@given(points, sizes, sizes)
def test_clamped_pixels_are_inside_the_image(point, width, height):
    x, y = point.to_pixels(width, height)
    assert 0 <= x < width and 0 <= y < height
    ux, uy = point.to_pixels(width, height, clamp=False)
    assert x == min(max(ux, 0), width - 1) and y == min(max(uy, 0), height - 1)


@given(unit, sizes)
def test_normalized_to_pixel_to_normalized_is_within_one_pixel(value, size):
    pixel = to_pixel(value, size)
    assert abs(from_pixel(pixel, size) - value) <= 1 / size + 1e-12


def test_pixel_convention_rounds_to_nearest():
    assert to_pixel(0.0, 1920) == 0
    assert to_pixel(0.5, 1920) == 960
    assert to_pixel(0.49999 / 1920, 1920) == 0
    assert to_pixel(0.5 / 1920, 1920) == 1
    assert to_pixel(0.99999, 1920) == 1919  # 1919.98 rounds to 1920, clamped
    assert to_pixel(-0.3 / 1920, 1920, clamp=False) == 0
    assert to_pixel(-0.6 / 1920, 1920, clamp=False) == -1


def test_full_frame_rectangle_is_the_image_border():
    assert Rectangle((0, 0), (1, 1)).to_pixels(1920, 1080) == (0, 0, 1919, 1079)
    assert Rectangle((-0.5, -0.5), (1.5, 0.5)).to_pixels(100, 80) == (0, 0, 99, 40)


@given(sizes, sizes, st.data())
def test_rectangle_pixel_round_trip(width, height, data):
    xs = sorted(data.draw(st.lists(st.integers(0, width - 1), min_size=2, max_size=2)))
    ys = sorted(data.draw(st.lists(st.integers(0, height - 1), min_size=2, max_size=2)))
    rect = Rectangle.from_pixels(xs[0], ys[1], xs[1], ys[0], width, height)
    assert rect.to_pixels(width, height) == (xs[0], ys[0], xs[1], ys[1])


def test_polyline_to_pixels_is_an_int32_array_for_cv2():
    poly = PolyLine([(0, 0), (0.5, 0.25), (2.0, -1.0)])
    pixels = poly.to_pixels(200, 100)
    assert pixels.dtype == np.int32 and pixels.shape == (3, 2)
    assert pixels.tolist() == [[0, 0], [100, 25], [199, 0]]
    assert poly.to_pixels(200, 100, clamp=False).tolist() == [[0, 0], [100, 25], [400, -100]]


# --- rectangles ---------------------------------------------------------------------------


@given(points, points)
def test_rectangle_orders_its_corners(pt1, pt2):
    rect = Rectangle(pt1, pt2)
    assert rect == Rectangle(pt2, pt1)
    assert rect.left <= rect.right and rect.top <= rect.bottom
    assert rect.width >= 0 and rect.height >= 0
    assert rect.contains(pt1) and rect.contains(pt2) and rect.contains(rect.center)


@given(rects, rects)
def test_intersection_union_iou(a, b):
    inter = a.intersection(b)
    assert inter == b.intersection(a)
    union = a.union(b)
    for corner in (*a, *b):
        assert union.contains(corner)
    if inter is not None:
        for corner in inter:
            assert a.contains(corner) and b.contains(corner)
        assert inter.area <= min(a.area, b.area) + 1e-12
    iou = a.iou(b)
    assert 0.0 <= iou <= 1.0 + 1e-12
    assert math.isclose(a.iou(b), b.iou(a))


@given(rects)
def test_iou_with_itself(rect):
    assume(rect.area > 1e-9)
    assert math.isclose(rect.iou(rect), 1.0)


def test_rectangle_measures():
    rect = Rectangle((0.1, 0.2), (0.5, 0.8))
    assert rect.size == pytest.approx((0.4, 0.6)) and rect.area == pytest.approx(0.24)
    assert rect.center == Point(0.3, 0.5) and rect.base == Point(0.3, 0.8)
    assert rect.aspect_ratio == pytest.approx(0.4 / 0.6)
    assert Rectangle((0, 0.5), (1, 0.5)).aspect_ratio == math.inf
    assert not rect.contains(Point(0.05, 0.5)) and rect.has_inside(Point(0.1, 0.2))


def test_intersection_edge_cases():
    a = Rectangle((0, 0), (0.5, 0.5))
    assert a.intersection(Rectangle((0.6, 0.6), (1, 1))) is None
    touching = a.intersection(Rectangle((0.5, 0), (1, 0.5)))
    assert touching is not None and touching.area == 0
    assert a.iou(Rectangle((0.5, 0), (1, 0.5))) == 0.0
    assert Rectangle((0.2, 0.2), (0.2, 0.2)).iou(Rectangle((0.2, 0.2), (0.2, 0.2))) == 0.0


def test_bounding_box():
    box = Rectangle.bounding([(0.3, 0.9), Point(0.1, 0.5), (0.7, 0.2)])
    assert box == Rectangle((0.1, 0.2), (0.7, 0.9))
    with pytest.raises(ValueError, match="at least one point"):
        Rectangle.bounding([])


# --- lines and polylines ----------------------------------------------------------------


def test_line_lengths_and_intersection():
    line = Line((0, 0), (1, 1))
    assert line.length == pytest.approx(math.sqrt(2))
    assert line.pixel_length(3, 4) == pytest.approx(5.0)  # anisotropic: pixels differ per axis
    assert line.midpoint == Point(0.5, 0.5)
    assert line.intersects(Line((0, 1), (1, 0)))
    assert not line.intersects(Line((0, 0.5), (0.2, 0.9)))
    assert line.to_pixels(11, 11) == ((0, 0), (10, 10))


def test_polyline_needs_two_points():
    with pytest.raises(ValueError, match="at least two points"):
        PolyLine([(0.5, 0.5)])
    with pytest.raises(ValueError, match="must be a sequence"):
        PolyLine(Point(0, 0))
    with pytest.raises(ValueError, match="finite"):
        PolyLine([(0, 0), (math.nan, 0)])


def test_closed_and_open_polylines():
    square = [(0.2, 0.2), (0.6, 0.2), (0.6, 0.6), (0.2, 0.6)]
    closed, open_ = PolyLine(square), PolyLine(square, closed=False)
    assert closed.closed and len(closed.lines) == 4 and len(open_.lines) == 3
    assert closed.length == pytest.approx(1.6) and open_.length == pytest.approx(1.2)
    assert closed.area == pytest.approx(0.16) and open_.area == 0.0
    assert closed.bounding_box == Rectangle((0.2, 0.2), (0.6, 0.6)) == closed.boundingbox
    assert closed.contains(Point(0.4, 0.4)) and not closed.contains(Point(0.7, 0.4))
    assert not closed.self_intersects
    with pytest.raises(ValueError, match="closed polyline"):
        open_.contains(Point(0.4, 0.4))


def test_polyline_self_intersection():
    bowtie = PolyLine([(0, 0), (1, 1), (1, 0), (0, 1)])
    assert bowtie.self_intersects


@given(st.lists(unit_points, min_size=3, max_size=8))
def test_polyline_length_is_the_sum_of_its_segments(pts):
    closed, open_ = PolyLine(pts), PolyLine(pts, closed=False)
    closing = pts[-1].distance(pts[0])
    assert closed.length == pytest.approx(open_.length + closing)
    assert closed.bounding_box.contains(closed.bounding_box.center)


def test_point_vector_arithmetic():
    assert Point(0.5, 0.25) + Point(0.25, 0.25) == Point(0.75, 0.5)
    assert Point(0.5, 0.25) - Point(0.25, 0.25) == Point(0.25, 0.0)
    assert Point(0, 0).distance(Point(0.3, 0.4)) == pytest.approx(0.5)
    with pytest.raises(TypeError):
        Point(0, 0) + (1, 1)


any_finite = st.floats(allow_nan=False, allow_infinity=False)


@given(st.builds(Point, any_finite, any_finite), sizes, sizes)
def test_extreme_finite_coordinates_clamp_without_overflow(point, width, height):
    x, y = point.to_pixels(width, height)
    assert 0 <= x < width and 0 <= y < height


def test_unclamped_polyline_beyond_int32_is_an_error():
    with pytest.raises(OverflowError, match="too far outside a 1920x1080 image"):
        PolyLine([(0, 0), (1e9, 0)]).to_pixels(1920, 1080, clamp=False)
