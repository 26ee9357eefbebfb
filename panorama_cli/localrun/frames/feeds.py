"""The runner's per-stream plumbing: camera fan-out, HDMI encoder threads, SDK timings.

:class:`CameraFeed` shares one camera among the ports it feeds (started on first use);
:class:`SinkWorker` encodes one stream's HDMI frames on its own thread, holding each frame's
ring slot until it is written; :class:`NodeStats` collects what the SDK measured.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from typing import Any

from panorama_cli.localrun.frames.ring import FrameRing
from panorama_cli.localrun.frames.sinks import as_list
from panorama_cli.localrun.report import TimingStats

_POLL_S = 0.2
_QUEUE_FRAMES = 4


class Ended(Exception):
    """A producer has no more frames for this consumer."""


class CameraFeed:
    """A camera shared by the ports it feeds: started on first use, frames fanned out.

    Attributes:
        last_taken: ``{(node, port): time.monotonic() seconds}`` of the last frame each
            consumer took (absent: none yet); serve's stall check reads it.
    """

    def __init__(self, camera: Any, consumers: list[tuple[str, str]]):
        self.camera = camera
        self.node: str = camera.node
        self.uri: str = camera.source.uri
        self.fps: float = camera.source.fps or 10.0
        self._started = False
        self._lock = threading.Lock()
        self._backlog: dict[tuple[str, str], collections.deque[Any]] = {
            c: collections.deque(maxlen=_QUEUE_FRAMES) for c in consumers
        }
        self.last_taken: dict[tuple[str, str], float] = {}

    @property
    def started(self) -> bool:
        """Whether the camera has started (on the first :meth:`next`)."""
        return self._started

    def sole_consumer(self) -> tuple[str, str] | None:
        """The (node, port) this camera feeds when it feeds only one, else None."""
        return next(iter(self._backlog)) if len(self._backlog) == 1 else None

    def next(self, consumer: tuple[str, str], deadline: float | None, stop: threading.Event):
        """The next frame for ``consumer`` (node, port).

        Raises:
            Ended: the feed has ended. TimeoutError: ``deadline`` (monotonic) passed.
        """
        while not stop.is_set():
            with self._lock:
                if not self._started:
                    self._started = True
                    self.camera.start()
                backlog = self._backlog.get(consumer)
                if backlog:
                    self.last_taken[consumer] = time.monotonic()
                    return backlog.popleft()
            wait = _POLL_S if deadline is None else min(_POLL_S, deadline - time.monotonic())
            if wait <= 0:
                raise TimeoutError(f"no frame from camera {self.node}")
            try:
                frame = self.camera.get(timeout=wait)
            except TimeoutError:
                continue
            if frame is None:
                raise Ended(self.node)
            with self._lock:
                for other, pending in self._backlog.items():
                    if other != consumer:
                        pending.append(frame)
                self.last_taken[consumer] = time.monotonic()
            return frame
        raise Ended(self.node)


class NodeStats:
    """Seconds spent in get / put / call, as the SDK measured them (streaming statistics:
    bounded memory however long the run). Malformed pairs are ignored."""

    def __init__(self) -> None:
        self.samples: dict[str, TimingStats] = {k: TimingStats() for k in ("get", "put", "call")}

    def add(self, pairs: Any) -> None:
        try:
            for kind, seconds in pairs or ():
                if kind in self.samples:
                    self.samples[kind].add(float(seconds))
        except (TypeError, ValueError):
            return


def _tuples(items: Any) -> list[Any]:
    """The overlays as tuples (``(l, t, r, b)``, ``(text, x, y)``) whatever the wire made of
    them; a malformed one as it came."""
    return [tuple(x) if isinstance(x, (list, tuple)) else x for x in as_list(items)]


class SinkWorker:
    """Encodes one stream's HDMI frames on its own thread (the app's put returns at once)."""

    def __init__(self, sink: Any, keep: list[Any] | None):
        self.sink = sink
        self.keep = keep
        self.error: BaseException | None = None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=_QUEUE_FRAMES)
        self._thread = threading.Thread(target=self._work, name="localrun-hdmi", daemon=True)
        self._thread.start()

    def submit(self, ring: FrameRing, slot: int, rects: list, labels: list) -> None:
        ring.hold(slot)
        self._queue.put((ring, slot, rects, labels))

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            ring, slot, rects, labels = item
            try:
                image = ring.view(slot)
                if self.keep is not None:
                    self.keep.append((image.copy(), _tuples(rects), _tuples(labels)))
                if self.error is None:
                    self.sink.write(image, rects, labels)
            except BaseException as exc:  # noqa: BLE001 - reported at the end of the run
                self.error = exc
            finally:
                ring.release(slot)

    def close(self) -> dict[str, Any]:
        self._queue.put(None)
        self._thread.join()
        return self.sink.close()
