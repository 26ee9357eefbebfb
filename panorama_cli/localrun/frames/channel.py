"""The runner's side of the app <-> runner channel: a Unix control socket.

Wire format (:mod:`.wire`; the simulated SDK's ``panoramasdk/_client.py``
speaks the same): a frame is a 4-byte big-endian length, a 4-byte JSON header length, a UTF-8
JSON object (the message) and a region of raw bytes that the header references
(``{"$blob": [offset, length]}``). Nothing is unpickled. Caps, checked before anything is
allocated: a frame is at most 64 MiB (:data:`~panorama_cli.localrun.frames.wire.MAX_MESSAGE_BYTES`),
its header 4 MiB; at most 64 connections at once (``MAX_CONNECTIONS``; each app thread and
child process holds one); a CallArena at most 1 GiB, 2 GiB for all of a run's together.

Requests carry an ``id``; replies echo it. ``put`` and ``stats`` are one-way. Pixels never
travel on the socket: each (camera, consumer port) has a :class:`~.ring.FrameRing`, a
``multiprocessing.shared_memory`` segment of a few frame slots that the SDK maps with mmap
(``/dev/shm/<name>``) and exposes as numpy arrays.

Messages from the app (each checked against its op's JSON schema, ``wire.SCHEMAS``):
``hello {node, pid}`` (first), ``get {port, timeout}``, ``put {port, media: [{ref, labels,
rects}]}``, ``call {model, inputs, timeout}``, ``stats {stats: [[kind, seconds]]}``,
``arena {size}`` (a :class:`CallArena` for large model inputs). Model inputs and outputs travel
inline (``{"dtype", "shape", "data"}``, the bytes as a blob) or as references into the
session's CallArena (``{"dtype", "shape", "arena", "offset"}``), dtypes plain numbers only, never
as numpy pickles, so an app running an older numpy under ``--python`` reads them.

A message that breaks the format (over a cap, not JSON, an unknown op, a field of the wrong
type, an array whose bytes do not match its shape) gets one warning in the log naming the node,
an ``{"error": "protocol"}`` reply (the SDK raises it as RuntimeError) and the connection is
closed; the runner goes on.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from panorama_cli.errors import UserError
from panorama_cli.localrun.frames.wire import (
    INLINE_BYTES,
    MAX_CONNECTIONS,
    ProtocolError,
    align,
    arena_ref,
    array_end,
    check,
    checked_dtype,
    encode,
    nbytes,
    pack_array,
    parse,
    read_frame,
)

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

__all__ = [
    "INLINE_BYTES",
    "MAX_CONNECTIONS",
    "CallArena",
    "ControlServer",
    "ProtocolError",
    "Session",
    "align",
    "arena_ref",
    "array_end",
    "pack_array",
    "socket_path",
    "unpack_array",
]

#: AF_UNIX paths are limited to 108 bytes (sun_path), including the terminating NUL.
MAX_SOCKET_PATH = 100


class CallArena:
    """One session's shared-memory scratch for ``node.call`` arrays larger than
    :data:`INLINE_BYTES`: the app writes inputs from offset 0, the runner writes outputs
    after them; on the wire they are ``{"dtype", "shape", "arena": name, "offset"}``.

    Args:
        size: bytes (the caller enforces ``wire.MAX_ARENA_BYTES``).
    """

    def __init__(self, size: int):
        from multiprocessing import shared_memory

        self._shm = shared_memory.SharedMemory(create=True, size=size)
        self.name = self._shm.name
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

    def close(self) -> None:
        try:
            self._shm.close()
        except BufferError:  # a view is still alive; the unlink below still frees the name
            pass
        try:
            self._shm.unlink()
        except FileNotFoundError:
            pass


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


class Session:
    """One app process's connection (a node's entry process or a child it started).

    Attributes:
        node: the business-logic node named in ``hello`` (None before it).
        pid: the app process id (in the sandbox's pid namespace).
    """

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.node: str | None = None
        self.pid: int | None = None
        self._send_lock = threading.Lock()

    def __str__(self) -> str:
        if self.node is None:
            return "an app connection (before hello)"
        return f"node {self.node} (pid {self.pid})"

    def send(self, message: dict[str, Any]) -> None:
        """Send one message (thread-safe); a closed peer is ignored (the app has gone).

        Raises:
            TypeError, ValueError: ``message`` cannot travel (see ``wire.encode``).
        """
        data = encode(message)
        with self._send_lock:
            try:
                self.sock.sendall(data)
            except OSError:
                pass

    def reply(self, request: dict[str, Any], **fields: Any) -> None:
        """Answer ``request`` (echoes its id)."""
        self.send({"id": request.get("id"), **fields})

    def receive(self) -> dict[str, Any] | None:
        """The next message (schema-checked, blobs in place), or None when the app closed the
        connection.

        Raises:
            ProtocolError: the frame or message breaks the wire format.
            OSError: the socket failed.
        """
        frame = read_frame(self.sock)
        if frame is None:
            return None
        message = check(parse(frame[0]), frame[1])
        if self.node is None and message["op"] != "hello":
            raise ProtocolError(f"{message['op']} before hello", message.get("id"))
        return message

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


Handler = Callable[[Session, dict[str, Any]], None]


def socket_path(run_dir: Path) -> Path:
    """``run_dir/ctl.sock``, or a fresh temporary folder's when that path is too long."""
    candidate = Path(run_dir) / "ctl.sock"
    if len(os.fsencode(str(candidate))) <= MAX_SOCKET_PATH:
        return candidate
    return Path(tempfile.mkdtemp(prefix="pcr-")) / "ctl.sock"


def remove_stale_socket(path: Path) -> None:
    """Unlink ``path`` when it is a socket no process listens on (left by a killed run).

    Raises:
        UserError: a process listens on it (another run uses that run folder).
    """
    import stat

    try:
        if not stat.S_ISSOCK(path.lstat().st_mode):
            return
    except OSError:
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except ConnectionRefusedError:
        path.unlink(missing_ok=True)
        log.debug("run: removed the stale socket %s", path)
    except OSError:
        pass
    else:
        raise UserError(
            f"{path.parent}: another run is using this run folder",
            hint="wait for it to end, or pass another --output-dir",
        )
    finally:
        probe.close()


class ControlServer:
    """Accepts app connections on a Unix socket; one thread per connection calls ``handler``.

    At most ``max_connections`` at once: one more gets a protocol error reply and is closed.
    A message that breaks the wire format ends its connection (see the module docstring).

    Args:
        path: the socket path (see :func:`socket_path`).
        handler: called with (session, message) for every message, in order per connection;
            it answers through ``session.reply``. It may block (a ``get`` waiting for a frame).
        on_close: called with the session when its app process closes the connection.
        max_connections: connections open at once.
    """

    def __init__(
        self,
        path: Path,
        handler: Handler,
        on_close: Callable[[Session], None] | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ):
        self.path = Path(path)
        self._handler = handler
        self._on_close = on_close
        self._max = max_connections
        self._sessions: list[Session] = []
        self._refusing = False
        self._lock = threading.Lock()
        self._gone = threading.Condition(self._lock)  # a connection closed
        self._closed = False
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.path))
        self._listener.listen(64)
        self._thread = threading.Thread(target=self._accept, name="localrun-accept", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            session = Session(sock)
            with self._lock:
                if self._closed:
                    sock.close()
                    return
                full = len(self._sessions) >= self._max
                warn = full and not self._refusing  # one warning per burst of refusals
                self._refusing = full
                if not full:
                    self._sessions.append(session)
            if full:
                self._refuse(session, warn)
                continue
            threading.Thread(
                target=self._serve, args=(session,), name="localrun-session", daemon=True
            ).start()

    def _refuse(self, session: Session, warn: bool) -> None:
        reason = f"too many connections to the runner (the limit is {self._max})"
        (log.warning if warn else log.debug)("localrun: refusing a connection: %s", reason)
        session.sock.settimeout(1.0)
        session.send({"id": None, "error": "protocol", "message": reason})
        session.close()

    def _serve(self, session: Session) -> None:
        try:
            while True:
                try:
                    message = session.receive()
                except ProtocolError as exc:
                    if self._closed:  # the run's end cut the frame short
                        break
                    log.warning(
                        "localrun: %s sent a bad message, closing its connection: %s", session, exc
                    )
                    session.send({"id": exc.request_id, "error": "protocol", "message": str(exc)})
                    break
                except OSError as exc:  # includes a frame cut short: the app went away
                    log.debug("localrun: %s: %s", session, exc)
                    message = None
                if message is None:
                    break
                try:
                    self._handler(session, message)
                except Exception:  # a runner bug must not leave the app waiting silently
                    log.exception("localrun: handling %s failed", message.get("op"))
                    session.reply(message, error="runtime", message="panorama-cli runner error")
        finally:
            with self._lock:
                if session in self._sessions:
                    self._sessions.remove(session)
                self._gone.notify_all()
            if self._on_close is not None and not self._closed:
                self._on_close(session)
            session.close()

    def wait_closed(self, timeout_s: float) -> bool:
        """Wait until every connection has closed, which is after each of its messages was
        handled (an app's last ``put`` reaches the sink even when another of its threads'
        connections ended the node first).

        Returns:
            False when some were still open after ``timeout_s`` seconds.
        """
        deadline = time.monotonic() + timeout_s
        with self._gone:
            while self._sessions:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._gone.wait(left)
        return True

    def connections(self) -> int:
        """Connections open now."""
        with self._lock:
            return len(self._sessions)

    def close(self) -> None:
        """Stop accepting, close every connection and remove the socket file."""
        self._closed = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        if self.path.parent.name.startswith("pcr-"):
            try:
                self.path.parent.rmdir()
            except OSError:
                pass
