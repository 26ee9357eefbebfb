"""LiveFrame: the latest HDMI frame of one stream, for serve's MJPEG endpoint and web page.

The serve sink calls :meth:`LiveFrame.update` with each drawn frame (overlays already on it);
HTTP handlers call :meth:`LiveFrame.wait` for a frame newer than the one they sent, then
:meth:`LiveFrame.jpeg`. The JPEG is encoded lazily, at most once per frame (``seq``) and
quality, however many viewers there are, and never when nobody watches.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


class LiveFrame:
    """The latest frame of one stream (thread-safe).

    Attributes:
        seq: frames seen so far (0 before the first); the current frame's number.
    """

    def __init__(self) -> None:
        self.seq = 0
        self._image: np.ndarray | None = None
        self._jpeg: tuple[int, int, bytes] | None = None  # (seq, quality, bytes)
        self._cond = threading.Condition()
        self._encode_lock = threading.Lock()

    def update(self, image: np.ndarray) -> None:
        """Make ``image`` (H×W×3 BGR uint8, overlays drawn) the current frame.

        The array is kept by reference (swapped in, not copied): the caller must not modify it
        afterwards (the serve sink hands over a fresh drawn copy each frame).
        """
        with self._cond:
            self._image = image
            self.seq += 1
            self._cond.notify_all()

    def latest(self) -> tuple[int, np.ndarray] | None:
        """``(seq, image)`` of the current frame, or None before the first."""
        with self._cond:
            return None if self._image is None else (self.seq, self._image)

    def jpeg(self, quality: int = 80) -> tuple[int, bytes] | None:
        """``(seq, JPEG bytes)`` of the current frame, or None before the first.

        Encoded with ``cv2.imencode`` once per frame and quality (later callers get the cached
        bytes). Concurrent callers encode once: the second waits for the first.
        """
        with self._encode_lock:
            with self._cond:
                image, seq, cached = self._image, self.seq, self._jpeg
            if image is None:
                return None
            if cached is not None and cached[0] == seq and cached[1] == quality:
                return seq, cached[2]
            import cv2

            ok, data = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
            if not ok:
                return None
            encoded = data.tobytes()
            self._jpeg = (seq, quality, encoded)
            return seq, encoded

    def wait(self, after_seq: int, timeout: float) -> int | None:
        """Block until a frame newer than ``after_seq`` exists, at most ``timeout`` seconds.

        Returns:
            The current ``seq`` (> after_seq), or None on timeout.
        """
        with self._cond:
            if self._cond.wait_for(lambda: self.seq > after_seq, timeout):
                return self.seq
            return None
