"""The runner's side of the app <-> runner channel: a Unix control socket.

Wire format (:mod:`.wire`; the simulated SDK's ``panoramasdk/_client.py``
speaks the same): a frame is a 4-byte big-endian length, a 4-byte JSON header length, a UTF-8
JSON object (the message) and a region of raw bytes that the header references
(``{"$blob": [offset, length]}``). Nothing is unpickled. Caps, checked before anything is
allocated: a frame is at most 64 MiB (:data:`~panorama_cli.localrun.frames.wire.MAX_MESSAGE_BYTES`),
64 KiB before hello, its header 4 MiB; a CallArena at most 1 GiB, 2 GiB for all of a run's
together.

Who is connected: the first message is ``hello {node, pid, token}``, and ``token`` must be the
node's own credential (:mod:`.identity`: the runner gave each node's processes only theirs), so
an app cannot speak as another node; a hello naming a node that is not a business-logic node of
the graph, or with a token that is not that node's (or none), is refused with one warning and the
connection is closed. A connection has :data:`~.wire.HELLO_TIMEOUT_S` to say hello; at most
:data:`~.wire.MAX_PENDING_CONNECTIONS` per peer uid (the kernel's, not a claim) may be waiting
to, and each node may hold
:data:`~.wire.MAX_NODE_CONNECTIONS` after its hello (each app thread and child process holds
one), so one node at its limit leaves every other node its own.

Requests carry an ``id``; replies echo it. ``put`` and ``stats`` are one-way. Pixels never
travel on the socket: each (camera, consumer port) has a :class:`~.ring.FrameRing`, anonymous
shared memory whose file descriptor the runner attaches (``SCM_RIGHTS``) to the first reply on
a connection that references it; the SDK maps it and exposes its slots as numpy arrays. Nothing
is in ``/dev/shm``.

Messages from the app (each checked against its op's JSON schema, ``wire.SCHEMAS``):
``hello {node, pid, token}`` (first), ``get {port, timeout}``, ``put {port, media: [{ref,
labels, rects}]}``, ``call {model, inputs, timeout}``, ``stats {stats: [[kind, seconds]]}``,
``arena {size}`` (a :class:`CallArena` for large model inputs, its descriptor attached to the
reply), ``ring {ring}`` (a ring's descriptor again, for a connection that has not been sent it:
another thread's, or a child process's). Model inputs and outputs travel inline (``{"dtype",
"shape", "data"}``, the bytes as a blob) or as references into the session's CallArena
(``{"dtype", "shape", "arena", "offset"}``), dtypes plain numbers only, never as numpy pickles,
so an app running an older numpy under ``--python`` reads them.

A message that breaks the format (over a cap, not JSON, an unknown op, a field of the wrong
type, an array whose bytes do not match its shape) gets one warning in the log naming the node,
an ``{"error": "protocol"}`` reply (the SDK raises it as RuntimeError) and the connection is
closed; the runner goes on.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from panorama_cli.errors import UserError
from panorama_cli.localrun.frames import identity
from panorama_cli.localrun.frames.arena import CallArena, unpack_array
from panorama_cli.localrun.frames.memfd import send_with_fds
from panorama_cli.localrun.frames.wire import (
    HELLO_TIMEOUT_S,
    INLINE_BYTES,
    MAX_NODE_CONNECTIONS,
    MAX_PENDING_CONNECTIONS,
    ProtocolError,
    align,
    arena_ref,
    array_end,
    check,
    encode,
    pack_array,
    parse,
    read_frame,
)

log = logging.getLogger(__name__)

__all__ = [
    "INLINE_BYTES",
    "MAX_NODE_CONNECTIONS",
    "MAX_PENDING_CONNECTIONS",
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
#: The largest frame read before hello (a hello is a few hundred bytes).
MAX_HELLO_BYTES = 64 << 10
#: How many peer uids' worth of connections may wait to say hello at once, in all.
PENDING_UIDS = 8
#: Seconds between two warnings of the same kind (refused hellos, full limits).
WARN_EVERY_S = 60.0


class Session:
    """One app process's connection (a node's entry process or a child it started).

    Attributes:
        node: the business-logic node this connection proved it is (its hello's token);
            None before.
        pid: the app process id as its hello gave it (its own PID namespace's).
        peer_pid: the peer's process id as the kernel gives it (``SO_PEERCRED``; 0 when the
            peer is in a PID namespace the runner does not see).
        peer_uid: the peer's user id as the kernel gives it (``SO_PEERCRED``; -1 unknown):
            each node of a root runner has its own uid, so connections waiting to say hello
            are bounded per uid and one app cannot use up another's.
        sent: names of the shared memory (rings, arena) whose descriptors this connection
            has been sent.
    """

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.node: str | None = None
        self.pid: int | None = None
        self.sent: set[str] = set()
        self._send_lock = threading.Lock()
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            self.peer_pid, self.peer_uid, _ = struct.unpack("3i", creds)
        except OSError:
            self.peer_pid, self.peer_uid = 0, -1

    def __str__(self) -> str:
        if self.node is None:
            return f"an app connection (peer pid {self.peer_pid}, before hello)"
        return f"node {self.node} (pid {self.pid})"

    def send(self, message: dict[str, Any], fds: list[int] | None = None) -> None:
        """Send one message (thread-safe), ``fds`` attached to it; ``fds`` are closed
        afterwards whatever happens (this call owns them). A closed peer is ignored (the app
        has gone).

        Raises:
            TypeError, ValueError: ``message`` cannot travel (see ``wire.encode``).
        """
        try:
            data = encode(message)
            with self._send_lock:
                try:
                    send_with_fds(self.sock, data, fds or [])
                except OSError:
                    pass
        finally:
            for fd in fds or ():
                os.close(fd)

    def reply(self, request: dict[str, Any], **fields: Any) -> None:
        """Answer ``request`` (echoes its id)."""
        self.send({"id": request.get("id"), **fields})

    def reply_with(
        self, request: dict[str, Any], memory: list[tuple[str, Any]], **fields: Any
    ) -> None:
        """Answer ``request`` with the descriptors of ``memory`` attached: (name, a
        FrameRing or CallArena) pairs; ``fds`` in the reply lists the names whose descriptors
        came (one that closed meanwhile is left out: the SDK asks again and is told)."""
        names: list[str] = []
        fds: list[int] = []
        try:
            for name, shared in memory:
                fd = shared.dup_fd()
                if fd is not None:
                    names.append(name)
                    fds.append(fd)
        except OSError:  # out of descriptors: send what was made
            log.debug("localrun: %s: no descriptor for shared memory", self)
        if names:
            fields["fds"] = names
            self.sent.update(names)
        self.send({"id": request.get("id"), **fields}, fds)

    def receive(self, limit: int | None = None) -> dict[str, Any] | None:
        """The next message (schema-checked, blobs in place), or None when the app closed the
        connection.

        Args:
            limit: the largest frame taken (bytes; None: ``wire.MAX_MESSAGE_BYTES``).

        Raises:
            ProtocolError: the frame or message breaks the wire format.
            OSError: the socket failed (TimeoutError: its timeout expired).
        """
        frame = read_frame(self.sock) if limit is None else read_frame(self.sock, limit)
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
    """Accepts app connections on a Unix socket; one thread per connection calls ``handler``
    for each message once the connection has proved which node it is (see the module
    docstring).

    Limits: ``max_pending`` connections waiting to say hello per peer uid (one more is
    refused at once; the kernel's ``SO_PEERCRED``, so a node with its own uid cannot fill
    another's share) and ``max_pending * PENDING_UIDS`` in all,
    ``hello_timeout_s`` to say it, ``max_per_node`` per node after hello (a hello over it is
    refused); so at most ``max_pending * PENDING_UIDS + max_per_node * len(nodes)`` at once.
    A refusal gets a protocol error reply, the connection is closed, and one warning a minute
    per kind says so. A message that breaks the wire format ends its connection.

    Args:
        path: the socket path (see :func:`socket_path`).
        handler: called with (session, message) for every message, in order per connection
            (the hello too, once it is admitted); it answers through ``session.reply``. It
            may block (a ``get`` waiting for a frame).
        on_close: called with the session when its app process closes the connection.
        key: the run's control key; a node's token is ``identity.node_token(key, node)``.
        nodes: the business-logic nodes that may connect.
        max_per_node, max_pending, hello_timeout_s: the limits above.

    Raises:
        OSError: the socket cannot be made.
    """

    def __init__(
        self,
        path: Path,
        handler: Handler,
        on_close: Callable[[Session], None] | None = None,
        *,
        key: bytes,
        nodes: Collection[str],
        max_per_node: int = MAX_NODE_CONNECTIONS,
        max_pending: int = MAX_PENDING_CONNECTIONS,
        hello_timeout_s: float = HELLO_TIMEOUT_S,
    ):
        self.path = Path(path)
        self._handler = handler
        self._on_close = on_close
        self._key = key
        self._nodes = frozenset(nodes)
        self._max_per_node = max_per_node
        self._max_pending = max_pending
        self._hello_timeout_s = hello_timeout_s
        self._sessions: list[Session] = []
        self._pending = 0
        self._pending_by_uid: dict[int, int] = {}
        self._per_node: dict[str, int] = {}
        self._warned: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._gone = threading.Condition(self._lock)  # a connection closed
        self._closed = False
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.path))
        self._listener.listen(64)
        self._thread = threading.Thread(target=self._accept, name="localrun-accept", daemon=True)
        self._thread.start()

    def _warn(self, kind: str, subject: str, text: str, *args: Any) -> None:
        """A warning, at most one per :data:`WARN_EVERY_S` per (kind, subject); debug else."""
        now = time.monotonic()
        with self._lock:
            last = self._warned.get((kind, subject))
            loud = last is None or now - last >= WARN_EVERY_S
            if loud:
                if len(self._warned) > 1024:  # subjects are what clients claim: bounded
                    self._warned.clear()
                self._warned[(kind, subject)] = now
        (log.warning if loud else log.debug)(text, *args)

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
                uid = session.peer_uid
                mine = self._pending_by_uid.get(uid, 0)
                full = (
                    mine >= self._max_pending or self._pending >= self._max_pending * PENDING_UIDS
                )
                if not full:
                    self._pending += 1
                    self._pending_by_uid[uid] = mine + 1
                    self._sessions.append(session)
            if full:
                reason = (
                    f"too many connections waiting to say hello (the limit is {self._max_pending})"
                )
                self._warn("pending", "", "localrun: refusing a connection: %s", reason)
                self._refuse(session, None, reason)
                continue
            threading.Thread(
                target=self._serve, args=(session,), name="localrun-session", daemon=True
            ).start()

    @staticmethod
    def _refuse(session: Session, request_id: Any, reason: str) -> None:
        session.sock.settimeout(1.0)
        session.send({"id": request_id, "error": "protocol", "message": reason})
        session.close()

    def _admit(self, session: Session, message: dict[str, Any]) -> str | None:
        """Make ``session`` the node its hello names, or say why not (None: admitted)."""
        node = message["node"]
        if node not in self._nodes:
            return f"{node!r} is not a business-logic node of this application graph"
        token = message.get("token")
        if token is None:
            return f"the hello for node {node} has no token ({identity.TOKEN_ENV} is unset)"
        if not identity.token_matches(self._key, node, token):
            return f"the hello's token is not node {node}'s"
        with self._lock:
            held = self._per_node.get(node, 0)
            if held >= self._max_per_node:
                return (
                    f"too many connections of node {node} (the limit is {self._max_per_node} "
                    f"per node: one per thread and child process)"
                )
            self._per_node[node] = held + 1
            self._unpend(session)
            session.node, session.pid = node, message.get("pid")
        return None

    def _unpend(self, session: Session) -> None:
        """One fewer connection waiting to say hello (the caller holds the lock)."""
        self._pending -= 1
        left = self._pending_by_uid.get(session.peer_uid, 1) - 1
        if left > 0:
            self._pending_by_uid[session.peer_uid] = left
        else:
            self._pending_by_uid.pop(session.peer_uid, None)

    def _hello(self, session: Session) -> dict[str, Any] | None:
        """The admitted hello of a new connection, or None (refused, silent, gone)."""
        session.sock.settimeout(self._hello_timeout_s)
        try:
            message = session.receive(MAX_HELLO_BYTES)
        except TimeoutError:
            self._warn(
                "silent",
                "",
                "localrun: closing %s: no hello within %.0f s",
                session,
                self._hello_timeout_s,
            )
            return None
        except ProtocolError as exc:
            if not self._closed:
                log.warning("localrun: %s sent a bad message, closing it: %s", session, exc)
                self._refuse(session, exc.request_id, str(exc))
            return None
        except OSError as exc:  # the app went away
            log.debug("localrun: %s: %s", session, exc)
            return None
        if message is None:
            return None
        reason = self._admit(session, message)
        if reason is not None:
            kind = "full" if reason.startswith("too many") else "refused"
            claimed = str(message["node"])
            self._warn(
                kind, claimed, "localrun: refused a hello as %r from %s: %s", claimed[:80],
                session, reason,
            )  # fmt: skip
            self._refuse(session, message.get("id"), reason)
            return None
        session.sock.settimeout(None)
        return message

    def _serve(self, session: Session) -> None:
        try:
            message = self._hello(session)
            while message is not None:
                try:
                    self._handler(session, message)
                except Exception:  # a runner bug must not leave the app waiting silently
                    log.exception("localrun: handling %s failed", message.get("op"))
                    session.reply(message, error="runtime", message="panorama-cli runner error")
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
                    break
        finally:
            with self._lock:
                if session in self._sessions:
                    self._sessions.remove(session)
                    if session.node is None:
                        self._unpend(session)
                    else:
                        self._per_node[session.node] -= 1
                self._gone.notify_all()
            if self._on_close is not None and not self._closed and session.node is not None:
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

    def connections(self, node: str | None = None) -> int:
        """Connections open now (of ``node`` after its hello; None: all, hello or not)."""
        with self._lock:
            if node is None:
                return len(self._sessions)
            return self._per_node.get(node, 0)

    def close(self) -> None:
        """Stop accepting, close every connection and remove the socket file."""
        self._closed = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            sessions = list(self._sessions)
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
