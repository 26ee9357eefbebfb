"""backpack.annotation: annotation values, the OpenCV driver on real images (pixels checked),
the Panorama media driver against a recording stand-in for ``panoramasdk.media``."""

import datetime
import logging
import subprocess
import sys

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backpack.annotation import (
    AnnotationDriver,
    Color,
    HorizontalAnchor,
    LabelAnnotation,
    LineAnnotation,
    MarkerAnnotation,
    MarkerStyle,
    OpenCVImageAnnotationDriver,
    PanoramaMediaAnnotationDriver,
    PolyLineAnnotation,
    RectAnnotation,
    TimestampAnnotation,
    VerticalAnchor,
)
from backpack.annotation.opencv import OpenCVImageAnnotationDriver as SeedPathOpenCV
from backpack.annotation.panorama import PanoramaMediaAnnotationDriver as SeedPathPanorama
from backpack.errors import MissingDependencyError
from backpack.geometry import Line, Point, PolyLine, Rectangle
from tests.support.paths import REPO

RED = Color(0, 0, 255)


def blank(width=100, height=80):
    return np.zeros((height, width, 3), np.uint8)


def lit(image):
    """Boolean mask of pixels that are not black."""
    return image.any(axis=-1)


def bbox(mask):
    rows, cols = np.nonzero(mask)
    return cols.min(), rows.min(), cols.max(), rows.max()


# --- import and dependency ----------------------------------------------------------------


def test_import_does_not_import_cv2():
    code = (
        "import sys, backpack.annotation, backpack.geometry;"
        "from backpack.annotation import opencv, panorama;"
        "assert 'cv2' not in sys.modules, 'cv2 imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_missing_cv2_is_one_clear_error():
    code = (
        "import sys; sys.modules['cv2'] = None\n"
        "from backpack.annotation import OpenCVImageAnnotationDriver, PanoramaMediaAnnotationDriver\n"
        "PanoramaMediaAnnotationDriver()\n"
        "OpenCVImageAnnotationDriver()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1
    assert "MissingDependencyError: OpenCVImageAnnotationDriver needs the Python module 'cv2'" in (
        result.stderr
    )
    assert "pip install opencv-python-headless" in result.stderr
    assert issubclass(MissingDependencyError, ImportError)


def test_seed_import_paths():
    assert SeedPathOpenCV is OpenCVImageAnnotationDriver
    assert SeedPathPanorama is PanoramaMediaAnnotationDriver


# --- colors and annotation values ---------------------------------------------------------


def test_color_is_bgr():
    assert Color.RED == (0, 0, 255) and Color.BLUE == (255, 0, 0)
    assert Color.from_rgb(255, 128, 0) == Color(0, 128, 255)
    assert Color.from_hex("#ff8000") == Color.from_hex(0xFF8000) == Color(b=0, g=128, r=255)
    assert Color(1, 2, 3).rgb == (3, 2, 1)
    assert Color(np.uint8(7), 0, 0).b == 7


@pytest.mark.parametrize("bad", [(256, 0, 0), (-1, 0, 0), (0.5, 0, 0), (True, 0, 0), ("1", 0, 0)])
def test_color_rejects_bad_components(bad):
    with pytest.raises(ValueError, match=r"Color\.b must be an integer in 0\.\.255"):
        Color(*bad)


@pytest.mark.parametrize("bad", ["#ff80", "red", "#gg0000", -1, 0x1000000])
def test_color_from_hex_errors(bad):
    with pytest.raises(ValueError, match="expected"):
        Color.from_hex(bad)


def test_annotations_convert_and_validate_their_values():
    label = LabelAnnotation((0.5, 0.25), "hi", color=(255, 0, 0), horizontal_anchor="center")
    assert label.point == Point(0.5, 0.25) and label.color == Color.BLUE
    assert label.horizontal_anchor is HorizontalAnchor.CENTER
    assert LabelAnnotation.HorizontalAnchor is HorizontalAnchor  # original nesting
    assert MarkerAnnotation.Style.STAR is MarkerStyle.STAR
    rect = RectAnnotation(((0.9, 0.8), (0.1, 0.2)), thickness=np.int64(2))
    assert rect.rect == Rectangle((0.1, 0.2), (0.9, 0.8)) and rect.thickness == 2
    assert RectAnnotation(point1=Point(0.1, 0.1), point2=Point(0.9, 0.9)).rect == Rectangle(
        (0.1, 0.1), (0.9, 0.9)
    )
    assert LineAnnotation(((0, 0), (1, 1))).line == Line((0, 0), (1, 1))
    assert PolyLineAnnotation([(0, 0), (1, 0), (1, 1)]).polyline.closed


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: LabelAnnotation((0.5, 0.5), 42), TypeError, "text must be a str"),
        (lambda: LabelAnnotation((0.5, float("nan")), "x"), ValueError, "finite"),
        (lambda: LabelAnnotation((0.5, 0.5), "x", color="red"), ValueError, "color must be"),
        (lambda: LabelAnnotation((0.5, 0.5), "x", size=2.0), ValueError, "size must be"),
        (lambda: LabelAnnotation((0.5, 0.5), "x", vertical_anchor="up"), ValueError, "'up'"),
        (lambda: RectAnnotation(), ValueError, "either rect or both point1 and point2"),
        (lambda: RectAnnotation(point1=(0, 0)), ValueError, "both point1 and point2"),
        (
            lambda: RectAnnotation(Rectangle((0, 0), (1, 1)), point1=(0, 0), point2=(1, 1)),
            ValueError,
            "either rect",
        ),
        (lambda: RectAnnotation(((0, 0), (1, 1)), thickness=0), ValueError, "positive number"),
        (lambda: LineAnnotation(((0, 0), (1, 1)), thickness=1.5), ValueError, "thickness"),
        (lambda: PolyLineAnnotation([(0, 0)]), ValueError, "at least two points"),
        (lambda: MarkerAnnotation((0.5, 0.5), style="circle"), ValueError, "'circle'"),
    ],
)
def test_annotation_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_timestamp_annotation_defaults_to_now():
    before = datetime.datetime.now().astimezone().replace(microsecond=0)
    stamp = TimestampAnnotation()
    after = datetime.datetime.now().astimezone()
    assert isinstance(stamp, LabelAnnotation)
    assert before <= stamp.timestamp <= after and stamp.timestamp.tzinfo is not None
    shown = datetime.datetime.strptime(stamp.text, "%Y-%m-%d %H:%M:%S")
    assert before.replace(tzinfo=None) <= shown <= after.replace(tzinfo=None)
    assert stamp.point == Point(0.02, 0.04)


