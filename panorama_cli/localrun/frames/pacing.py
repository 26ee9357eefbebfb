"""Camera: one camera node's feed, a reader thread pacing frames from a FrameSource.

Two modes (``panorama-cli run`` default vs ``--fast``):

- **real time** (live-camera semantics): frames become available at the source's pace -- the
  pts of a file / image sequence against a monotonic clock started by :meth:`Camera.start`,
  or the arrival time of a live source. At most ``queue_size`` frames wait for the consumer;
  when a new frame arrives and the queue is full, the OLDEST waiting frame is dropped and
  counted (:attr:`CameraStats.dropped`), as a device's camera does when the app falls behind.
- **fast** (test semantics): every frame is delivered, in order, as fast as the consumer takes
  them; the reader decodes ahead into a bounded queue (:data:`FAST_QUEUE`) and waits when it is
  full. On a source that is not live, a consumer waiting for a frame is woken once
  :data:`FAST_BATCH` frames are queued (the first frame at once; the end of the feed, or a full
  queue, wakes it too), not for every frame: each wake-up costs the decoding thread a futex
  wake and a GIL hand-off, which on a VM is ~5% of decoding a 768x576 frame.

``max_frames`` (``--frames N``) ends the feed after N frames were *delivered*; end of input
(after ``--loop`` handling in the source) ends it otherwise. A source error is re-raised by
:meth:`Camera.get` once the frames read before it were delivered.

:meth:`Camera.read_into` lets the reader decode into buffers the consumer provides (the
runner's shared-memory ring slots), so a frame is never copied on its way to the app.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from panorama_cli.localrun.frames.frame import Frame, FrameSource
from panorama_cli.localrun.report import TimingStats

if TYPE_CHECKING:
    import numpy as np

#: Frames the reader decodes ahead of the consumer in fast mode.
FAST_QUEUE = 8
#: Fast mode, source not live: frames queued before a waiting consumer is woken (<= FAST_QUEUE).
FAST_BATCH = 4


@dataclass
class CameraStats:
    """Counters of one camera.

    Attributes:
        frames: frames delivered by :meth:`Camera.get`.
        dropped: frames read from the source and dropped (real-time mode, consumer behind).
        first_t, last_t: ``time.monotonic()`` seconds of the first / last delivered frame.
        read: seconds each ``source.read`` took (decoding; a live source's wait too).
        read_t: ``time.monotonic()`` seconds of the last frame read from the source.
        source: the camera's source, whose ``connected`` / ``reconnects`` these readings show
            (a :class:`~.reconnect.ReconnectingSource` has them; others count as connected).
    """

    frames: int = 0
    dropped: int = 0
    first_t: float | None = None
    last_t: float | None = None
    read: TimingStats = field(default_factory=TimingStats)
    read_t: float | None = None
    source: Any = field(default=None, repr=False, compare=False)

    @property
    def connected(self) -> bool:
        """Whether the source is connected now (True for files and sources without the
        notion)."""
        return bool(getattr(self.source, "connected", True))

    @property
    def reconnects(self) -> int:
        """Times the source came back after losing a stream that had delivered frames."""
        return int(getattr(self.source, "reconnects", 0))

    def up(self, within_s: float = 5.0, now: float | None = None) -> bool:
        """``panorama_camera_up``: connected, and a frame was read within the last
        ``within_s`` seconds (``now``: ``time.monotonic()`` by default)."""
        if not self.connected or self.read_t is None:
            return False
        return (time.monotonic() if now is None else now) - self.read_t <= within_s

    @property
    def fps(self) -> float:
        """Delivered frames per second from the first to the last delivered frame (0 if < 2)."""
        if self.frames < 2 or self.first_t is None or self.last_t is None:
            return 0.0
        span = self.last_t - self.first_t
        return (self.frames - 1) / span if span > 0 else 0.0


class Camera:
    """One camera node's feed: a reader thread pacing frames from a :class:`FrameSource`.

    Args:
        node: the camera node's name (thread name, messages).
        source: an open source; the camera closes it when the feed ends or on :meth:`stop`.
        fast: deliver every frame as fast as taken (no pacing, no drops).
        max_frames: end after this many delivered frames (None: end of input).
        queue_size: frames waiting at most in real-time mode (oldest dropped beyond); >= 1.
    """

    def __init__(
        self,
        node: str,
        source: FrameSource,
        *,
        fast: bool,
        max_frames: int | None,
        queue_size: int = 2,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        if max_frames is not None and max_frames < 0:
            raise ValueError("max_frames must be >= 0")
        self.node = node
        self.source = source
        self.fast = fast
        self.max_frames = max_frames
        self.stats = CameraStats(source=source)
        self._capacity = FAST_QUEUE if fast else queue_size
        # wake a waiting consumer at this queue length (1: for every frame)
        self._batch = FAST_BATCH if fast and not getattr(source, "live", False) else 1
        self._queue: collections.deque[Frame] = collections.deque()
        # One lock, two conditions (as queue.Queue): each side wakes only the one waiting.
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # frames waiting / feed ended (the consumer)
        self._not_full = threading.Condition(lock)  # room in the queue (the fast reader)
        self._stop = threading.Event()
        self._ended = False  # the reader has put its last frame
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._claim: Callable[[], np.ndarray | None] | None = None
        self._unclaim: Callable[[np.ndarray], None] | None = None
        self.start_t: float | None = None

    @property
    def lead(self) -> int:
        """Frames the reader holds at most beyond the one last delivered: the queue plus the
        one it is decoding (or waiting to queue)."""
        return self._capacity + 1

    def read_into(
        self,
        claim: Callable[[], np.ndarray | None],
        unclaim: Callable[[np.ndarray], None],
    ) -> None:
        """Decode every frame into a buffer from ``claim()`` (call before :meth:`start`).

        Args:
            claim: gives the buffer for the next frame (H×W×3 uint8, the source's frame size),
                or None to let the source allocate. The reader calls it from its thread.
            unclaim: takes back a frame's image that will not be delivered (dropped when the
                app is behind, or not decoded into the buffer: end of input, another size).
                Called with any frame's image, claimed or not.

        A delivered frame's buffer belongs to the consumer from then on; the camera holds at
        most :attr:`lead` claimed buffers that were not delivered.
        """
        if self._thread is not None:
            raise RuntimeError(f"camera {self.node} already started")
        self._claim, self._unclaim = claim, unclaim

    # -- reader side ----------------------------------------------------------------------
    def start(self) -> None:
        """Starts the reader thread; the real-time clock starts now."""
        if self._thread is not None:
            raise RuntimeError(f"camera {self.node} already started")
        self.start_t = time.monotonic()
        self._thread = threading.Thread(
            target=self._read_loop, name=f"camera-{self.node}", daemon=True
        )
        self._thread.start()

    def _read_loop(self) -> None:
        try:
            self._produce()
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer by get()
            with self._cond:
                self._error = exc
        finally:
            try:
                self.source.close()
            finally:
                with self._cond:
                    self._ended = True
                    self._cond.notify_all()

    def _produce(self) -> None:
        assert self.start_t is not None
        first_pts: float | None = None
        paced = not self.fast and not getattr(self.source, "live", False)
        read = 0
        while not self._stop.is_set():
            if self.fast and self.max_frames is not None and read >= self.max_frames:
                return
            started = time.perf_counter()
            frame = self._read()
            if frame is None:
                return
            self.stats.read.add(time.perf_counter() - started)
            self.stats.read_t = time.monotonic()
            read += 1
            if paced:
                if first_pts is None:
                    first_pts = frame.pts
                delay = self.start_t + (frame.pts - first_pts) - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
            if not self._offer(frame):
                return

    def _read(self) -> Frame | None:
        """The source's next frame, into a claimed buffer when :meth:`read_into` gave one."""
        out = self._claim() if self._claim is not None else None
        if out is None:
            return self.source.read()
        frame = self.source.read(out=out)
        if (frame is None or frame.image is not out) and self._unclaim is not None:
            self._unclaim(out)
        return frame

    def _offer(self, frame: Frame) -> bool:
        """Queues ``frame``; False when the feed is over (stopped or enough delivered)."""
        dropped = None
        with self._cond:
            if self.fast:
                while len(self._queue) >= self._capacity and not self._done_locked():
                    self._not_full.wait()
            if self._done_locked():
                return False
            if len(self._queue) >= self._capacity:
                dropped = self._queue.popleft()
                self.stats.dropped += 1
            self._queue.append(frame)
            if len(self._queue) >= self._batch or not self.stats.frames:
                self._cond.notify()
        if dropped is not None and self._unclaim is not None:
            self._unclaim(dropped.image)
        return True

    def _done_locked(self) -> bool:
        return self._stop.is_set() or (
            self.max_frames is not None and self.stats.frames >= self.max_frames
        )

    # -- consumer side ----------------------------------------------------------------------
    def get(self, timeout: float | None = None) -> Frame | None:
        """The next frame, or None when the feed has ended.

        Args:
            timeout: seconds to wait for a frame; None waits as long as it takes.

        Raises:
            TimeoutError: no frame within ``timeout``.
            UserError (or what the source raised): the source broke; raised after the frames
                read before the failure were delivered.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self.max_frames is not None and self.stats.frames >= self.max_frames:
                    return None
                if self._queue:
                    frame = self._queue.popleft()
                    now = time.monotonic()
                    stats = self.stats
                    stats.frames += 1
                    if stats.first_t is None:
                        stats.first_t = now
                    stats.last_t = now
                    self._not_full.notify()
                    return frame
                if self._ended or self._stop.is_set():
                    if self._error is not None and not self._stop.is_set():
                        raise self._error
                    return None
                if deadline is None:
                    self._cond.wait()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError(f"camera {self.node}: no frame within {timeout:g} s")
                    self._cond.wait(remaining)

    @property
    def ended(self) -> bool:
        """True when no more frames will come (end of input, max_frames, error or stop)."""
        with self._cond:
            return (self._ended and not self._queue) or self._done_locked()

    @property
    def error(self) -> BaseException | None:
        """What broke the source, if anything."""
        return self._error

    @property
    def connected(self) -> bool:
        """Whether the source is connected now (:attr:`CameraStats.connected`)."""
        return self.stats.connected

    @property
    def reconnects(self) -> int:
        """The source's reconnects so far (:attr:`CameraStats.reconnects`)."""
        return self.stats.reconnects

    def stop(self, timeout: float = 2.0) -> None:
        """Ends the feed and waits up to ``timeout`` seconds for the reader to close the source.

        A reader blocked inside a live source's read (at most its read timeout) finishes in
        the background; it is a daemon thread and closes the source when it returns.
        """
        self._stop.set()
        interrupt = getattr(self.source, "interrupt", None)
        if interrupt is not None:  # e.g. an RTSP source in the middle of reconnecting
            interrupt()
        with self._cond:
            self._queue.clear()
            self._cond.notify_all()
            self._not_full.notify_all()
        if self._thread is None:
            self.source.close()
            return
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
