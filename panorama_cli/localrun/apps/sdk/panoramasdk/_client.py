"""The connections of an app's threads to the panorama-cli runner (simulated SDK internals).

Wire format (the runner's panorama_cli.localrun.frames.wire, which checks it): a frame is a 4-byte
big-endian length N (at most 64 MiB), a 4-byte length H of a UTF-8 JSON header, the header
(the message: dicts, lists, strings, numbers, booleans, null) and N - 4 - H bytes of blobs that
the header references as {"$blob": [offset, length]} (bytes values; numpy arrays are
{"dtype", "shape", "data": blob} or {"dtype", "shape", "arena", "offset"}). Nothing is pickled.
A message the runner refuses gets {"error": "protocol"} (raised here as RuntimeError) and the
connection is closed. Pixels never travel on the socket: frames live in POSIX shared memory
(/dev/shm/<name>), mapped here with mmap and exposed as numpy arrays. This module must stay
importable on Python >= 3.7 with only numpy installed, and must not import the runner.
"""

import json
import mmap
import os
import socket
import struct
import threading

SOCKET_ENV = "PANORAMA_LOCALRUN_SOCKET"
NODE_ENV = "PANORAMA_LOCALRUN_NODE"
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


def _recv_exact(sock, size):
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        count = sock.recv_into(view[got:])
        if not count:
            raise ConnectionError("the panorama-cli runner closed the connection")
        got += count
    return buffer


class Connection(object):
    """One socket to the runner, owned by one process (re-made after fork)."""

    def __init__(self, path, node):
        self.pid = os.getpid()
        self.node = node
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.lock = threading.Lock()
        self.next_id = 0
        self.pending_stats = []
        self.maps = {}
        self.arena = None  # (name, size) of the runner's shared memory for large call inputs
        self.broken = False
        self.hello = self.request({"op": "hello", "node": node, "pid": self.pid})

    def send(self, message):
        self.sock.sendall(encode(message))

    def receive(self):
        (size,) = _WORD.unpack(_recv_exact(self.sock, _WORD.size))
        return decode(_recv_exact(self.sock, size))

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
            self.arena = (reply["name"], reply["size"])
        return self.arena

    def buffer(self, name, size):
        """A writeable memoryview of shared memory segment ``name`` (mapped once)."""
        mapped = self.maps.get(name)
        if mapped is None or len(mapped) < size:
            fd = os.open("/dev/shm/" + name, os.O_RDWR)
            try:
                mapped = mmap.mmap(fd, os.fstat(fd).st_size)
            finally:
                os.close(fd)
            self.maps[name] = mapped
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
