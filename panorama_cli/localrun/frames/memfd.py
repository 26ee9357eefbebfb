"""Anonymous shared memory that travels as a file descriptor, never as a name.

Frame rings and call arenas are ``memfd_create`` files: nothing under ``/dev/shm`` names them,
so an app maps only the memory the runner hands it over its own control connection (an
``SCM_RIGHTS`` message, :func:`send_with_fds`), and nothing is left behind when the runner
ends (the memory goes with its last descriptor and mapping). Each file is sealed against
growing and shrinking, and the seals themselves are sealed: an app that holds the descriptor
cannot truncate the memory under the runner's mapping (which would kill the runner with
SIGBUS) nor add a seal of its own.
"""

from __future__ import annotations

import array
import fcntl
import logging
import mmap
import os
import socket
import threading

log = logging.getLogger(__name__)

#: Seals of every segment: its size is fixed, and no seal can be added after these.
SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL


class SharedMemory:
    """``size`` bytes of sealed anonymous memory, mapped read-write in this process.

    Args:
        size: bytes (> 0).
        label: shown in ``/proc/<pid>/maps`` and ``/proc/<pid>/fd`` (``memfd:<label>``);
            not a name anything can open.

    Attributes:
        buf: the mapping (``mmap.mmap``; numpy arrays are made on it).
        size: bytes.

    Raises:
        OSError: the memory cannot be made (no memory, too many open files).
    """

    def __init__(self, size: int, label: str = "panorama-cli"):
        self.size = int(size)
        fd = os.memfd_create(label[:200], os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(fd, self.size)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)
            self.buf = mmap.mmap(fd, self.size)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._lock = threading.Lock()

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def dup_fd(self) -> int | None:
        """A new descriptor of the memory for one send (the caller closes it), or None once
        closed. A copy, so that :meth:`close` never races a send into handing out a number
        that meanwhile names another file."""
        with self._lock:
            return None if self._fd < 0 else os.dup(self._fd)

    def close(self) -> None:
        """Close the descriptor and unmap (when no numpy view of the mapping is still alive;
        else the mapping goes with the last view). Idempotent."""
        with self._lock:
            fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)
        try:
            self.buf.close()
        except BufferError:  # a view still exported (a sink mid-write): freed with it
            pass


def send_with_fds(sock: socket.socket, data: bytes, fds: list[int]) -> None:
    """Send all of ``data``, the descriptors ``fds`` attached to its first byte (one
    ``SCM_RIGHTS`` message; the receiver gets its own copies).

    Raises:
        OSError: the socket failed.
    """
    if not fds:
        sock.sendall(data)
        return
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
    sent = sock.sendmsg([data], ancillary)
    if sent < len(data):
        sock.sendall(memoryview(data)[sent:])