def test_timestamp_annotation_with_values():
    moment = datetime.datetime(2024, 5, 6, 7, 8, 9)
    stamp = TimestampAnnotation(moment, Point(0.5, 0.5), RED, time_format="%H:%M", size=0.05)
    assert (stamp.text, stamp.point, stamp.color, stamp.size) == (
        "07:08",
        Point(0.5, 0.5),
        RED,
        0.05,
    )
    assert stamp.timestamp == moment


# --- OpenCV driver: pixels ----------------------------------------------------------------


@pytest.fixture(scope="module")
def cv_driver():
    return OpenCVImageAnnotationDriver()


def test_rectangle_edges_have_the_color_and_nothing_else_changes(cv_driver):
    image = blank(100, 80)
    cv_driver.render([RectAnnotation(((0.1, 0.25), (0.5, 0.75)), color=RED)], image)
    # normalized -> pixels: x 0.1*100=10, 0.5*100=50; y 0.25*80=20, 0.75*80=60 (inclusive)
    for edge in (image[20, 10:51], image[60, 10:51], image[20:61, 10], image[20:61, 50]):
        assert (edge == RED).all()
    assert not lit(image[21:60, 11:50]).any(), "interior must stay untouched"
    assert lit(image).sum() == 2 * 41 + 2 * 39, "only the outline is drawn"


def test_rectangle_default_color_and_thickness(cv_driver):
    image = blank()
    cv_driver.render([RectAnnotation(((0.1, 0.25), (0.5, 0.75)))], image)
    assert (image[20, 10] == (255, 255, 255)).all()
    thick = blank()
    cv_driver.render([RectAnnotation(((0.1, 0.25), (0.5, 0.75)), thickness=3)], thick)
    assert lit(thick).sum() > 2 * lit(image).sum()
    assert lit(thick[19:22, 30]).all()  # 3 px wide top edge centered on row 20


def test_rectangle_past_the_frame_is_drawn_along_the_border(cv_driver):
    image = blank(64, 48)
    cv_driver.render([RectAnnotation(((-0.5, -0.5), (2.0, 2.0)), color=RED)], image)
    for border in (image[0, :], image[-1, :], image[:, 0], image[:, -1]):
        assert (border == RED).all()
    assert not lit(image[1:-1, 1:-1]).any()


