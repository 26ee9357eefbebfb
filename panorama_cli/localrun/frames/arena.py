"""Call arenas: the shared memory that carries large ``node.call`` arrays between an app
process and the runner.

One :class:`CallArena` per control connection that asks for one (``arena {size}``): anonymous
sealed memory (:class:`~.memfd.SharedMemory`) whose descriptor goes to that connection only,
with the reply that makes it. On the wire an array in it is ``{"dtype", "shape", "arena":
name, "offset"}`` (:mod:`.wire`); :func:`unpack_array` reads either form.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from panorama_cli.localrun.frames.memfd import SharedMemory
from panorama_cli.localrun.frames.wire import INLINE_BYTES, checked_dtype, nbytes

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

__all__ = ["INLINE_BYTES", "CallArena", "unpack_array"]


class CallArena:
    """One session's shared-memory scratch for ``node.call`` arrays larger than
    :data:`INLINE_BYTES`: the app writes inputs from offset 0, the runner writes outputs
    after them; on the wire they are ``{"dtype", "shape", "arena": name, "offset"}``. The
    memory is anonymous (:class:`~.memfd.SharedMemory`): its descriptor goes to the session's
    app with the reply that makes the arena, and nowhere else.

    Args:
        size: bytes (the caller enforces ``wire.MAX_ARENA_BYTES``).

    Attributes:
        name: the arena's id on the wire (``a-`` and 16 random hex digits).

    Raises:
        OSError: the memory cannot be made.
    """

    def __init__(self, size: int):
        import secrets

        self._shm = SharedMemory(size, "panorama-cli-arena")
        self.name = "a-" + secrets.token_hex(8)
        self.size = size

    def view(self, dtype: str, shape: tuple[int, ...], offset: int) -> np.ndarray:
        """The array at ``offset`` (a view into shared memory).

        Raises:
            ValueError: it does not fit in the arena.
        """
        import numpy as np

        end = int(offset) + nbytes(np.dtype(dtype).str, shape)
        if offset < 0 or end > self.size:
            raise ValueError(
                f"node.call(): an array of {end - offset} bytes at {offset} is outside the "
                f"{self.size}-byte shared memory"
            )
        return np.ndarray(shape, dtype=np.dtype(dtype), buffer=self._shm.buf, offset=offset)

    def dup_fd(self) -> int | None:
        """A new descriptor of the arena to send to its app (the caller closes it)."""
        return self._shm.dup_fd()

    def close(self) -> None:
        self._shm.close()


def unpack_array(packed: dict[str, Any], arena: CallArena | None) -> np.ndarray:
    """The ndarray of an inline array or arena reference (no copy: a view of the received
    bytes or of shared memory).

    Raises:
        ValueError: an arena reference that is not this session's arena or does not fit in
            it; bytes that do not match the dtype and shape.
        TypeError: a dtype outside ``wire.DTYPES``.
    """
    import numpy as np

    dtype = checked_dtype(packed["dtype"])
    shape = tuple(int(d) for d in packed["shape"])
    if "data" in packed:
        data = packed["data"]
        if memoryview(data).nbytes != nbytes(dtype, shape):
            raise ValueError(f"node.call(): {memoryview(data).nbytes} bytes for {dtype} {shape}")
        return np.frombuffer(data, dtype=np.dtype(dtype)).reshape(shape)
    name = packed["arena"]
    if arena is None or name != arena.name:
        raise ValueError(f"node.call(): unknown shared memory {name!r}")
    return arena.view(dtype, shape, int(packed["offset"]))
