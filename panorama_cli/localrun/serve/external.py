"""Business-logic nodes that an engine starts, not serve (``serve --external-nodes``).

In a fleet bundle (:mod:`panorama_cli.fleet`) each business-logic node is its own container
(a container of the Pod, a Compose service), started and restarted by the engine; it
connects to serve's control socket in a shared volume. serve then supervises nothing itself:
:class:`ExternalNode` stands where a process would be, and tells the
:class:`~.keeper.NodeKeeper` that the node "exited" when its connection closes, so that the
node's state (``starting|running|backoff``), restarts and ``panorama_node_up`` read as they
do when serve starts the processes.
"""

from __future__ import annotations

import threading


class NodeLinks:
    """Connections of each node on the control socket (thread-safe counters)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hellos: dict[str, int] = {}
        self._open: dict[str, int] = {}
        self._pids: dict[str, int | None] = {}

    def hello(self, node: str, pid: int | None = None) -> None:
        """``node`` connected (said hello), its process ``pid`` as it gave it (the pid in its
        container's PID namespace)."""
        with self._lock:
            self._pids[node] = pid
            self._hellos[node] = self._hellos.get(node, 0) + 1
            self._open[node] = self._open.get(node, 0) + 1

    def bye(self, node: str) -> None:
        """A connection of ``node`` closed."""
        with self._lock:
            self._open[node] = max(0, self._open.get(node, 0) - 1)

    def hellos(self, node: str) -> int:
        with self._lock:
            return self._hellos.get(node, 0)

    def pid(self, node: str) -> int | None:
        """The pid that ``node``'s newest connection gave; None while none is open."""
        with self._lock:
            return self._pids.get(node) if self._open.get(node, 0) > 0 else None

    def is_open(self, node: str) -> bool:
        with self._lock:
            return self._open.get(node, 0) > 0


class ExternalNode:
    """One connection lifetime of a node started by the engine: "running" from its hello,
    "exited" (status 1) when that connection closes. Nothing to start, stop or kill: the
    engine owns the process.

    Args:
        node: the node's name.
        links: serve's :class:`NodeLinks`.
    """

    notes: list[str] = []  # noqa: RUF012 (never written)

    def __init__(self, node: str, links: NodeLinks) -> None:
        self.node = node
        self._links = links
        self._seen = 0

    @property
    def pid(self) -> int | None:
        """The node process's pid in its own container (from its hello); None unconnected."""
        return self._links.pid(self.node)

    @property
    def is_connected(self) -> bool:
        """The node has an open connection now."""
        return self._links.is_open(self.node)

    def start(self) -> None:
        """Wait for the next hello (or take the connection already open)."""
        self._seen = self._links.hellos(self.node) - (1 if self.is_connected else 0)

    def poll(self) -> int | None:
        """1 once the connection this lifetime saw has closed, else None."""
        if self._links.hellos(self.node) > self._seen and not self.is_connected:
            return 1
        return None

    def wait(self, timeout: float | None = None) -> int | None:
        return self.poll()

    def stop(self, grace_s: float = 2.0) -> int | None:
        return self.poll()

    def kill(self) -> None:
        """Nothing: the engine owns the process."""