def test_label_is_drawn_above_its_point(cv_driver):
    image = blank(640, 480)
    cv_driver.render([LabelAnnotation((0.1, 0.5), "Hello World", color=RED)], image)
    mask = lit(image)
    assert mask.sum() > 200, "text pixels expected"
    x1, y1, x2, y2 = bbox(mask)
    text_height = round(0.02 * 480)
    assert 62 <= x1 <= 68 and x2 > x1 + 4 * text_height  # starts at x = 64
    assert y2 <= 240 and y1 >= 240 - 2 * text_height  # BOTTOM anchor: text above y = 240
    assert not image[..., :2].any() and image[..., 2].max() > 200  # red only (anti-aliased)


@pytest.mark.parametrize(
    "anchor, check",
    [
        (HorizontalAnchor.LEFT, lambda x1, x2: abs(x1 - 320) <= 3),
        (HorizontalAnchor.CENTER, lambda x1, x2: abs((x1 + x2) / 2 - 320) <= 3),
        (HorizontalAnchor.RIGHT, lambda x1, x2: abs(x2 - 320) <= 3),
    ],
)
def test_label_horizontal_anchors(cv_driver, anchor, check):
    image = blank(640, 480)
    cv_driver.render([LabelAnnotation((0.5, 0.5), "MMMMMM", horizontal_anchor=anchor)], image)
    x1, _, x2, _ = bbox(lit(image))
    assert check(x1, x2), (x1, x2)


@pytest.mark.parametrize(
    "anchor, check",
    [
        (VerticalAnchor.TOP, lambda y1, y2: abs(y1 - 240) <= 2),
        (VerticalAnchor.CENTER, lambda y1, y2: abs((y1 + y2) / 2 - 240) <= 2),
        (VerticalAnchor.BASELINE, lambda y1, y2: abs(y2 - 240) <= 2),
        (VerticalAnchor.BOTTOM, lambda y1, y2: y2 < 238),
    ],
)
def test_label_vertical_anchors(cv_driver, anchor, check):
    image = blank(640, 480)
    cv_driver.render([LabelAnnotation((0.5, 0.5), "HHHH", vertical_anchor=anchor)], image)
    _, y1, _, y2 = bbox(lit(image))
    assert check(y1, y2), (y1, y2)


def test_label_size_and_background(cv_driver):
    small, large = blank(640, 480), blank(640, 480)
    cv_driver.render([LabelAnnotation((0.1, 0.5), "Size")], small)
    cv_driver.render([LabelAnnotation((0.1, 0.5), "Size", size=0.1)], large)
    small_h, large_h = (bbox(lit(im))[3] - bbox(lit(im))[1] for im in (small, large))
    assert large_h > 3 * small_h
    boxed = blank(640, 480)
    label = LabelAnnotation((0.1, 0.5), "Boxed", color=Color.WHITE, background=Color.BLUE)
    cv_driver.render([label], boxed)
    x1, y1, x2, y2 = bbox(lit(boxed))
    assert (boxed[y1, x1] == Color.BLUE).all() and (boxed[y2, x2] == Color.BLUE).all()
    assert boxed[y1:y2, x1:x2, 1].max() > 200  # white text (green channel) over the blue box


def test_timestamp_renders_in_the_top_left_corner(cv_driver):
    image = blank(640, 480)
    cv_driver.render([TimestampAnnotation()], image)
    x1, y1, x2, y2 = bbox(lit(image))
    assert x1 < 20 and y2 <= 0.04 * 480 and x2 > 100


def test_line_is_not_bent_by_clamping(cv_driver):
    image = blank(100, 100)
    # from (-1, 0) to (1, 1): crosses the left edge at y = 0.5 (clamping would start at 0, 0)
    cv_driver.render([LineAnnotation(((-1.0, 0.0), (1.0, 1.0)), color=RED)], image)
    assert (image[50, 0] == RED).all() and (image[75, 50] == RED).all()
    assert not lit(image[:45, :5]).any()


def test_polyline_closing_edge(cv_driver):
    points = [(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9)]
    closed, open_ = blank(100, 100), blank(100, 100)
    cv_driver.render([PolyLineAnnotation(PolyLine(points))], closed)
    cv_driver.render([PolyLineAnnotation(PolyLine(points, closed=False))], open_)
    assert lit(closed[10:91, 10]).all(), "closing edge drawn"
    assert not lit(open_[20:80, 10]).any(), "open polyline has no closing edge"
    assert lit(open_[10:91, 90]).all()


