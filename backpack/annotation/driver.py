"""The annotation driver base class: renders a collection of annotations on a backend context."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any

from backpack.annotation.annotations import (
    Annotation,
    LabelAnnotation,
    LineAnnotation,
    MarkerAnnotation,
    PolyLineAnnotation,
    RectAnnotation,
)

__all__ = ["AnnotationDriver", "AnnotationDriverBase"]

_Handler = Callable[[Any, Any], None]


class AnnotationDriver(ABC):
    """Draws annotations on one kind of backend context.

    :meth:`render` hands each annotation to the hook for its type (:meth:`add_rect`,
    :meth:`add_label`, :meth:`add_line`, :meth:`add_polyline`, :meth:`add_marker`; a subclass
    such as :class:`~backpack.annotation.TimestampAnnotation` goes to its base type's hook).
    Subclasses implement the hooks; the base versions of the line, polyline and marker hooks
    skip the annotation with a debug log; rect and label are abstract. A driver keeps no
    per-frame state, so one instance can render any number of frames.

    Args:
        logger: where skipped annotations are logged (debug level); default
            ``logging.getLogger("backpack.annotation.<ClassName>")``.
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger(f"backpack.annotation.{type(self).__name__}")
        self._handlers: dict[type, _Handler] = {
            RectAnnotation: self.add_rect,
            LabelAnnotation: self.add_label,
            LineAnnotation: self.add_line,
            PolyLineAnnotation: self.add_polyline,
            MarkerAnnotation: self.add_marker,
        }

    def render(self, annotations: Iterable[Annotation], context: Any) -> Any:
        """Draws ``annotations`` on ``context`` in order.

        Args:
            annotations: any iterable of the annotation types of :mod:`backpack.annotation`
                (coordinates normalized to [0, 1)).
            context: the backend's drawing target, e.g. a numpy BGR image for the OpenCV
                driver, a ``panoramasdk.media`` for the Panorama driver.

        Returns:
            ``context`` itself (drawn on in place).

        Raises:
            TypeError: an item is not an annotation type this driver knows.
        """
        handlers = self._handlers
        for annotation in annotations:
            handler = handlers.get(type(annotation)) or self._handler_for(type(annotation))
            handler(annotation, context)
        return context

    def _handler_for(self, kind: type) -> _Handler:
        for base in kind.__mro__[1:]:
            handler = self._handlers.get(base)
            if handler is not None:
                self._handlers[kind] = handler
                return handler
        known = ", ".join(sorted(k.__name__ for k in self._handlers))
        raise TypeError(f"{type(self).__name__} cannot render {kind.__name__}; expected {known}")

    @abstractmethod
    def add_rect(self, rect: RectAnnotation, context: Any) -> None:
        """Draws a rectangle annotation on ``context``."""

    @abstractmethod
    def add_label(self, label: LabelAnnotation, context: Any) -> None:
        """Draws a label annotation on ``context``."""

    def add_line(self, line: LineAnnotation, context: Any) -> None:
        """Draws a line annotation on ``context``; the base version skips it (debug log)."""
        self._skip(line)

    def add_polyline(self, polyline: PolyLineAnnotation, context: Any) -> None:
        """Draws a polyline annotation on ``context``; the base version skips it (debug log)."""
        self._skip(polyline)

    def add_marker(self, marker: MarkerAnnotation, context: Any) -> None:
        """Draws a marker annotation on ``context``; the base version skips it (debug log)."""
        self._skip(marker)

    def _skip(self, annotation: Annotation) -> None:
        self.logger.debug(
            "%s does not draw %s; skipped", type(self).__name__, type(annotation).__name__
        )


#: The name used by the original backpack.
AnnotationDriverBase = AnnotationDriver
