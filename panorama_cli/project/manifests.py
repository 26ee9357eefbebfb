"""Reading and writing manifests (graph.json, package.json, descriptor.json, override.json).

* Reads (:mod:`panorama_cli.project.strict_json`) report malformed JSON as ``file:line:column:
  message``, read only regular files of bounded size, and refuse NaN/Infinity and duplicate
  keys.
* Writes keep key order, use a 4-space indent and a trailing newline, and are atomic: the text
  goes to a temp file beside the target, is fsync'ed, then renamed over it.
* :class:`Transaction` groups the writes of one command so that either all of them land or,
  if anything fails (Ctrl-C included), the files are restored byte for byte.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from panorama_cli.errors import UserError
from panorama_cli.project.strict_json import (  # noqa: F401 - the manifest reading API lives here too
    MAX_MANIFEST_BYTES,
    decode,
    load_json,
    loads,
    read_regular,
)

log = logging.getLogger(__name__)


def dumps(data: Any) -> str:
    """Serialize ``data`` as every manifest is written: 4-space indent, key order, final newline."""
    return json.dumps(data, indent=4, ensure_ascii=False) + "\n"


def write_atomic(path: Path, data: bytes | str) -> None:
    """Replace ``path`` with ``data`` atomically (temp file in the same folder, fsync, rename).

    Keeps the permission bits of an existing file. On any error the target is untouched.
    """
    from panorama_cli.interrupts import deferred_signals

    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp: str | None = None
    try:
        with deferred_signals():  # the file and its name arrive together
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        except FileNotFoundError:
            from panorama_cli.project.assets import file_mode

            os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def pointer(*parts: str | int) -> str:
    """RFC 6901 JSON pointer: ``pointer("nodeGraph", "nodes", 3)`` -> ``/nodeGraph/nodes/3``."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class _Undo:
    """How to put one replaced file back: a hard-linked backup, saved bytes, or removal."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.backup: Path | None = None
        self.data: bytes | None = None
        self.existed = os.path.lexists(path)
        if not self.existed:
            return
        backup = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.bak"
        try:
            # A second name for the old file: restoring is then a rename, which needs no free
            # space (a full disk cannot stop it).
            os.link(path, backup, follow_symlinks=False)
            self.backup = backup
        except OSError:
            self.data = path.read_bytes()

    def restore(self) -> None:
        if self.backup is not None:
            os.replace(self.backup, self.path)
        elif self.data is not None:
            write_atomic(self.path, self.data)
        else:
            self.path.unlink(missing_ok=True)

    def discard(self) -> None:
        if self.backup is not None:
            try:
                self.backup.unlink()
            except OSError:
                pass


class Transaction:
    """Collects the file changes of one command and applies them all-or-nothing.

    Stage changes with :meth:`write`, :meth:`rename`, :meth:`on_commit` and
    :meth:`after_commit`; nothing touches the disk until :meth:`commit`. If applying fails
    part-way (disk full, a read-only folder), every file already replaced is put back (each
    one on its own, so one failing step does not stop the others) and renamed folders are
    moved back. SIGINT/SIGTERM are held back while the changes land or are undone.

    Clean-up registered with :meth:`after_commit` runs once everything landed and is best
    effort: what it cannot do becomes a line in :attr:`warnings`; it never undoes the commit.

    Attributes:
        committed: True once every staged change landed.
        warnings: one line per clean-up step that did not work out (for the command to show).
    """

    def __init__(self) -> None:
        self._writes: dict[Path, bytes] = {}
        self._renames: list[tuple[Path, Path]] = []
        self._on_commit: list[Callable[[], None]] = []
        self._after: list[Callable[[Callable[[str], None]], None]] = []
        self.committed = False
        self.warnings: list[str] = []

    def write(self, path: Path, data: str | bytes | Any) -> None:
        """Stage writing ``data`` (text, bytes, or a JSON value serialized with :func:`dumps`)."""
        if not isinstance(data, (str, bytes)):
            data = dumps(data)
        self._writes[Path(path)] = data.encode("utf-8") if isinstance(data, str) else data

    def write_json(self, path: Path, data: Any) -> None:
        """Stage a manifest write (always serialized with :func:`dumps`)."""
        self.write(path, dumps(data))

    def rename(self, src: Path, dst: Path) -> None:
        """Stage a rename of a file or folder; staged writes use paths *after* all renames."""
        self._renames.append((Path(src), Path(dst)))

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` the moment the changes landed (signals still held; must not
        raise), e.g. to tell a rollback of new asset files that they are now in use."""
        self._on_commit.append(callback)

    def after_commit(self, cleanup: Callable[[Callable[[str], None]], None]) -> None:
        """Run ``cleanup(warn)`` after a successful commit, best effort (see the class doc)."""
        self._after.append(cleanup)

    @property
    def empty(self) -> bool:
        """True when nothing is staged."""
        return not (self._writes or self._renames or self._after)

    def commit(self) -> None:
        """Apply the staged renames, then writes; roll back on failure; then the clean-ups.

        Raises:
            UserError: a rename target exists, or a file cannot be written (full disk,
                permissions), naming the file; everything already changed was put back
                (the message says which file could not be, if any).
        """
        from panorama_cli import interrupts

        log.debug("committing %d write(s) and %d rename(s)", len(self._writes), len(self._renames))
        with interrupts.deferred_signals():
            self._apply()
            self.committed = True
            interrupts.note_saved([*self._writes, *(dst for _, dst in self._renames)])
            for callback in self._on_commit:
                callback()
        for cleanup in self._after:
            try:
                cleanup(self.warnings.append)
            except Exception as exc:  # best effort: the commit stands
                self.warnings.append(f"clean-up after the change did not finish: {exc}")

    def _apply(self) -> None:
        done_renames: list[tuple[Path, Path]] = []
        replaced: list[_Undo] = []
        current: Path | None = None
        try:
            for src, dst in self._renames:
                current = dst
                if os.path.lexists(dst):
                    raise UserError(f"{dst} already exists", hint="move it away and re-run")
                os.rename(src, dst)
                done_renames.append((src, dst))
            for path, data in self._writes.items():
                current = path
                path.parent.mkdir(parents=True, exist_ok=True)
                undo = _Undo(path)
                try:
                    write_atomic(path, data)
                except BaseException:
                    undo.discard()  # the target is untouched (write_atomic is atomic)
                    raise
                replaced.append(undo)
        except BaseException as exc:
            failed = _roll_back(replaced, done_renames)
            if isinstance(exc, OSError) or failed:
                raise _write_error(current, exc, failed) from exc
            raise
        for undo in replaced:
            undo.discard()


