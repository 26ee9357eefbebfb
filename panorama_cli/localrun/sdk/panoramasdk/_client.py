"""The connections of an app's threads to the panorama-cli runner (simulated SDK internals).

Wire format (shared with panorama_cli.localrun.channel): each message is a 4-byte big-endian
length followed by a pickled dict (protocol 4, so Python 3.7 apps can read it). Pixels never
travel on the socket: frames live in POSIX shared memory (/dev/shm/<name>), mapped here with
mmap and exposed as numpy arrays. This module must stay importable on Python >= 3.7 with only
numpy installed, and must not import the runner.
"""

import mmap
import os
import pickle
import socket
import struct
import threading

SOCKET_ENV = "PANORAMA_LOCALRUN_SOCKET"
NODE_ENV = "PANORAMA_LOCALRUN_NODE"
_HEADER = struct.Struct(">I")
PROTOCOL = min(4, pickle.HIGHEST_PROTOCOL)
_ERRORS = {
    "value": ValueError,
    "type": TypeError,
    "key": KeyError,
    "attribute": AttributeError,
    "runtime": RuntimeError,
}


class NotUnderRunner(RuntimeError):
    """panoramasdk was used outside ``panorama-cli run``."""


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
        data = pickle.dumps(message, protocol=PROTOCOL)
        self.sock.sendall(_HEADER.pack(len(data)) + data)

    def receive(self):
        (size,) = _HEADER.unpack(_recv_exact(self.sock, _HEADER.size))
        return pickle.loads(_recv_exact(self.sock, size))

    def request(self, message):
        """Send ``message`` and wait for the reply with its id.

        The runner answers every request (timeouts are decided there). An exception while
        waiting (KeyboardInterrupt) leaves the stream mid-message, so the connection is then
        dropped and the next call makes a new one.

        Raises:
            TimeoutError: the runner answered that the request's timeout expired.
        """
        with self.lock:
            self.next_id += 1
            message["id"] = self.next_id
            if self.pending_stats:
                message["stats"], self.pending_stats = self.pending_stats, []
            try:
                self.send(message)
                while True:
                    reply = self.receive()
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
        with self.lock:
            try:
                self.send(message)
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
            reply = self.request({"op": "arena", "size": 2 * size})
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
