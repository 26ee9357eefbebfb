"""Normalized <-> pixel coordinate conversion and coordinate checks for :mod:`backpack.geometry`.

A normalized coordinate ``v`` (0 = first pixel edge, 1 = last pixel edge) becomes the pixel
index ``floor(v * size + 0.5)``, clamped into ``[0, size - 1]`` unless asked not to; a pixel
index ``p`` becomes ``p / size``. ``to_pixel`` and ``from_pixel`` are public through
:mod:`backpack.geometry`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real
from typing import Any

import numpy as np

INT32_MAX = 2**31 - 1


def check_size(width: int, height: int) -> None:
    if not (width >= 1 and height >= 1):
        raise ValueError(f"image size must be positive pixels, got width={width}, height={height}")


def to_pixel(value: float, size: int, clamp: bool = True) -> int:
    """One normalized coordinate as a pixel index.

    Args:
        value: normalized coordinate (0 = first pixel edge, 1 = last pixel edge).
        size: image width (for x) or height (for y) in pixels, >= 1.
        clamp: clamp the result into ``[0, size - 1]`` (default); otherwise it may be negative
            or >= ``size``.

    Returns:
        ``floor(value * size + 0.5)``, clamped if asked.

    Raises:
        OverflowError: ``clamp=False`` and ``value * size`` is beyond the float range.
    """
    if clamp:
        if value <= 0.0:
            return 0
        if value >= 1.0:
            return size - 1
        pixel = math.floor(value * size + 0.5)
        return size - 1 if pixel >= size else pixel
    return math.floor(value * size + 0.5)


def from_pixel(pixel: float, size: int) -> float:
    """One pixel coordinate as a normalized coordinate: ``pixel / size``.

    Raises:
        ValueError: ``size`` < 1.
    """
    if not size >= 1:
        raise ValueError(f"image size must be positive pixels, got {size}")
    return pixel / size


def coordinate(value: Any, name: str) -> float:
    if type(value) is float and value - value == 0.0:  # fast path: a finite float
        return value
    if not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}: {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {number}")
    return number


def is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence | np.ndarray) and not isinstance(value, str | bytes)
