"""The connections of an app's threads to the panorama-cli runner (simulated SDK internals).

Wire format (the runner's panorama_cli.localrun.frames.wire, which checks it): a frame is a 4-byte
big-endian length N (at most 64 MiB), a 4-byte length H of a UTF-8 JSON header, the header
(the message: dicts, lists, strings, numbers, booleans, null) and N - 4 - H bytes of blobs that
the header references as {"$blob": [offset, length]} (bytes values; numpy arrays are
{"dtype", "shape", "data": blob} or {"dtype", "shape", "arena", "offset"}). Nothing is pickled.
A message the runner refuses gets {"error": "protocol"} (raised here as RuntimeError) and the
connection is closed.

The hello names this node and carries its token (PANORAMA_LOCALRUN_TOKEN, or the file that
PANORAMA_LOCALRUN_TOKEN_FILE names): the runner refuses a hello whose token is not the node's.

Pixels never travel on the socket: frames live in anonymous shared memory (frame rings) whose
file descriptors the runner attaches (SCM_RIGHTS) to a reply, named in its "fds" field; they
are mapped here with mmap once per process (:data:`_MAPS`, at most :data:`MAX_MAPS`) and
exposed as numpy arrays. Nothing is opened by name, nothing is in /dev/shm. This module must
stay importable on Python >= 3.7 with only numpy installed, and must not import the runner.
"""

import array
import json
import mmap
import os
import socket
import struct
import threading
import time

SOCKET_ENV = "PANORAMA_LOCALRUN_SOCKET"
NODE_ENV = "PANORAMA_LOCALRUN_NODE"
TOKEN_ENV = "PANORAMA_LOCALRUN_TOKEN"
TOKEN_FILE_ENV = "PANORAMA_LOCALRUN_TOKEN_FILE"
#: Descriptors taken from one message (the runner's panorama_cli.localrun.frames.wire.MAX_FDS).
MAX_FDS = 16
#: Shared memory mappings this process keeps (frame rings by name; the oldest goes first).
MAX_MAPS = 32
_ANCILLARY = socket.CMSG_SPACE(MAX_FDS * struct.calcsize("i"))
_CLOEXEC = getattr(socket, "MSG_CMSG_CLOEXEC", 0)
_WORD = struct.Struct(">I")
#: The runner's limit on one frame (panorama_cli.localrun.frames.wire.MAX_MESSAGE_BYTES).
MAX_MESSAGE_BYTES = 64 << 20
#: numpy type strings the runner takes (panorama_cli.localrun.frames.wire.DTYPES): plain numbers.
DTYPES = frozenset(
    order + code
    for code in ("i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16")
    for order in "<>"
) | {"|b1", "|i1", "|u1"}
_ERRORS = {
    "value": ValueError,
    "type": TypeError,
    "key": KeyError,
    "attribute": AttributeError,
    "runtime": RuntimeError,
}


class NotUnderRunner(RuntimeError):
    """panoramasdk was used outside ``panorama-cli run``."""


def _align(size):
    return (size + 63) & ~63


def encode(message):
    """``message`` as one frame; bytes-like values anywhere in it become blobs.

    Raises:
        ValueError: the frame would be over the runner's limit.
        TypeError: a value JSON cannot hold.
    """
    blobs = []
    end = [0]

    def default(value):
        if isinstance(value, (bytes, bytearray, memoryview)):
            start = end[0]
            length = memoryview(value).nbytes
            blobs.append(value)
            end[0] = _align(start + length)
            return {"$blob": [start, length]}
        if hasattr(value, "item") and getattr(value, "shape", None) == ():  # numpy scalar
            return value.item()
        raise TypeError("{} cannot travel to the runner".format(type(value).__name__))

    header = json.dumps(message, separators=(",", ":"), default=default).encode("utf-8")
    parts = [b"", _WORD.pack(len(header)), header]
    offset = 0
    for blob in blobs:
        view = memoryview(blob).cast("B")
        parts.append(view)
        offset += view.nbytes
        parts.append(bytes(_align(offset) - offset))
        offset = _align(offset)
    total = 4 + len(header) + offset
    if total > MAX_MESSAGE_BYTES:
        raise ValueError(
            "a message of {} bytes is over the panorama-cli runner's limit of {} bytes".format(
                total, MAX_MESSAGE_BYTES
            )
        )
    parts[0] = _WORD.pack(total)
    return b"".join(parts)


def _resolve(value, body):
    if isinstance(value, dict):
        if len(value) == 1 and "$blob" in value:
            start, length = value["$blob"]
            return body[start : start + length]
        return {key: _resolve(item, body) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, body) for item in value]
    return value


