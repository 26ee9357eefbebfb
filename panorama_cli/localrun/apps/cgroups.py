"""A cgroup per business-logic node, holding its memory and process limits (:mod:`.limits`).

Made under the runner's own cgroup (read from ``/proc/self/cgroup``, mount points from
``/proc/self/mountinfo``), named ``panorama-cli-<runner pid>-<node>-<n>``:

* cgroup v2 where the ``memory`` and ``pids`` controllers can be enabled below the runner's
  cgroup: ``memory.max``, ``memory.swap.max`` = 0, ``memory.oom.group`` = 1 (an OOM kill takes
  the whole node), ``pids.max``. When the runner's cgroup holds only the runner (a systemd
  service with ``Delegate=yes``), the runner first moves itself into a leaf
  ``panorama-cli-runner`` (cgroup v2 allows no process beside child cgroups that have
  controllers);
* else cgroup v1 ``memory`` and ``pids`` hierarchies (root): ``memory.limit_in_bytes`` and
  ``memory.memsw.limit_in_bytes`` (no swap past the limit), ``pids.max``.

The node's processes enter it before the sandbox starts (``_enter.py`` writes its own pid to
each ``cgroup.procs``), so everything it forks is inside. :meth:`NodeCgroup.remove` kills what
is left and removes the cgroup; cgroups of runners that died are removed the next time.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import signal
import time
from functools import cache
from pathlib import Path

from panorama_cli.localrun.apps.limits import NodeLimits

log = logging.getLogger(__name__)

PREFIX = "panorama-cli"
_RUNNER_LEAF = f"{PREFIX}-runner"
_COUNTER = itertools.count(1)
_STALE = re.compile(rf"{PREFIX}-(\d+)-")


def _own_paths() -> dict[str, str]:
    """controller ("memory", "pids", "" for v2) -> the runner's cgroup path in it."""
    found: dict[str, str] = {}
    try:
        text = Path("/proc/self/cgroup").read_text()
    except OSError:
        return found
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(",") if parts[1] else [""]:
            found[controller] = parts[2]
    return found


def _mounts() -> dict[str, Path]:
    """controller ("memory", "pids", "" for the v2 hierarchy) -> its mount point."""
    found: dict[str, Path] = {}
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        point = fields[4].encode().decode("unicode_escape")
        if tail[0] == "cgroup2" and "" not in found:
            found[""] = Path(point)
        elif tail[0] == "cgroup":
            for option in tail[2].split(","):
                if option in ("memory", "pids") and option not in found:
                    found[option] = Path(point)
    return found


def _write(path: Path, value: str) -> None:
    with open(path, "w") as stream:
        stream.write(value)


