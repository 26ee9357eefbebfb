"""Limits per business-logic node: memory, processes and disk, on by default.

Every node of ``run`` and ``serve`` (``--node-memory``, ``--node-pids``, ``--node-storage``)
gets :class:`NodeLimits`; how they hold depends on the machine (:mod:`.cgroups`):

* a cgroup of its own (v2, else v1 ``memory`` + ``pids`` as root): the kernel holds memory
  (swap included) and processes for the node as a whole; an OOM kill is read back from the
  cgroup (``memory.events`` / ``memory.oom_control``), and a node that hits its pids limit
  (``pids.events``) is stopped;
* else per-process rlimits (said once at start): ``RLIMIT_DATA`` (memory, per process),
  ``RLIMIT_NPROC`` (processes of the node's own uid, when the runner is root).

Disk: where a loop-mounted file system can be made (root), each node's logs and storage are
a file system of exactly the storage limit (:mod:`.volumes`: ENOSPC, inodes bounded). Else,
in both cases: ``RLIMIT_FSIZE`` caps any one file at the storage limit (SIGXFSZ), and
:class:`LimitWatch` measures logs + storage together with ``du`` (no link followed, each
inode counted once) every :data:`WATCH_S` seconds and stops the node past the limit.

A node stopped by a limit says so: :attr:`LimitWatch.hit` is ``"memory limit 4 GiB"``,
``"pids limit 512"`` or ``"storage limit 2 GiB"`` (serve's ``last_exit``, the node's note).
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panorama_cli.errors import UsageError

log = logging.getLogger(__name__)

KIB, MIB, GIB, TIB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
DEFAULT_MEMORY = 4 * GIB
DEFAULT_PIDS = 512
DEFAULT_STORAGE = 2 * GIB
#: The smallest limits that still start an interpreter.
MIN_MEMORY = 64 * MIB
MIN_PIDS = 8
MIN_STORAGE = 1 * MIB
#: How often a node's storage and cgroup events are checked (seconds).
WATCH_S = 1.0
#: Exit status of a process killed by SIGXFSZ (a file past RLIMIT_FSIZE), as a shell shows it.
SIGXFSZ_STATUS = 128 + 25

_UNITS = {"": 1, "k": KIB, "m": MIB, "g": GIB, "t": TIB}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)


@dataclass(frozen=True)
class NodeLimits:
    """What one node may use.

    Attributes:
        memory: bytes of memory (swap included) for all its processes.
        pids: processes (threads included, as the kernel counts them) at once.
        storage: bytes of disk in its logs and storage folders together.
    """

    memory: int = DEFAULT_MEMORY
    pids: int = DEFAULT_PIDS
    storage: int = DEFAULT_STORAGE

    def text(self, kind: str) -> str:
        """``"memory limit 4 GiB"``, ``"pids limit 512"`` or ``"storage limit 2 GiB"``."""
        if kind == "pids":
            return f"pids limit {self.pids}"
        return f"{kind} limit {format_size(getattr(self, kind))}"

    def summary(self) -> str:
        """``memory 4 GiB, 512 processes, storage 2 GiB``."""
        return (
            f"memory {format_size(self.memory)}, {self.pids} processes, "
            f"storage {format_size(self.storage)}"
        )


def parse_size(text: str, flag: str = "--node-memory") -> int:
    """``512M``, ``4G``, ``4GiB``, ``1.5g``, ``1048576`` -> bytes (K, M, G, T are powers of
    1024, with or without ``B``/``iB``, any case).

    Raises:
        UsageError: not a size (exit 2).
    """
    match = _SIZE.fullmatch(text or "")
    if not match:
        raise UsageError(f"{flag} {text}: not a size", hint="e.g. 512M, 4G or 4GiB")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def format_size(size: int) -> str:
    """Bytes as a person reads them: ``4 GiB``, ``256 MiB``, ``1.5 GiB``, ``100 B``."""
    for unit, factor in (("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if size >= factor:
            value = size / factor
            return f"{value:g} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} B"


def size_argument(size: int) -> str:
    """Bytes as a command-line value that :func:`parse_size` reads back: ``4G``, ``512M``."""
    for suffix, factor in (("T", TIB), ("G", GIB), ("M", MIB), ("K", KIB)):
        if size % factor == 0:
            return f"{size // factor}{suffix}"
    return str(size)


def storage_usage(folders: Sequence[Path]) -> int | None:
    """Bytes of disk used under ``folders`` together (``du``: no symbolic link followed, each
    inode once, never past the folders' file system); None when it cannot be measured."""
    du = shutil.which("du")
    existing = [str(f) for f in folders if f.is_dir()]
    if not du or not existing:
        return None if not du else 0
    try:
        out = subprocess.run(
            [du, "-s", "-c", "-x", "-P", "-B1", "--", *existing],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("du %s: %s", existing, exc)
        return None
    last = out.stdout.strip().splitlines()[-1:] or [""]
    total = last[0].split("\t", 1)[0]
    return int(total) if total.isdigit() else None


class LimitWatch:
    """Watch one running node against its limits; stop it at the first one it passes.

    Args:
        node: the node's name (log lines).
        limits: its limits.
        folders: its logs and storage folders (host paths).
        cgroup: its :class:`~.cgroups.NodeCgroup`, or None (rlimits only).
        stop: called once, from the watch thread, to kill the node at a limit.
        interval_s: seconds between checks.
        volume: the node's own file system (:class:`~.volumes.NodeVolume`), or None; with
            one, ``folders`` is empty (ENOSPC bounds the disk) and a node that fails with it
            full ended at ``"storage full (2 GiB)"``.
    """

    def __init__(
        self,
        node: str,
        limits: NodeLimits,
        folders: Sequence[Path],
        cgroup: Any,
        stop: Callable[[], None],
        interval_s: float = WATCH_S,
        volume: Any = None,
    ) -> None:
        self.node = node
        self.limits = limits
        self.folders = list(folders)
        self.cgroup = cgroup
        self._stop = stop
        self._interval = interval_s
        self.volume = volume
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        #: The limit that stopped the node (``"storage limit 2 GiB"``), or None.
        self.hit: str | None = None
        #: What happened, one line each (shown as the run's notes / in serve.log).
        self.notes: list[str] = []

    def start(self) -> None:
        """Check once now (a node already past its storage limit does not start working),
        then every ``interval_s`` seconds in a daemon thread."""
        self._thread = threading.Thread(target=self._loop, name=f"limits-{self.node}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop watching (the node ended)."""
        self._done.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._done.is_set():
            try:
                found = self.check()
            except Exception:  # noqa: BLE001 - a watch that fails must not kill the runner
                log.exception("node %s: checking its limits failed", self.node)
                found = None
            if found is not None:
                self.stop_at(found)
                return
            self._done.wait(self._interval)

    def check(self) -> str | None:
        """The limit the node is past now (its :meth:`NodeLimits.text`), or None: an OOM kill
        in its cgroup (cgroup v1 kills one process, not the node), a fork refused at its pids
        limit, or more disk than its storage limit."""
        if self.cgroup is not None and self.cgroup.oom_kills() > 0:
            return self.limits.text("memory")
        if self.cgroup is not None and self.cgroup.pids_hits() > 0:
            return self.limits.text("pids")
        used = storage_usage(self.folders)
        if used is not None and used > self.limits.storage:
            log.debug("node %s: %d bytes in logs + storage", self.node, used)
            return self.limits.text("storage")
        return None

    def stop_at(self, limit: str) -> None:
        """Record ``limit`` and kill the node (once)."""
        if self.hit is not None or self._done.is_set():
            return
        self.record(limit)
        self._stop()

    def record(self, limit: str) -> None:
        """``limit`` ended the node (seen elsewhere: Docker's OOMKilled), unless one did."""
        if self.hit is None:
            self.hit = limit
            self._note(limit)

    def exited(self, status: int) -> str | None:
        """Why a node that ended with ``status`` (as a shell shows it) ended, when a limit
        did it: what :meth:`check` stopped it for, an OOM kill or refused fork in its cgroup,
        SIGXFSZ or a failure with its folders past the storage limit (a file past
        ``RLIMIT_FSIZE``: Python ignores SIGXFSZ and fails with EFBIG); else None."""
        if self.hit is not None:
            return self.hit
        limit = None
        if self.cgroup is not None and self.cgroup.oom_kills() > 0:
            limit = self.limits.text("memory")
        elif self.cgroup is not None and self.cgroup.pids_hits() > 0:
            limit = self.limits.text("pids")
        elif status != 0 and self.volume is not None and self.volume.full():
            limit = f"storage full ({format_size(self.limits.storage)})"  # ENOSPC, as a device
        elif status == SIGXFSZ_STATUS or (status != 0 and self._over_storage()):
            limit = self.limits.text("storage")  # a write refused (EFBIG, ENOSPC) at its end
        if limit is not None:
            self.record(limit)
        return limit

    def _over_storage(self) -> bool:
        used = storage_usage(self.folders)
        return used is not None and used > self.limits.storage

    def _note(self, limit: str) -> None:
        text = f"node {self.node} stopped: {limit}"
        log.warning("%s", text)
        self.notes.append(text)