def decode(payload):
    """The message of a frame's payload (what follows its length), blobs as memoryviews."""
    (size,) = _WORD.unpack_from(payload, 0)
    message = json.loads(bytes(payload[4 : 4 + size]).decode("utf-8"))
    body = memoryview(payload)[4 + size :]
    return _resolve(message, body) if len(body) else message


def _recv_exact(sock, size, fds):
    """Exactly ``size`` bytes; descriptors that come with them are appended to ``fds``."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        count, ancillary, _flags, _address = sock.recvmsg_into([view[got:]], _ANCILLARY, _CLOEXEC)
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                received = array.array("i")
                received.frombytes(data[: len(data) - len(data) % received.itemsize])
                fds.extend(received)
        if not count:
            raise ConnectionError("the panorama-cli runner closed the connection")
        got += count
    return buffer


#: name -> mmap of the shared memory this process was sent (rings; an arena only until its
#: connection takes it). Names are random, unique across a runner's lifetime and restarts,
#: so a mapping is never taken for another one; mappings survive fork (MAP_SHARED).
_MAPS = {}
_MAPS_LOCK = threading.Lock()


def _remember(name, mapped):
    with _MAPS_LOCK:
        _MAPS.pop(name, None)
        _MAPS[name] = mapped
        while len(_MAPS) > MAX_MAPS:  # a dropped mapping lives on while an array uses it
            del _MAPS[next(iter(_MAPS))]


def _map_fds(message, fds):
    """Map the descriptors a message came with (named by its "fds"), then close them all."""
    try:
        names = message.get("fds") if isinstance(message, dict) else None
        if not isinstance(names, list):
            return
        for index in range(min(len(names), len(fds))):  # zip(strict=) is not Python 3.7's
            if isinstance(names[index], str):
                try:
                    _remember(names[index], mmap.mmap(fds[index], 0))
                except (OSError, ValueError):
                    pass
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass


def _token():
    """This node's token: PANORAMA_LOCALRUN_TOKEN, else the file PANORAMA_LOCALRUN_TOKEN_FILE
    names (stripped), else None (the runner then refuses the hello and says why)."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    path = os.environ.get(TOKEN_FILE_ENV)
    if not path:
        return None
    try:
        with open(path, "rb") as handle:
            return handle.read(4096).decode("ascii", "replace").strip() or None
    except OSError as exc:
        raise NotUnderRunner(
            "cannot read this node's token from {} ({}): {}".format(
                path, TOKEN_FILE_ENV, exc.strerror or exc
            )
        ) from None


#: The environment variable with how long a process waits for the runner's socket to appear
#: (seconds; default 0): the fleet sets it, as a node's container may start before serve has
#: made the socket.
CONNECT_WAIT_ENV = "PANORAMA_LOCALRUN_CONNECT_WAIT_S"


def _connect_wait():
    try:
        return max(0.0, min(float(os.environ.get(CONNECT_WAIT_ENV, "0")), 600.0))
    except ValueError:
        return 0.0


def _connect(path):
    """A socket connected to ``path``, waiting up to :data:`CONNECT_WAIT_ENV` seconds while
    the socket does not exist yet or nobody listens on it (guest code: no retry library in
    the app's interpreter, so a plain bounded wait)."""
    deadline = time.monotonic() + _connect_wait()
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.25)
        except BaseException:
            sock.close()
            raise


