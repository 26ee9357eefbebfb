"""Strict, bounded reading of JSON manifests: one located line for every way it can fail.

What a hostile or broken file can be, and what the reader makes of it (issue 8, F7/F8): a
FIFO or a device such as a symlink to ``/dev/zero`` (refused before reading), a symlink loop
or a permission error (one line), more than 16 MiB, UTF-16 text, nesting thousands of levels
deep (no RecursionError), an integer of more than 4300 digits, ``NaN``/``Infinity`` (not
JSON: deploy would send them), duplicate keys (the last one would silently win).
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from pathlib import Path
from typing import Any

from panorama_cli.errors import UserError

log = logging.getLogger(__name__)

#: Largest manifest or descriptor read, bytes: far above any real one (the official sample's
#: largest is a few KiB), far below what would exhaust memory.
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
#: Deepest nesting of arrays/objects accepted (real manifests use < 10 levels).
MAX_DEPTH = 100


def read_regular(path: Path, where: str | Path | None = None) -> bytes:
    """The bytes of a regular file of at most :data:`MAX_MANIFEST_BYTES`.

    A FIFO, a device (e.g. a symlink to ``/dev/zero``) or a folder is refused without reading
    from it (opened non-blocking, checked with ``fstat``), so it can neither hang nor fill the
    memory.

    Raises:
        UserError: one line naming ``where`` (default: ``path``): missing, unreadable
            (permissions, a symlink loop), not a regular file, or too large.
    """
    where = where or path
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise UserError(f"{where}: file not found") from None
    except OSError as exc:
        raise UserError(f"{where}: cannot read ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UserError(
                f"{where}: not a regular file (a folder, FIFO or device)",
                hint="give the path of a JSON file",
            )
        if info.st_size > MAX_MANIFEST_BYTES:
            raise UserError(
                f"{where}: {info.st_size} bytes, more than a manifest may hold "
                f"({MAX_MANIFEST_BYTES // (1024 * 1024)} MiB)",
                hint="check that this is the right file",
            )
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as fh:
        try:
            return fh.read(MAX_MANIFEST_BYTES + 1)[:MAX_MANIFEST_BYTES]
        except OSError as exc:
            raise UserError(f"{where}: cannot read ({exc.strerror or exc})") from None


def decode(raw: bytes, where: str | Path) -> str:
    """UTF-8 text of a manifest (a UTF-8 byte order mark is tolerated).

    Raises:
        UserError: ``where:line:col: not UTF-8 text`` (e.g. a file saved as UTF-16).
    """
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        encoding = " (UTF-16?)" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise UserError(
            f"{where}:{line}:{col}: not UTF-8 text{encoding}",
            hint="save the file as UTF-8",
        ) from None


def load_json(path: Path) -> Any:
    """Parse the JSON file at ``path``, preserving key order (see :func:`loads`).

    Raises:
        UserError: ``path:line:col: <reason>`` for malformed JSON, NaN/Infinity, duplicate keys
            or too deep nesting; a missing or unreadable file, one that is not a regular file
            or is larger than :data:`MAX_MANIFEST_BYTES`, or is not UTF-8.
    """
    return loads(decode(read_regular(path), path), path)


# strings (skipped) or a bare NaN / Infinity / -Infinity token
_CONSTANT = re.compile(r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)')


class _Refused(ValueError):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def _refuse_constant(name: str) -> Any:
    raise _Refused("constant", name)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Refused("duplicate", key)
        result[key] = value
    return result


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _locate(text: str, refused: _Refused) -> tuple[int, int]:
    """Best-effort line/column of what was refused (strings are skipped)."""
    if refused.kind == "constant":
        for match in _CONSTANT.finditer(text):
            if match.group(1):
                return _position(text, match.start(1))
        return 1, 1
    key = json.dumps(refused.detail, ensure_ascii=False)
    hits = [m.start() for m in re.finditer(re.escape(key) + r"\s*:", text)]
    if len(hits) < 2:
        key = json.dumps(refused.detail)
        hits = [m.start() for m in re.finditer(re.escape(key) + r"\s*:", text)]
    return _position(text, hits[1]) if len(hits) > 1 else (1, 1)


def _depth(text: str) -> tuple[int, int]:
    """Deepest nesting of ``[``/``{`` outside strings, and where it first exceeds MAX_DEPTH."""
    depth = deepest = 0
    in_string = escaped = False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return depth, index
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest, -1


def loads(text: str, path: Path | str = "<string>") -> Any:
    """Parse JSON text as a manifest; errors name ``path:line:col``.

    Stricter than :func:`json.loads`, because the next rewrite or the service would otherwise
    change the meaning silently: ``NaN``/``Infinity`` (not JSON), duplicate keys (the last one
    would win and the first vanish), nesting deeper than :data:`MAX_DEPTH` and integers beyond
    Python's digit limit are refused.

    Raises:
        UserError: for malformed or refused JSON, one line with ``path:line:col``.
    """
    depth, index = _depth(text)
    if index >= 0:
        line, col = _position(text, index)
        raise UserError(
            f"{path}:{line}:{col}: nested more than {MAX_DEPTH} levels deep",
            hint="a manifest needs only a few levels; check the file",
        )
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{path}:{exc.lineno}:{exc.colno}: malformed JSON: {exc.msg}",
            hint="fix the syntax at that position (a trailing comma or a missing quote is typical)",
        ) from None
    except _Refused as exc:
        line, col = _locate(text, exc)
        if exc.kind == "constant":
            raise UserError(
                f"{path}:{line}:{col}: {exc.detail} is not a JSON number",
                hint="use a finite number (or null)",
            ) from None
        raise UserError(
            f"{path}:{line}:{col}: duplicate key {exc.detail!r}",
            hint="keep one of the two entries (the service and the next rewrite keep the last)",
        ) from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of more than 4300 digits
        raise UserError(
            f"{path}: cannot read the JSON: {str(exc).splitlines()[0][:120]}",
            hint="check the file",
        ) from None
