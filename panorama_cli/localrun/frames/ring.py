"""Frame rings: the shared memory that carries pixels between the runner and the apps.

Each (camera, consumer port) has one :class:`FrameRing`, anonymous sealed memory
(:class:`~.memfd.SharedMemory`) of a few frame slots. Nothing names it in ``/dev/shm``: the
runner hands its descriptor to an app over that app's own control connection, once per
connection (:mod:`.channel`, :mod:`panorama_cli.localrun.routing`), and only to the node the
ring's frames were delivered to; messages then name a ring by its random ``name`` and a slot.
"""

from __future__ import annotations

import collections
import logging
import secrets
import threading
from typing import TYPE_CHECKING

from panorama_cli.localrun.frames.memfd import SharedMemory

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)


class FrameRing:
    """``slots`` frames of one shape in one anonymous shared memory segment.

    A slot is filled by :meth:`write` (a copy), or in place by a decoder given
    :meth:`claim_view` (:meth:`slot_of` then finds its slot), and read in place by the app
    (the SDK maps the same segment) and by the sinks. Slots are reused least recently claimed
    first, skipping slots that a sink still holds; :meth:`unclaim` returns a slot whose frame
    was never delivered (dropped) to the front, so drops do not shorten how long delivered
    frames stay valid.

    Args:
        shape: (height, width, 3) of the frames, pixels.
        slots: how many frames the ring holds; a frame's pixels stay valid until ``slots``
            more frames have been written.
        stream: the camera node whose frames the ring holds (the media's stream_id).

    Attributes:
        name: the ring's id on the wire (``r-`` and 16 random hex digits: unique across a
            serve's generations, so an app's cached mapping never stands for another ring).
        stamps: per slot, the (seconds, microseconds) time stamp of the frame in it.

    Raises:
        OSError: the memory cannot be made.
    """

    def __init__(self, shape: tuple[int, ...], slots: int = 8, stream: str = ""):
        self.shape = tuple(shape)
        self.frame_bytes = 1
        for dim in self.shape:
            self.frame_bytes *= int(dim)
        self.slots = slots
        self.stream = stream
        self.stamps: list[tuple[int, int]] = [(0, 0)] * slots
        self.name = "r-" + secrets.token_hex(8)
        self._shm = SharedMemory(self.frame_bytes * slots, f"panorama-cli-ring-{stream}")
        self._order = collections.deque(range(slots))  # least recently claimed first
        self._held = [0] * slots
        self._cond = threading.Condition()
        self._views = [self._view(i) for i in range(slots)]
        self._slot_by_id = {id(view): slot for slot, view in enumerate(self._views)}
        self.closed = False

    def _view(self, slot: int) -> np.ndarray:
        import numpy as np

        return np.ndarray(
            self.shape, dtype=np.uint8, buffer=self._shm.buf, offset=slot * self.frame_bytes
        )

    def claim(self) -> int:
        """The slot for the next frame: the least recently claimed one no sink holds (waits
        up to 5 s for a sink to release one when all are held)."""
        with self._cond:
            for _ in range(2):
                for position, slot in enumerate(self._order):
                    if not self._held[slot]:
                        del self._order[position]
                        self._order.append(slot)
                        return slot
                self._cond.wait_for(lambda: not all(self._held), timeout=5.0)
            slot = self._order.popleft()  # every slot still held: overwrite the oldest
            self._order.append(slot)
            return slot

    def claim_view(self) -> np.ndarray | None:
        """The view of :meth:`claim`'s slot, for a decoder to fill; None once closed."""
        if self.closed:
            return None
        try:
            return self._views[self.claim()]
        except IndexError:  # closed meanwhile
            return None

    def unclaim(self, image: np.ndarray) -> None:
        """``image``'s slot (if it is one of this ring's) is reused first: its frame was
        never delivered."""
        slot = self.slot_of(image)
        if slot is not None:
            with self._cond:
                self._order.remove(slot)
                self._order.appendleft(slot)

    def slot_of(self, image: np.ndarray) -> int | None:
        """The slot whose view (as :meth:`claim_view` gave it) ``image`` is, or None."""
        slot = self._slot_by_id.get(id(image))
        views = self._views
        return slot if slot is not None and slot < len(views) and views[slot] is image else None

    def write(self, image: np.ndarray) -> int:
        """Copy ``image`` (``shape``, uint8) into the next free slot; returns the slot."""
        slot = self.claim()
        self._views[slot][...] = image
        return slot

    def view(self, slot: int) -> np.ndarray:
        """The frame in ``slot`` (a view into shared memory)."""
        return self._views[slot]

    def dup_fd(self) -> int | None:
        """A new descriptor of the ring's memory to send to an app (the caller closes it);
        None once closed."""
        return self._shm.dup_fd()

    def offset(self, slot: int) -> int:
        return slot * self.frame_bytes

    def hold(self, slot: int) -> None:
        """Keep ``slot`` from being overwritten until :meth:`release` (a sink encodes it)."""
        with self._cond:
            self._held[slot] += 1

    def release(self, slot: int) -> None:
        with self._cond:
            self._held[slot] = max(0, self._held[slot] - 1)
            self._cond.notify_all()

    def close(self) -> None:
        """Free the segment (the app processes have ended; an app's own mapping stays valid
        until it unmaps)."""
        self.closed = True
        self._views = []
        self._shm.close()
