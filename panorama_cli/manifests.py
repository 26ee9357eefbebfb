"""Reading and writing manifests (graph.json, package.json, descriptor.json, override.json).

* Reads report malformed JSON as ``file:line:column: message``.
* Writes keep key order, use a 4-space indent and a trailing newline, and are atomic: the text
  goes to a temp file beside the target, is fsync'ed, then renamed over it.
* :class:`Transaction` groups the writes of one command so that either all of them land or,
  if anything fails (Ctrl-C included), the files are restored byte for byte.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from panorama_cli.errors import UserError


def load_json(path: Path) -> Any:
    """Parse the JSON file at ``path``, preserving key order.

    Raises:
        UserError: ``path:line:col: <reason>`` for malformed JSON, or a missing/unreadable file.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None
    return loads(text, path)


def loads(text: str, path: Path | str = "<string>") -> Any:
    """Parse JSON text; errors name ``path:line:col``.

    Raises:
        UserError: for malformed JSON.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{path}:{exc.lineno}:{exc.colno}: malformed JSON: {exc.msg}",
            hint="fix the syntax at that position (a trailing comma or a missing quote is typical)",
        ) from None


def dumps(data: Any) -> str:
    """Serialize ``data`` as every manifest is written: 4-space indent, key order, final newline."""
    return json.dumps(data, indent=4, ensure_ascii=False) + "\n"


def write_atomic(path: Path, data: bytes | str) -> None:
    """Replace ``path`` with ``data`` atomically (temp file in the same folder, fsync, rename).

    Keeps the permission bits of an existing file. On any error the target is untouched.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        except FileNotFoundError:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def pointer(*parts: str | int) -> str:
    """RFC 6901 JSON pointer: ``pointer("nodeGraph", "nodes", 3)`` -> ``/nodeGraph/nodes/3``."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class Transaction:
    """Collects the file changes of one command and applies them all-or-nothing.

    Stage changes with :meth:`write`, :meth:`rename` and :meth:`delete_after`; nothing touches
    the disk until :meth:`commit`. If applying fails part-way (disk full, Ctrl-C), every file
    already replaced is restored from its saved bytes and renamed folders are moved back.
    Deletions registered with :meth:`delete_after` run only once everything else landed.
    """

    def __init__(self) -> None:
        self._writes: dict[Path, bytes] = {}
        self._renames: list[tuple[Path, Path]] = []
        self._deletes: list[Path] = []

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

    def delete_after(self, path: Path) -> None:
        """Delete ``path`` (if present) after all writes and renames succeeded."""
        self._deletes.append(Path(path))

    @property
    def empty(self) -> bool:
        """True when nothing is staged."""
        return not (self._writes or self._renames or self._deletes)

    def commit(self) -> None:
        """Apply the staged renames, then writes, then deletes; roll back on failure."""
        done_renames: list[tuple[Path, Path]] = []
        saved: list[tuple[Path, bytes | None]] = []
        try:
            for src, dst in self._renames:
                if dst.exists():
                    raise UserError(f"{dst} already exists", hint="move it away and re-run")
                os.rename(src, dst)
                done_renames.append((src, dst))
            for path, data in self._writes.items():
                old = path.read_bytes() if path.exists() else None
                saved.append((path, old))
                path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(path, data)
        except BaseException:
            for path, old in reversed(saved):
                if old is None:
                    path.unlink(missing_ok=True)
                else:
                    write_atomic(path, old)
            for src, dst in reversed(done_renames):
                os.rename(dst, src)
            raise
        for path in self._deletes:
            path.unlink(missing_ok=True)


@contextmanager
def transaction() -> Iterator[Transaction]:
    """``with transaction() as tx: ...`` commits the staged changes when the block succeeds."""
    tx = Transaction()
    yield tx
    tx.commit()