def _read_counter(path: Path, key: str) -> int:
    """The value of ``key`` in a flat-keyed cgroup file (``oom_kill 3``), 0 when absent."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return 0


def _remove_stale(parent: Path) -> None:
    """Remove the empty node cgroups of runners that are gone."""
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for entry in entries:
        match = _STALE.match(entry.name)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            try:
                entry.rmdir()
            except OSError:
                pass


class NodeCgroup:
    """One node's cgroup (see the module docstring); :func:`create` makes it.

    Attributes:
        kind: ``"cgroup v2"`` or ``"cgroup v1"``.
        dirs: its folders (one for v2; the memory and pids ones for v1).
    """

    def __init__(self, kind: str, dirs: list[Path]) -> None:
        self.kind = kind
        self.dirs = dirs

    @property
    def procs_files(self) -> list[str]:
        """The ``cgroup.procs`` files a process writes its pid to, to enter."""
        return [str(d / "cgroup.procs") for d in self.dirs]

    def _file(self, name: str) -> Path | None:
        for folder in self.dirs:
            if (folder / name).exists():
                return folder / name
        return None

    def oom_kills(self) -> int:
        """Processes the kernel killed for the memory limit so far."""
        path = self._file("memory.events" if self.kind == "cgroup v2" else "memory.oom_control")
        return 0 if path is None else _read_counter(path, "oom_kill")

    def pids_hits(self) -> int:
        """Forks refused at the pids limit so far."""
        path = self._file("pids.events")
        return 0 if path is None else _read_counter(path, "max")

    def remove(self) -> None:
        """SIGKILL whatever is left in it, then remove it (best effort, a few tries)."""
        for folder in self.dirs:
            kill = folder / "cgroup.kill"
            for _ in range(50):
                if not folder.exists():
                    break
                try:
                    pids = [int(p) for p in (folder / "cgroup.procs").read_text().split()]
                except (OSError, ValueError):
                    pids = []
                if pids:
                    if kill.exists():
                        try:
                            _write(kill, "1")
                        except OSError:
                            pass
                    for pid in pids:
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except OSError:
                            pass
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)
            else:
                log.debug("cgroup %s: not removed (still busy)", folder)


def _name(node: str) -> str:
    safe = "".join(c if c.isalnum() or c in "_-" else "-" for c in node)[:40] or "node"
    return f"{PREFIX}-{os.getpid()}-{safe}-{next(_COUNTER)}"


def _v2_parent(mount: Path, own: str) -> Path:
    """The v2 cgroup under which node cgroups are made, with memory and pids enabled.

    Raises:
        OSError: they cannot be enabled there.
    """
    parent = mount / own.lstrip("/")
    available = (parent / "cgroup.controllers").read_text().split()
    if not {"memory", "pids"} <= set(available):
        raise OSError(f"{parent}: memory and pids controllers not available ({available})")
    enabled = (parent / "cgroup.subtree_control").read_text().split()
    if {"memory", "pids"} <= set(enabled):
        return parent
    try:
        _write(parent / "cgroup.subtree_control", "+memory +pids")
    except OSError as exc:
        procs = (parent / "cgroup.procs").read_text().split()
        if procs != [str(os.getpid())]:
            raise OSError(f"{parent}: cannot enable memory and pids there ({exc})") from exc
        leaf = parent / _RUNNER_LEAF  # the runner alone: it moves itself into a leaf
        leaf.mkdir(exist_ok=True)
        _write(leaf / "cgroup.procs", str(os.getpid()))
        _write(parent / "cgroup.subtree_control", "+memory +pids")
    return parent


def _create_v2(node: str, limits: NodeLimits) -> NodeCgroup:
    mount, own = _mounts().get(""), _own_paths().get("")
    if mount is None or own is None:
        raise OSError("no cgroup v2 hierarchy")
    parent = _v2_parent(mount, own)
    _remove_stale(parent)
    folder = parent / _name(node)
    folder.mkdir()
    group = NodeCgroup("cgroup v2", [folder])
    try:
        _write(folder / "memory.max", str(limits.memory))
        if (folder / "memory.swap.max").exists():
            _write(folder / "memory.swap.max", "0")
        if (folder / "memory.oom.group").exists():
            _write(folder / "memory.oom.group", "1")
        _write(folder / "pids.max", str(limits.pids))
    except OSError:
        group.remove()
        raise
    return group


def _create_v1(node: str, limits: NodeLimits) -> NodeCgroup:
    mounts, own = _mounts(), _own_paths()
    if "memory" not in mounts or "pids" not in mounts:
        raise OSError("no cgroup v1 memory and pids hierarchies")
    name = _name(node)
    group = NodeCgroup("cgroup v1", [])
    try:
        for controller in ("memory", "pids"):
            parent = mounts[controller] / own.get(controller, "/").lstrip("/")
            _remove_stale(parent)
            folder = parent / name
            folder.mkdir()
            group.dirs.append(folder)
        memory, pids = group.dirs
        _write(memory / "memory.limit_in_bytes", str(limits.memory))
        if (memory / "memory.memsw.limit_in_bytes").exists():
            _write(memory / "memory.memsw.limit_in_bytes", str(limits.memory))
        _write(pids / "pids.max", str(limits.pids))
    except OSError:
        group.remove()
        raise
    return group


def create(node: str, limits: NodeLimits) -> tuple[NodeCgroup | None, str]:
    """A cgroup for ``node`` with ``limits`` (v2, else v1).

    Returns:
        (the cgroup, "") or (None, why none can be made here, one short phrase).
    """
    errors = []
    for make in (_create_v2, _create_v1):
        try:
            return make(node, limits), ""
        except OSError as exc:
            errors.append(str(exc))
    return None, "; ".join(errors)


@cache
def availability() -> tuple[str, str]:
    """(kind, "") when node cgroups can be made here (a probe cgroup made and removed), else
    ("", why)."""
    group, why = create("probe", NodeLimits())
    if group is None:
        return "", why
    group.remove()
    return group.kind, ""
