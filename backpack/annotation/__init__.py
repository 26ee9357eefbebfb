"""Annotations -- labels, rectangles, lines, markers -- drawn through one API on several backends.

Collect the annotations of a frame in a list, then call ``render(annotations, context)`` on
any number of drivers:

- :class:`PanoramaMediaAnnotationDriver`: context is a ``panoramasdk.media`` object
  (``media.add_rect`` / ``media.add_label`` overlay metadata);
- :class:`OpenCVImageAnnotationDriver`: context is a numpy BGR image, drawn on in place
  (needs OpenCV, imported when the driver is created).

All coordinates are normalized to [0, 1) (:mod:`backpack.geometry`); colors are
:class:`Color` tuples in BGR order. Example, after the backpack README::

    from backpack.geometry import Point
    from backpack.annotation import (
        LabelAnnotation, RectAnnotation, TimestampAnnotation,
        OpenCVImageAnnotationDriver, PanoramaMediaAnnotationDriver,
    )

    annotations = [
        TimestampAnnotation(),
        RectAnnotation(point1=Point(0.1, 0.1), point2=Point(0.9, 0.9)),
        LabelAnnotation(point=Point(0.5, 0.5), text="Hello World!"),
    ]
    PanoramaMediaAnnotationDriver().render(annotations, media)
    frame = OpenCVImageAnnotationDriver().render(annotations, media.image.copy())

The drivers are also importable as ``backpack.annotation.opencv.OpenCVImageAnnotationDriver``
and ``backpack.annotation.panorama.PanoramaMediaAnnotationDriver``, as in the backpack README.
Importing this package does not import OpenCV.
"""

from __future__ import annotations

from backpack.annotation.annotations import (
    TIMESTAMP_FORMAT,
    TIMESTAMP_POINT,
    Annotation,
    HorizontalAnchor,
    LabelAnnotation,
    LineAnnotation,
    MarkerAnnotation,
    MarkerStyle,
    PolyLineAnnotation,
    RectAnnotation,
    TimestampAnnotation,
    VerticalAnchor,
)
from backpack.annotation.color import Color
from backpack.annotation.driver import AnnotationDriver, AnnotationDriverBase
from backpack.annotation.opencv import OpenCVImageAnnotationDriver
from backpack.annotation.panorama import PanoramaMediaAnnotationDriver

__all__ = [
    "TIMESTAMP_FORMAT",
    "TIMESTAMP_POINT",
    "Annotation",
    "AnnotationDriver",
    "AnnotationDriverBase",
    "Color",
    "HorizontalAnchor",
    "LabelAnnotation",
    "LineAnnotation",
    "MarkerAnnotation",
    "MarkerStyle",
    "OpenCVImageAnnotationDriver",
    "PanoramaMediaAnnotationDriver",
    "PolyLineAnnotation",
    "RectAnnotation",
    "TimestampAnnotation",
    "VerticalAnchor",
]
