"""serve's state folder (``--state-dir``, default ``.panorama-serve/`` in the project).

What lasts across restarts of a node and of serve itself::

    <state-dir>/
      serve.lock            one serve per state folder (filelock)
      storage/<node>/       the node's /opt/aws/panorama/storage (and storage/<node>/clips/)
      logs/<node>/          the node's /opt/aws/panorama/logs: console.log (+ .1 ... .5) and
                            the app's own log files
      logs/serve.log        serve's own log lines (rotated the same way)
      run/                  the control socket and the interpreter shims (recreated each start)

The appliance kept /opt/aws/panorama/storage across application restarts and reboots; this is
that folder for each node (panoramasdk-reference.md, last section).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panorama_cli.errors import UserError

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

    def release(self) -> None:
        """Unlock (serve's end); the folder stays."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def _shift(path: Path, keep: int) -> None:
    """path.<keep-1> -> path.<keep>, ..., path.1 -> path.2 (the one past ``keep`` removed)."""
    for n in range(keep, 1, -1):
        older, newer = path.with_name(f"{path.name}.{n}"), path.with_name(f"{path.name}.{n - 1}")
        if newer.exists():
            newer.replace(older)


def rotate_app_logs(folder: Path, rotate: tuple[int, int] = ROTATE) -> list[Path]:
    """Rotate the app's own log files in a node's logs folder that passed the size cap.

    The app keeps its file open, so this is logrotate's ``copytruncate``: the file is copied
    to ``<name>.1`` (older copies shifted, the one past ``keep`` dropped) and truncated in
    place; an app appending (``logging.FileHandler`` opens with ``"a"``) goes on writing at
    its start. console.log is rotated by serve itself as it writes it. A line written between
    the copy and the truncation can be lost, as with logrotate.

    Returns:
        The files rotated.
    """
    size, keep = rotate
    done = []
    try:
        files = [p for p in Path(folder).iterdir() if p.is_file()]
    except OSError:
        return done
    for path in files:
        if path.name.startswith("console.log") or path.suffix[1:].isdigit():
            continue
        try:
            if path.stat().st_size <= size:
                continue
            _shift(path, keep)
            shutil.copyfile(path, path.with_name(f"{path.name}.1"))
            os.truncate(path, 0)
            done.append(path)
        except OSError:
            continue
    return done


def open_state_dir(root: Path) -> StateDir:
    """Create (when missing), check and lock the state folder.

    Raises:
        UserError: it cannot be created or written, or another serve holds it.
    """
    from filelock import FileLock, Timeout

    root = Path(root)
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
    shutil.rmtree(state.run_dir, ignore_errors=True)  # a killed serve's socket and shims
    os.makedirs(state.run_dir, exist_ok=True)
    return state