class Connection(object):
    """One socket to the runner, owned by one process (re-made after fork)."""

    def __init__(self, path, node):
        self.pid = os.getpid()
        self.node = node
        self.sock = _connect(path)
        self.lock = threading.Lock()
        self.next_id = 0
        self.pending_stats = []
        self.arena = None  # (name, size, mmap) of the runner's memory for large call arrays
        self.broken = False
        hello = {"op": "hello", "node": node, "pid": self.pid}
        token = _token()
        if token is not None:
            hello["token"] = token
        self.hello = self.request(hello)

    def send(self, message):
        self.sock.sendall(encode(message))

    def receive(self):
        fds = []
        try:
            (size,) = _WORD.unpack(_recv_exact(self.sock, _WORD.size, fds))
            message = decode(_recv_exact(self.sock, size, fds))
        except BaseException:
            _map_fds(None, fds)  # close them
            raise
        _map_fds(message, fds)
        return message

    def _sendall(self, data):
        """Send a frame; when the runner has closed the connection over a protocol error,
        raise that (RuntimeError) rather than a broken pipe."""
        try:
            self.sock.sendall(data)
        except OSError as exc:
            refusal = self._refusal()
            if refusal is None:
                raise
            raise RuntimeError("the panorama-cli runner refused: " + refusal) from exc

    def _refusal(self):
        """The runner's protocol error waiting on a connection it closed (or None)."""
        try:
            self.sock.settimeout(0.5)
            reply = self.receive()
        except Exception:
            return None
        if reply.get("error") == "protocol":
            return reply.get("message")
        return None

    def request(self, message):
        """Send ``message`` and wait for the reply with its id.

        The runner answers every request (timeouts are decided there). An exception while
        waiting (KeyboardInterrupt) leaves the stream mid-message, so the connection is then
        dropped and the next call makes a new one.

        Raises:
            TimeoutError: the runner answered that the request's timeout expired.
            RuntimeError: the runner refused the message (a protocol error; the connection is
                closed, the next call makes a new one).
            ValueError: the message is over the runner's size limit (nothing sent).
        """
        with self.lock:
            self.next_id += 1
            message["id"] = self.next_id
            if self.pending_stats:
                message["stats"], self.pending_stats = self.pending_stats, []
            data = encode(message)
            try:
                self._sendall(data)
                while True:
                    reply = self.receive()
                    if reply.get("error") == "protocol":
                        raise RuntimeError(
                            "the panorama-cli runner refused: {}".format(reply.get("message"))
                        )
                    if reply.get("id") == message["id"]:
                        break
            except BaseException:
                self.broken = True
                raise
        error = reply.get("error")
        if error == "timeout":
            raise TimeoutError(reply.get("message") or "timed out")
        if error:
            raise _ERRORS.get(error, RuntimeError)(reply.get("message", error))
        return reply

    def post(self, message):
        """Send ``message`` without waiting for a reply."""
        data = encode(message)
        with self.lock:
            try:
                self._sendall(data)
            except BaseException:
                self.broken = True
                raise

    def record(self, kind, seconds):
        """Remember a timing (get/put/call, seconds); sent with the next request."""
        self.pending_stats.append((kind, seconds))
        if len(self.pending_stats) > 256:
            with self.lock:
                stats, self.pending_stats = self.pending_stats, []
                self.send({"op": "stats", "stats": stats})

    def arena_for(self, size):
        """(name, size) of a shared-memory arena of at least ``size`` bytes (asked of the
        runner when the current one is too small)."""
        if self.arena is None or self.arena[1] < size:
            try:
                reply = self.request({"op": "arena", "size": 2 * size})
            except ValueError:  # over the runner's limit: ask for no more than needed
                reply = self.request({"op": "arena", "size": size})
            self.use_arena(reply["name"], reply["size"])
        return self.arena[:2]

    def use_arena(self, name, size):
        """Make arena ``name`` (its descriptor came with the reply just read) this
        connection's.

        Raises:
            RuntimeError: its descriptor did not come.
        """
        with _MAPS_LOCK:
            mapped = _MAPS.pop(name, None)  # held here only: freed when replaced
        if mapped is None or len(mapped) < size:
            self.arena = None
            raise RuntimeError("the panorama-cli runner's shared memory did not arrive")
        self.arena = (name, size, mapped)

    def buffer(self, name, size):
        """The mapping of shared memory ``name`` (a frame ring delivered to this node, or this
        connection's arena), at least ``size`` bytes; a ring this process has no mapping of is
        asked of the runner (``ring``).

        Raises:
            ValueError: the runner has no such ring for this node.
        """
        if self.arena is not None and self.arena[0] == name and len(self.arena[2]) >= size:
            return self.arena[2]
        with _MAPS_LOCK:
            mapped = _MAPS.get(name)
        if mapped is None:
            self.request({"op": "ring", "ring": name})
            with _MAPS_LOCK:
                mapped = _MAPS.get(name)
        if mapped is None or len(mapped) < size:
            raise ValueError("shared memory {!r} did not arrive from the runner".format(name))
        return mapped


_local = threading.local()


def connection():
    """This thread's connection to the runner (made on first use, again after a fork).

    One connection per thread, so a thread waiting in ``get`` never holds up another
    thread's ``put`` or ``call``.

    Raises:
        NotUnderRunner: the environment does not name a runner socket.
    """
    current = getattr(_local, "connection", None)
    if current is not None and current.pid == os.getpid() and not current.broken:
        return current
    if current is not None and current.pid == os.getpid():
        current.sock.close()
    path = os.environ.get(SOCKET_ENV)
    if not path:
        raise NotUnderRunner(
            "panoramasdk here is the panorama-cli simulation: run the application with "
            "`panorama-cli run` (no {} in the environment)".format(SOCKET_ENV)
        )
    current = Connection(path, os.environ.get(NODE_ENV, ""))
    _local.connection = current
    return current
