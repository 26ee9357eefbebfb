"""Colors for annotations, in OpenCV's **BGR** channel order."""

from __future__ import annotations

import operator
from typing import ClassVar, NamedTuple

__all__ = ["Color"]


def _component(name: str, value: object) -> int:
    try:
        number = operator.index(value)  # int or numpy integer, not float
    except TypeError:
        number = -1
    if isinstance(value, bool) or not 0 <= number <= 255:
        raise ValueError(f"Color.{name} must be an integer in 0..255, got {value!r}")
    return number


class _BGR(NamedTuple):
    b: int
    g: int
    r: int


class Color(_BGR):
    """An 8-bit color as a ``(b, g, r)`` tuple -- blue first, as OpenCV expects.

    ``Color(0, 0, 255)`` is red. Because it *is* the tuple OpenCV takes, the OpenCV driver
    passes it on unchanged. Use :meth:`from_rgb` or :meth:`from_hex` to write colors in the
    usual RGB order, and the constants ``Color.RED``, ``Color.GREEN``, ... Drivers without
    colors (``panoramasdk.media``) ignore it.

    Args:
        b: blue, integer 0..255.
        g: green, integer 0..255.
        r: red, integer 0..255.

    Raises:
        ValueError: a component is not an integer in 0..255.
    """

    __slots__ = ()

    BLACK: ClassVar[Color]
    WHITE: ClassVar[Color]
    RED: ClassVar[Color]
    GREEN: ClassVar[Color]
    BLUE: ClassVar[Color]
    YELLOW: ClassVar[Color]
    CYAN: ClassVar[Color]
    MAGENTA: ClassVar[Color]

    def __new__(cls, b: int, g: int, r: int) -> Color:
        return super().__new__(cls, _component("b", b), _component("g", g), _component("r", r))

    @classmethod
    def from_rgb(cls, r: int, g: int, b: int) -> Color:
        """The color with red ``r``, green ``g``, blue ``b`` (each 0..255)."""
        return cls(b, g, r)

    @classmethod
    def from_hex(cls, value: str | int) -> Color:
        """A color from HTML notation: ``"#ff8800"``, ``"ff8800"`` or ``0xFF8800`` (RGB order).

        Raises:
            ValueError: not six hex digits / not an integer in 0..0xFFFFFF.
        """
        if isinstance(value, str):
            digits = value.removeprefix("#")
            if len(digits) != 6:
                raise ValueError(f"expected a color like '#rrggbb', got {value!r}")
            try:
                value = int(digits, 16)
            except ValueError:
                raise ValueError(f"expected a color like '#rrggbb', got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFFFF:
            raise ValueError(f"expected an RGB integer 0..0xFFFFFF, got {value!r}")
        return cls(value & 0xFF, (value >> 8) & 0xFF, (value >> 16) & 0xFF)

    @property
    def rgb(self) -> tuple[int, int, int]:
        """``(r, g, b)``."""
        return self.r, self.g, self.b

    def __repr__(self) -> str:
        return f"Color(b={self.b}, g={self.g}, r={self.r})"


Color.BLACK = Color(0, 0, 0)
Color.WHITE = Color(255, 255, 255)
Color.RED = Color(0, 0, 255)
Color.GREEN = Color(0, 255, 0)
Color.BLUE = Color(255, 0, 0)
Color.YELLOW = Color(0, 255, 255)
Color.CYAN = Color(255, 255, 0)
Color.MAGENTA = Color(255, 0, 255)