def _roll_back(replaced: list[_Undo], renames: list[tuple[Path, Path]]) -> list[str]:
    """Undo every step on its own; returns one line per step that could not be undone."""
    failed = []
    for undo in reversed(replaced):
        try:
            undo.restore()
        except OSError as exc:
            kept = f" (old content kept in {undo.backup})" if undo.backup else ""
            failed.append(f"{undo.path}: {exc.strerror or exc}{kept}")
    for src, dst in reversed(renames):
        try:
            os.rename(dst, src)
        except OSError as exc:
            failed.append(f"{dst} -> {src}: {exc.strerror or exc}")
    return failed


def _write_error(path: Path | None, exc: BaseException, failed: list[str]) -> UserError:
    if isinstance(exc, UserError):
        message, hint = exc.message, exc.hint
    elif isinstance(exc, OSError):
        message = f"cannot write {path}: {exc.strerror or exc}"
        hint = (
            "free disk space and re-run"
            if exc.errno in (errno.ENOSPC, errno.EDQUOT)
            else "make the folder writable for you and re-run"
        )
    else:
        message, hint = f"{type(exc).__name__}: {exc}", None
    if failed:
        return UserError(
            f"{message}; could not undo: {'; '.join(failed)}",
            hint="restore those files by hand (e.g. from git), then run panorama-cli validate",
        )
    return UserError(message + "; nothing was changed", hint=hint)


@contextmanager
def transaction() -> Iterator[Transaction]:
    """``with transaction() as tx: ...`` commits the staged changes when the block succeeds."""
    tx = Transaction()
    yield tx
    tx.commit()
