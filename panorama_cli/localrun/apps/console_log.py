"""An app's console output: console.log (capped, full-disk proof) and the terminal (quiet stop).

:class:`ConsoleLog` takes every line an app prints (its stdout and stderr, one pipe) and

- appends it to ``console.log`` up to :data:`MAX_BYTES` (with ``rotate=(size, keep)``, as
  serve does: console.log is renamed console.log.1 when it reaches ``size`` bytes, .1 to .2,
  ..., and the one past ``keep`` deleted, as ``logging.handlers.RotatingFileHandler`` names
  them); past the cap, or when a write fails
  (ENOSPC, EIO, a read-only or vanished folder), lines are dropped and counted, and one note
  says so. It never raises: the pump that feeds it must keep draining the pipe, or the app
  blocks on a full pipe and the run hangs;
- hands it to the terminal callback, except the traceback an app prints because the runner
  stopped it (a ``KeyboardInterrupt`` after the runner's SIGINT, ``Process X:`` headers of
  multiprocessing children included): that one goes to console.log only. A traceback ending in
  anything else (a real crash, even while stopping) reaches the terminal in full.

The logs folder is the app's ``/opt/aws/panorama/logs`` and the app can write into it, so
console.log is opened relative to the folder's fd with ``O_NOFOLLOW`` and kept only when it is
a regular file (:mod:`panorama_cli.localrun.safe_files`): a link, FIFO or folder the app put in
its place is moved aside to ``console.log.not-followed`` (one note says so) and a new file made,
never written through. Rotation renames and deletes regular files only.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO

from panorama_cli.localrun import safe_files

log = logging.getLogger(__name__)

#: console.log keeps at most this many bytes per node (64 MiB).
MAX_BYTES = 64 << 20
#: A traceback held back longer than this many lines is shown as it is.
MAX_HELD_LINES = 2000
#: Where a link, FIFO or folder found in console.log's place is moved.
ASIDE_SUFFIX = ".not-followed"

_TRACEBACK = "Traceback (most recent call last):"
_CONTINUATION = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
_PROCESS_HEADER = re.compile(r"^Process \S+:$")
_INTERRUPT = re.compile(r"^(?:\S+\.)?KeyboardInterrupt(?::.*)?$")


def _size(count: int) -> str:
    return f"{count >> 20} MiB" if count >= 1 << 20 else f"{count} bytes"


class ConsoleLog:
    """One node's console output (see the module docstring).

    Args:
        path: console.log (opened for appending on the first line).
        node: the node's name (notes).
        on_output: called with (node, line) for each line shown on the terminal; its errors
            (a closed terminal) are swallowed.
        stopping: says whether the runner has begun stopping the app (its SIGINT).
        max_bytes: the cap of console.log.
        rotate: (bytes per file, older files kept): rotate instead of capping (serve).

    Attributes:
        notes: one line per kind of loss (cap reached, write failed), as they happen.
        dropped: lines not written to console.log.
        written: bytes written to console.log.
        hidden: lines of stop tracebacks kept off the terminal.
    """

    def __init__(
        self,
        path: Path,
        node: str,
        on_output: Callable[[str, str], None] | None = None,
        stopping: Callable[[], bool] = lambda: False,
        max_bytes: int = MAX_BYTES,
        rotate: tuple[int, int] | None = None,
    ) -> None:
        self.path = Path(path)
        self.node = node
        self.notes: list[str] = []
        self.dropped = 0
        self.written = 0
        self.hidden = 0
        self._on_output = on_output
        self._stopping = stopping
        self._max = max_bytes if rotate is None else rotate[0]
        self._keep = None if rotate is None else rotate[1]
        if rotate is not None:  # a restarted node appends: its file's size counts
            try:
                with safe_files.opened_dir(self.path.parent) as folder:
                    info = safe_files.lstat_in(folder, self.path.name)
                if info is not None and stat.S_ISREG(info.st_mode):
                    self.written = info.st_size
            except (OSError, ValueError):
                pass
        self._file: IO[bytes] | None = None
        self._failed: str | None = None  # why console.log stopped taking lines
        self._held: list[str] | None = None  # a traceback printed while stopping
        self._interrupted = False  # ... that ended in KeyboardInterrupt

    # -- console.log ------------------------------------------------------------------------
    def _write(self, raw: bytes) -> None:
        if self._failed is not None:
            self.dropped += 1
            return
        if self.written + len(raw) > self._max and self._keep is not None and self.written:
            self._rotate()
        if self.written + len(raw) > self._max and self._keep is None:
            self._stop_writing(f"console.log reached its {_size(self._max)} cap", raw)
            return
        try:
            if self._file is None:
                self._file = self._open()
            self._file.write(raw)
            self._file.flush()
            self.written += len(raw)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            self._stop_writing(f"console.log cannot be written ({reason})", raw)

    def _open(self) -> IO[bytes]:
        """console.log for appending: a regular file opened relative to its folder's fd, never
        through a link; something else in its place is moved aside first (and noted).

        Raises:
            OSError: it cannot be opened (or what is in its place cannot be moved).
        """
        name = self.path.name
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        with safe_files.opened_dir(self.path.parent) as folder:
            try:
                fd = safe_files.open_regular(folder, name, flags)
            except safe_files.NotRegular as exc:
                aside = f"{name}{ASIDE_SUFFIX}"
                try:
                    os.rename(name, aside, src_dir_fd=folder, dst_dir_fd=folder)
                except OSError as moved:
                    why = f"{name} is {exc.kind} (not followed, not moved: {moved.strerror})"
                    raise OSError(exc.errno, why) from None
                note = (
                    f"node {self.node}: {name} was {exc.kind}, not a file: moved aside to "
                    f"{aside}, never written through"
                )
                self.notes.append(note)
                log.warning("%s", note)
                fd = safe_files.open_regular(folder, name, flags | os.O_EXCL)
        return open(fd, "ab", buffering=0)  # noqa: SIM115 - closed by close()

    def _rotate(self) -> None:
        """console.log -> console.log.1 -> ... -> console.log.<keep> (the oldest removed);
        only regular files are renamed or removed (names in the app's folder, see above)."""
        self._discard_buffer()
        keep = self._keep or 0
        name = self.path.name
        try:
            with safe_files.opened_dir(self.path.parent) as folder:
                for n in range(keep, 0, -1):
                    older = f"{name}.{n}"
                    newer = f"{name}.{n - 1}" if n > 1 else name
                    try:
                        if n == keep and safe_files.is_regular(folder, older):
                            safe_files.remove(folder, older)
                        safe_files.rename_regular(folder, newer, older)
                    except OSError as exc:  # e.g. the app made console.log.2 a folder
                        log.debug("node %s: %s not rotated: %s", self.node, newer, exc)
                if safe_files.is_regular(folder, name):  # not renamed: the cap still holds
                    safe_files.remove(folder, name)
        except OSError as exc:
            log.debug("node %s: console.log not rotated: %s", self.node, exc)
        self.written = 0

    def _stop_writing(self, why: str, raw: bytes) -> None:
        self._failed = why
        self.dropped += 1
        note = f"node {self.node}: {why}; later lines are not kept (the app keeps running)"
        self.notes.append(note)
        log.debug("%s", note)
        try:  # one line in the file saying so, when it still takes one
            if self._file is not None:
                self._file.write(f"[panorama-cli] {why}; later lines are not kept\n".encode())
                self._file.flush()
        except (OSError, ValueError):
            pass
        self._discard_buffer()

    def _discard_buffer(self) -> None:
        """Close the file without flushing what a full disk refused (close would raise)."""
        if self._file is None:
            return
        try:
            self._file.close()
        except (OSError, ValueError):
            pass
        self._file = None

    # -- terminal ---------------------------------------------------------------------------
    def _show(self, line: str) -> None:
        if self._on_output is None:
            return
        try:
            self._on_output(self.node, line)
        except Exception:  # noqa: BLE001 - the terminal is gone; the pipe must drain
            log.debug("node %s: a console line could not be shown", self.node, exc_info=True)

    def _terminal(self, line: str) -> None:
        if self._held is not None and self._interrupted:
            # held: a traceback that ended in KeyboardInterrupt; a chained one may follow
            if line == "" or line in _CONTINUATION:
                self._held.append(line)
                self._interrupted = line == ""
                return
            self._hide()
        if self._held is None:
            if self._stopping() and (line == _TRACEBACK or _PROCESS_HEADER.match(line)):
                self._held = [line]
            else:
                self._show(line)
            return
        self._held.append(line)
        is_end = (
            line
            and not line[0].isspace()
            and line not in (_TRACEBACK, *_CONTINUATION)
            and not _PROCESS_HEADER.match(line)
        )
        if is_end and _INTERRUPT.match(line.strip()):
            self._interrupted = True
        elif is_end or len(self._held) > MAX_HELD_LINES:
            self._release()

    def _hide(self) -> None:
        self.hidden += len(self._held or ())
        self._held, self._interrupted = None, False

    def _release(self) -> None:
        held, self._held, self._interrupted = self._held or [], None, False
        for line in held:
            self._show(line)

    # -- the pump's side --------------------------------------------------------------------
    def feed(self, raw: bytes) -> None:
        """One line as read from the pipe (bytes, with its newline). Never raises."""
        try:
            self._write(raw)
            self._terminal(raw.decode("utf-8", "replace").rstrip("\n"))
        except Exception:  # noqa: BLE001 - never stop draining the app's output
            log.debug("node %s: console line lost", self.node, exc_info=True)

    def close(self) -> None:
        """Drop a held stop traceback; show one cut short (the app died in the middle of it);
        close the file. Idempotent."""
        if self._interrupted:
            self._hide()
        self._release()
        if self._file is not None:
            try:
                self._file.close()
            except (OSError, ValueError):
                pass
            self._file = None
        if self.dropped and self._failed is not None:
            summary = f"node {self.node}: {self.dropped} console lines not kept ({self._failed})"
            if summary not in self.notes:
                self.notes.append(summary)
