"""The project lock: one command at a time changes a project.

Every command that writes (create-package, add-raw-model, build-container, ...) runs inside
:func:`project_lock`: an exclusive ``flock`` (the ``filelock`` package) on
``<project>/.panorama-cli.lock``. A second command waits up to ``PANORAMA_CLI_LOCK_WAIT``
seconds (default 3) and then fails with one line naming the pid and command holding it (read
from ``.panorama-cli.lock.owner``, which the holder writes). The kernel drops the lock when
its process ends, however it ends (SIGKILL included), so a stale lock never blocks anyone.
Readers (validate, status) take no lock.

While holding the lock a command also removes what a killed command left behind and no
running command can own: temporary asset files ``assets/.tmp-*``, create-package staging
folders ``packages/.<folder>.creating/`` and manifest temp files ``.<name>.json.*.tmp``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from panorama_cli.errors import UserError
from panorama_cli.project import asset_cleanup
from panorama_cli.project.project import Project

log = logging.getLogger(__name__)

LOCK_FILE = ".panorama-cli.lock"
OWNER_FILE = ".panorama-cli.lock.owner"
#: Seconds a command waits for another one to finish (env PANORAMA_CLI_LOCK_WAIT).
DEFAULT_WAIT_S = 3.0

_MANIFEST_TMP = re.compile(r"^\..+\.json\.[A-Za-z0-9_]{8}\.tmp$")
_STAGING = re.compile(r"^\..+\.creating$")


def _wait_s() -> float:
    try:
        return max(0.0, float(os.environ.get("PANORAMA_CLI_LOCK_WAIT", DEFAULT_WAIT_S)))
    except ValueError:
        return DEFAULT_WAIT_S


def _owner(root: Path) -> str:
    try:
        text = (root / OWNER_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    pid, _, command = text.partition(" ")
    if not pid.isdigit():
        return "pid unknown"
    return f"pid {pid}" + (f", {command}" if command else "")


@contextmanager
def project_lock(project: Project, command: str, *, wait_s: float | None = None) -> Iterator[None]:
    """Hold the project's exclusive lock during the block (and clear leftovers first).

    Args:
        project: the project to lock.
        command: the command's name, shown to a command that has to wait (e.g.
            ``"add-raw-model"``).
        wait_s: seconds to wait for another holder (default: env PANORAMA_CLI_LOCK_WAIT or 3).

    Raises:
        UserError: another command still holds the lock after ``wait_s`` (the message names
            its pid), or the lock file cannot be created (a read-only project).
    """
    from filelock import FileLock, Timeout

    path = project.root / LOCK_FILE
    lock = FileLock(str(path), timeout=_wait_s() if wait_s is None else wait_s)
    try:
        lock.acquire()
    except Timeout:
        raise UserError(
            f"another panorama-cli command ({_owner(project.root)}) is changing {project.root}",
            hint="wait for it to finish, then re-run",
        ) from None
    except OSError as exc:
        raise UserError(
            f"cannot lock {path}: {exc.strerror or exc}",
            hint="make the project folder writable for you",
        ) from None
    try:
        try:
            (project.root / OWNER_FILE).write_text(f"{os.getpid()} {command}\n", encoding="utf-8")
        except OSError:
            pass  # only used in the message of a command that has to wait
        remove_leftovers(project)
        yield
    finally:
        try:
            (project.root / OWNER_FILE).unlink()
        except OSError:
            pass
        lock.release()


def remove_leftovers(project: Project) -> list[Path]:
    """Delete what killed commands left (see the module doc); call it holding the lock.

    Never raises; returns what it removed. Symlinks are never followed.
    """
    removed = asset_cleanup.remove_leftovers(project.assets_dir)
    for entry in _entries(project.packages_dir):
        if _STAGING.match(entry.name) and entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    folders = [e for e in _entries(project.packages_dir) if e.is_dir(follow_symlinks=False)]
    folders += [e for e in _entries(project.graphs_dir) if e.is_dir(follow_symlinks=False)]
    for folder in folders:
        for entry in _entries(Path(folder.path)):
            if _MANIFEST_TMP.match(entry.name) and entry.is_file(follow_symlinks=False):
                try:
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
                except OSError:
                    pass
    return removed


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except OSError:
        return []