def test_marker(cv_driver):
    image = blank(200, 200)
    cv_driver.render([MarkerAnnotation((0.5, 0.5), MarkerStyle.CROSS, color=RED, size=0.1)], image)
    assert (image[100, 100] == RED).all() and (image[100, 91] == RED).all()
    assert (image[91, 100] == RED).all() and not lit(image[91, 91])
    square = blank(200, 200)
    cv_driver.render([MarkerAnnotation((0.5, 0.5), MarkerStyle.SQUARE, size=0.1)], square)
    assert not lit(square[100, 100]) and lit(square[90, 90:111]).all()


def test_render_draws_in_place_without_copying(cv_driver):
    frame = blank(320, 240)
    address = frame.ctypes.data
    result = cv_driver.render(iter([RectAnnotation(((0.1, 0.1), (0.9, 0.9)))]), frame)
    assert result is frame and frame.ctypes.data == address and lit(frame).any()
    # a view into a bigger frame: drawing lands in the parent's buffer
    parent = blank(320, 240)
    view = parent[40:200, 80:240]
    assert cv_driver.render([RectAnnotation(((0, 0), (1, 1)), color=RED)], view) is view
    assert (parent[40, 80:240] == RED).all() and (parent[199, 80:240] == RED).all()
    assert lit(parent).sum() == lit(view).sum()


@pytest.mark.parametrize(
    "context, error, message",
    [
        ([[0]], TypeError, "expected a numpy BGR image, got list"),
        (
            np.zeros((10, 10, 3), np.float32),
            ValueError,
            r"uint8 BGR image .* float32 \(10, 10, 3\)",
        ),
        (np.zeros((10, 10), np.uint8), ValueError, r"shape \(height, width, 3\)"),
        (np.zeros((10, 10, 4), np.uint8), ValueError, r"got uint8 \(10, 10, 4\)"),
    ],
)
def test_render_rejects_bad_images(cv_driver, context, error, message):
    with pytest.raises(error, match=message):
        cv_driver.render([], context)


def test_render_rejects_read_only_images(cv_driver):
    image = blank()
    image.flags.writeable = False
    with pytest.raises(ValueError, match=r"read-only; render on a copy: image\.copy\(\)"):
        cv_driver.render([], image)


def test_render_rejects_unknown_annotations(cv_driver):
    with pytest.raises(TypeError, match="cannot render str; expected LabelAnnotation"):
        cv_driver.render(["label"], blank())


def test_driver_options():
    driver = OpenCVImageAnnotationDriver(color=Color.GREEN, thickness=2, line_type=cv2.LINE_AA)
    image = blank()
    driver.render([LineAnnotation(((0.1, 0.5), (0.9, 0.5)))], image)
    assert image[..., 1].max() == 255 and not image[..., (0, 2)].any()
    assert np.unique(image[..., 1]).size > 2, "LINE_AA blends edge pixels"
    assert lit(image[:, 50]).sum() >= 2


# --- Panorama media driver ----------------------------------------------------------------


class RecordingMedia:
    """Stand-in for ``panoramasdk.media``: records add_rect / add_label calls."""

    def __init__(self):
        self.calls = []
        self.image = blank()

    def add_rect(self, left, top, right, bottom):
        self.calls.append(("add_rect", left, top, right, bottom))

    def add_label(self, text, x, y):
        self.calls.append(("add_label", text, x, y))


def test_panorama_driver_calls_the_media_api():
    media = RecordingMedia()
    annotations = [
        RectAnnotation(point1=Point(0.9, 0.8), point2=Point(0.1, 0.2), color=RED, thickness=3),
        LabelAnnotation(Point(0.5, 0.25), "Hello World!", color=RED),
        MarkerAnnotation((0.3, 0.4), MarkerStyle.TILTED_CROSS),
    ]
    assert PanoramaMediaAnnotationDriver().render(annotations, media) is media
    assert media.calls == [
        ("add_rect", 0.1, 0.2, 0.9, 0.8),
        ("add_label", "Hello World!", 0.5, 0.25),
        ("add_label", "x", 0.3, 0.4),
    ]
    assert not media.image.any(), "the media driver never draws on the image"


