"""Checking and resizing the frames given to SkyLine.put().

Frames are OpenCV images: numpy arrays of shape ``(height, width, 3)``, dtype ``uint8``, BGR
channel order. A frame of another size than the stream's is resized with OpenCV when it is
installed (``cv2.INTER_AREA`` when shrinking, ``cv2.INTER_LINEAR`` when enlarging) and with
a numpy nearest-neighbour lookup otherwise, so backpack keeps working with numpy alone.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from backpack._optional import require
from backpack.errors import MissingDependencyError

_UINT8 = np.dtype(np.uint8)


def frame_problem(frame: Any) -> str | None:
    """Why ``frame`` cannot be streamed, or None if it can.

    Accepted: a numpy array of shape ``(height, width, 3)`` (pixels), dtype uint8, with
    height and width at least 2.
    """
    # Fast path first: this runs for every frame.
    if type(frame) is np.ndarray and frame.dtype is _UINT8 and frame.ndim == 3:
        shape = frame.shape
        if shape[2] == 3 and shape[0] >= 2 and shape[1] >= 2:
            return None
    if not isinstance(frame, np.ndarray):
        return f"expected a numpy array, got {type(frame).__name__}"
    if frame.dtype != np.uint8:
        return f"expected dtype uint8, got {frame.dtype}"
    if frame.ndim != 3 or frame.shape[2] != 3:
        return f"expected shape (height, width, 3) BGR, got {frame.shape}"
    if frame.shape[0] < 2 or frame.shape[1] < 2:
        return f"frame too small: {frame.shape[1]}x{frame.shape[0]} pixels"
    return None


@lru_cache(maxsize=1)
def _cv2() -> Any:
    try:
        return require("cv2", "SkyLine frame resizing")
    except MissingDependencyError:
        return None


@lru_cache(maxsize=8)
def _nearest_indices(
    src_h: int, src_w: int, dst_h: int, dst_w: int
) -> tuple[np.ndarray, np.ndarray]:
    # Sample the source pixel under each destination pixel's centre.
    rows = ((np.arange(dst_h) + 0.5) * src_h / dst_h).astype(np.intp)
    cols = ((np.arange(dst_w) + 0.5) * src_w / dst_w).astype(np.intp)
    return np.minimum(rows, src_h - 1)[:, None], np.minimum(cols, src_w - 1)[None, :]


def resize_nearest(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resize with numpy only.

    Args:
        frame: ``(h, w, c)`` array.
        width, height: target size in pixels.

    Returns:
        A new C-contiguous ``(height, width, c)`` array of the same dtype.
    """
    rows, cols = _nearest_indices(frame.shape[0], frame.shape[1], height, width)
    return frame[rows, cols]


def fit_frame(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """``frame`` at ``width`` x ``height`` pixels and C-contiguous (copied only if needed).

    Uses OpenCV when importable, else :func:`resize_nearest`.
    """
    if frame.shape[1] != width or frame.shape[0] != height:
        cv2 = _cv2()
        if cv2 is None:
            return resize_nearest(frame, width, height)
        shrink = width * height < frame.shape[0] * frame.shape[1]
        interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        return cv2.resize(frame, (width, height), interpolation=interpolation)
    if not frame.flags.c_contiguous:
        return np.ascontiguousarray(frame)
    return frame
