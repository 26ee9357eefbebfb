"""The unprivileged user a business-logic node runs as when the runner is root.

Each node gets a uid (and the gid of the same number) of its own, from a range no account,
``/etc/subuid`` allocation or systemd range uses by default (:data:`UID_BASE` plus a slot):
the same for the same run/state folder and node (a restarted node owns its storage files
still), different between nodes (one node cannot signal another or touch its files). In the
sandbox it has no capabilities: files only root may read (``/etc/shadow``) stay unreadable.

:func:`hand_over` makes a node's logs and storage folders that uid's, walking them relative
to directory descriptors, never following a symbolic link (the app controls what is in them).
When the runner is not root the app runs as the runner's user (in bubblewrap's user
namespace) and nothing changes hands.
"""

from __future__ import annotations

import logging
import os
import stat
import zlib
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

#: First uid of the range (below 2**31, above systemd's container range, outside its foreign
#: range); slots: :data:`SLOTS`.
UID_BASE = 2_000_000_000
SLOTS = 1_000_000
#: At most this many entries are handed over per folder and start (a bound on the work).
MAX_ENTRIES = 200_000


def node_uid(key: str, node: str, taken: Iterable[int] = ()) -> int:
    """The uid of ``node`` of the run or state folder ``key``: :data:`UID_BASE` + a slot from a
    CRC of both, the next free one when ``taken`` (this run's other nodes) has it."""
    slot = zlib.crc32(f"{key}\0{node}".encode()) % SLOTS
    used = set(taken)
    while UID_BASE + slot in used:
        slot = (slot + 1) % SLOTS
    return UID_BASE + slot


def hand_over(folder: Path, uid: int) -> int:
    """Make ``folder`` and everything in it owned by ``uid``:``uid`` (symbolic links
    themselves, never what they point to).

    Returns:
        How many entries changed owner.

    Raises:
        OSError: ``folder`` cannot be opened as a directory (or is a symbolic link).
    """
    top = os.open(folder, _FLAGS)
    try:
        info = os.fstat(top)
        changed = 0
        if (info.st_uid, info.st_gid) != (uid, uid):
            os.fchown(top, uid, uid)
            changed = 1
        return changed + _hand_over_in(top, uid, [0], depth=0)
    finally:
        os.close(top)


_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: Folders deeper than this are left as they are (a bound on open descriptors).
MAX_DEPTH = 64


def _hand_over_in(fd: int, uid: int, seen: list[int], depth: int) -> int:
    """:func:`hand_over` below the open directory ``fd``; ``seen`` counts entries."""
    changed = 0
    try:
        with os.scandir(fd) as entries:
            found = [(e.name, e.stat(follow_symlinks=False)) for e in entries]
    except OSError as exc:
        log.debug("cannot list a folder to hand over: %s", exc)
        return 0
    for name, info in found:
        seen[0] += 1
        if seen[0] > MAX_ENTRIES:
            return changed
        if (info.st_uid, info.st_gid) != (uid, uid):
            try:
                os.chown(name, uid, uid, dir_fd=fd, follow_symlinks=False)
                changed += 1
            except OSError as exc:
                log.debug("%s: %s", name, exc)
        if stat.S_ISDIR(info.st_mode) and depth < MAX_DEPTH:
            try:
                sub = os.open(name, _FLAGS, dir_fd=fd)
            except OSError as exc:
                log.debug("%s: %s", name, exc)
                continue
            try:
                changed += _hand_over_in(sub, uid, seen, depth + 1)
            finally:
                os.close(sub)
    return changed
