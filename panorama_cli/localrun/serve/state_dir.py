"""serve's state folder (``--state-dir``, default ``.panorama-serve/`` in the project).

What lasts across restarts of a node and of serve itself::

    <state-dir>/
      serve.lock            one serve per state folder (filelock)
      storage/<node>/       the node's /opt/aws/panorama/storage (and storage/<node>/clips/)
      logs/<node>/          the node's /opt/aws/panorama/logs: console.log (+ .1 ... .5) and
                            the app's own log files
      logs/serve.log        serve's own log lines (rotated the same way)
      volumes/<node>.ext4   (root, loop devices) the node's own file system of --node-storage
                            bytes, mounted at volumes/<node>/ while serve runs; its storage/
                            and logs/ are bound onto storage/<node> and logs/<node>
                            (:mod:`panorama_cli.localrun.apps.volumes`)
      run/                  the control socket and the interpreter shims (recreated each start)
      auth/token            the login token (0600, folder 0700; made on the first start:
                            :mod:`.auth`)

The appliance kept /opt/aws/panorama/storage across application restarts and reboots; this is
that folder for each node (panoramasdk-reference.md, last section).
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panorama_cli.errors import UserError
from panorama_cli.localrun import safe_files

log = logging.getLogger(__name__)

#: console.log and serve.log rotation: bytes per file, older files kept (10 MB x 5).
ROTATE = (10 * 1000 * 1000, 5)
DEFAULT_FOLDER = ".panorama-serve"


@dataclass
class StateDir:
    """An opened (and locked) state folder; see the module docstring."""

    root: Path
    lock: Any = None

    def storage(self, node: str) -> Path:
        return self.root / "storage" / node

    def logs(self, node: str) -> Path:
        return self.root / "logs" / node

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def serve_log(self) -> Path:
        return self.root / "logs" / "serve.log"

    def settle_clips(self, idle_s: float = 0.0) -> list[str]:
        """Recover or remove the partial clips killed apps left (serve's start, before any app
        runs; :func:`.clips.settle_partial_clips`): one line per clip."""
        from panorama_cli.localrun.serve.clips import settle_partial_clips

        return settle_partial_clips(self.root / "storage", idle_s)

    def release(self) -> None:
        """Unlock (serve's end); the folder stays."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def _shift(folder: int, name: str, keep: int) -> None:
    """name.<keep-1> -> name.<keep>, ..., name.1 -> name.2 (the one past ``keep`` replaced);
    regular files only (a step that fails, e.g. onto a folder, is skipped)."""
    for n in range(keep, 1, -1):
        try:
            safe_files.rename_regular(folder, f"{name}.{n - 1}", f"{name}.{n}")
        except OSError as exc:
            log.debug("%s.%d not shifted: %s", name, n - 1, exc)


def rotate_app_logs(folder: Path, rotate: tuple[int, int] = ROTATE) -> list[Path]:
    """Rotate the app's own log files in a node's logs folder that passed the size cap.

    The app keeps its file open, so this is logrotate's ``copytruncate``: the file is copied
    to ``<name>.1`` (older copies shifted, the one past ``keep`` dropped) and truncated in
    place; an app appending (``logging.FileHandler`` opens with ``"a"``) goes on writing at
    its start. console.log is rotated by serve itself as it writes it. A line written between
    the copy and the truncation can be lost, as with logrotate.

    The folder is the app's ``/opt/aws/panorama/logs``: only regular files directly in it are
    rotated, each opened relative to the folder's fd with ``O_NOFOLLOW`` and copied and
    truncated through that fd; a link (to a host file), FIFO, folder or hard-linked file is
    left alone, and the numbered copies are shifted only when they are regular files
    (:mod:`panorama_cli.localrun.safe_files`).

    Returns:
        The files rotated.
    """
    size, keep = rotate
    done: list[Path] = []
    try:
        fd = safe_files.open_dir(folder)
    except OSError:
        return done
    try:
        try:
            files = safe_files.regular_files(fd)
        except OSError:
            return done
        for name, info in sorted(files):
            if name.startswith("console.log") or os.path.splitext(name)[1][1:].isdigit():
                continue
            if name.startswith(".") and name.endswith(".tmp"):
                continue  # a copy being made
            if info.st_size <= size or info.st_nlink != 1:
                continue
            try:
                _shift(fd, name, keep)
                safe_files.copytruncate(fd, name, f"{name}.1")
            except OSError as exc:
                log.debug("%s/%s not rotated: %s", folder, name, exc)
                continue
            done.append(Path(folder) / name)
    finally:
        os.close(fd)
    return done


def open_state_dir(root: Path, record: Path | None = None) -> StateDir:
    """Create (when missing), check and lock the state folder; ``run/`` is made anew.

    Args:
        root: the state folder.
        record: the ``--record`` folder, if any: it must not lie in ``storage/`` or ``logs/``
            (the apps write there).

    Raises:
        UserError: it cannot be created or written, another serve holds it, or ``record``
            lies where apps write.
    """
    from filelock import FileLock, Timeout

    root = Path(root)
    if record is not None:
        for sub in ("storage", "logs"):
            if Path(record).resolve().is_relative_to((root / sub).resolve()):
                raise UserError(
                    f"--record {record} is inside the state folder's {sub}/, which the apps "
                    "write into",
                    hint="give --record a folder outside the state folder's storage/ and logs/",
                )
    try:
        for sub in ("storage", "logs"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        probe = root / ".write-check"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(
            f"state folder {root}: {exc.strerror or exc}",
            hint="give --state-dir a folder this user can write",
        ) from None
    lock = FileLock(str(root / "serve.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UserError(
            f"state folder {root} is in use by another panorama-cli serve",
            hint="stop that one, or give this one its own --state-dir",
        ) from None
    state = StateDir(root, lock)
    _clear_run_dir(state.run_dir)
    return state


def _clear_run_dir(run_dir: Path) -> None:
    """Remove a killed serve's ``run/`` (socket, shims) and make it again, never following a
    link: a link in its place is removed itself, and ``shutil.rmtree`` works on directory fds
    (``rmtree.avoids_symlink_attacks``), so a link inside is unlinked, not descended into."""
    try:
        info = os.lstat(run_dir)
    except FileNotFoundError:
        info = None
    if info is not None and not stat.S_ISDIR(info.st_mode):
        os.unlink(run_dir)
    elif info is not None:
        shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(run_dir, exist_ok=True)