def test_panorama_driver_clamps_into_the_unit_range():
    media = RecordingMedia()
    PanoramaMediaAnnotationDriver().render(
        [RectAnnotation(((-0.5, 0.2), (1.5, 1.0))), LabelAnnotation((1.0, -2.0), "edge")], media
    )
    (_, *rect), (_, text, x, y) = media.calls
    assert rect[0] == 0.0 and rect[1] == 0.2 and 0.999999 < rect[2] < 1.0 and rect[3] < 1.0
    assert (text, y) == ("edge", 0.0) and 0.999999 < x < 1.0


@given(
    st.lists(
        st.tuples(*[st.floats(-10, 10, allow_nan=False)] * 4).map(
            lambda c: RectAnnotation(((c[0], c[1]), (c[2], c[3])))
        ),
        max_size=5,
    )
)
def test_panorama_rect_arguments_are_ordered_python_floats_in_unit_range(annotations):
    media = RecordingMedia()
    PanoramaMediaAnnotationDriver().render(annotations, media)
    assert len(media.calls) == len(annotations)
    for _, left, top, right, bottom in media.calls:
        for value in (left, top, right, bottom):
            assert type(value) is float and 0.0 <= value < 1.0
        assert left <= right and top <= bottom


def test_panorama_driver_skips_lines_with_a_debug_log(caplog):
    media = RecordingMedia()
    with caplog.at_level(logging.DEBUG, logger="backpack.annotation"):
        PanoramaMediaAnnotationDriver().render(
            [
                LineAnnotation(((0, 0), (1, 1))),
                PolyLineAnnotation([(0, 0), (1, 0), (1, 1)]),
                TimestampAnnotation(datetime.datetime(2024, 1, 2, 3, 4, 5)),
            ],
            media,
        )
    assert media.calls == [("add_label", "2024-01-02 03:04:05", 0.02, 0.04)]
    skipped = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert skipped == [
        "PanoramaMediaAnnotationDriver does not draw LineAnnotation; skipped",
        "PanoramaMediaAnnotationDriver does not draw PolyLineAnnotation; skipped",
    ]


# --- custom drivers ---------------------------------------------------------------------------


def test_driver_base_requires_rect_and_label_hooks():
    with pytest.raises(TypeError, match="abstract"):
        AnnotationDriver()

    class RectOnly(AnnotationDriver):
        def add_rect(self, rect, context):
            context.append(rect)

    with pytest.raises(TypeError, match="add_label"):
        RectOnly()


def test_custom_driver_dispatch_by_type():
    class Recorder(AnnotationDriver):
        def add_rect(self, rect, context):
            context.append(("rect", rect.rect.center))

        def add_label(self, label, context):
            context.append(("label", label.text))

    stamp = TimestampAnnotation(datetime.datetime(2024, 1, 2, 3, 4, 5), time_format="%H")
    annotations = [stamp, RectAnnotation(((0, 0), (1, 1))), MarkerAnnotation((0.5, 0.5)), stamp]
    assert Recorder().render(annotations, []) == [
        ("label", "03"),
        ("rect", Point(0.5, 0.5)),
        ("label", "03"),
    ]


def test_extreme_coordinates_render_without_errors(cv_driver):
    far = [(-1e300, 0.5), (1e300, 0.5)]
    image = blank(100, 100)
    cv_driver.render(
        [
            RectAnnotation(far, color=RED),
            LineAnnotation(far, color=RED),
            PolyLineAnnotation([*far, (0.5, 1e300)], color=RED),
            LabelAnnotation((1e300, -1e300), "far"),
            MarkerAnnotation((1e300, 1e300)),
        ],
        image,
    )
    assert (image[50, :] == RED).all()  # the horizontal line through the frame
    media = RecordingMedia()
    PanoramaMediaAnnotationDriver().render([RectAnnotation(far)], media)
    assert media.calls[0][1:] == (0.0, 0.5, media.calls[0][3], 0.5) and media.calls[0][3] < 1.0


@pytest.mark.parametrize(
    "options, message",
    [
        ({"thickness": 0}, "thickness must be a positive number of pixels"),
        ({"text_thickness": 2.5}, "thickness must be a positive number of pixels"),
        ({"text_size": 0}, "size must be a fraction of the image height"),
        ({"marker_size": 1.5}, "size must be a fraction of the image height"),
        ({"color": (0, 0, 300)}, r"Color\.r must be an integer"),
    ],
)
def test_driver_option_errors(options, message):
    with pytest.raises(ValueError, match=message):
        OpenCVImageAnnotationDriver(**options)
