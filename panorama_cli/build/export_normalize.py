"""Make ``docker export`` of the same image give the same bytes every time.

A container's export differs from the image's content only in what Docker creates per
container: the entries ``.dockerenv``, ``etc/hostname``, ``etc/hosts``, ``etc/resolv.conf``,
``etc/mtab``, ``dev/console``, ``dev/pts``, ``dev/shm`` and their folders ``dev`` and ``etc``
carry the container's creation time (their content is empty: the container never started).
:func:`normalized` rewrites the modification time in those tar headers (and the header
checksum) to a fixed value while the stream goes by — no extra pass, no copy of the data:
every other byte is yielded as it came (a chunk without a header in it is yielded as is).

Tar format: POSIX ustar / PAX 512-byte headers as Go's archive/tar (Docker) writes them;
``mtime`` is the 12-byte octal field at offset 136, ``chksum`` the 8-byte field at 148
(sum of the header bytes with the checksum field read as spaces), ``size`` at 124.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

log = logging.getLogger(__name__)

BLOCK = 512
#: Entries Docker creates (or touches) in every container, as export names them.
DOCKER_ENTRIES = frozenset(
    {
        ".dockerenv",
        "dev",
        "dev/console",
        "dev/pts",
        "dev/shm",
        "etc",
        "etc/hostname",
        "etc/hosts",
        "etc/mtab",
        "etc/resolv.conf",
    }
)


def _name(header: bytes | bytearray) -> str:
    name = bytes(header[0:100]).split(b"\0", 1)[0]
    prefix = bytes(header[345:500]).split(b"\0", 1)[0] if header[257:262] == b"ustar" else b""
    full = (prefix + b"/" + name) if prefix else name
    return full.decode("utf-8", "replace").removeprefix("./").rstrip("/")


def _size(field: bytes | bytearray) -> int:
    if field[0] & 0x80:  # base-256 (GNU) for sizes beyond 8 GiB
        return int.from_bytes(bytes(field[1:]), "big")
    text = bytes(field).strip(b"\0 ")
    return int(text, 8) if text else 0


def _with_mtime(header: bytearray, mtime: int) -> bytearray:
    header[136:148] = b"%011o\0" % mtime
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return header


def normalized(
    chunks: Iterable[bytes], *, mtime: int = 0, names: frozenset[str] = DOCKER_ENTRIES
) -> Iterator[bytes]:
    """The tar stream ``chunks`` with the modification time of ``names`` set to ``mtime``.

    Args:
        chunks: an uncompressed tar stream in pieces of any size.
        mtime: seconds since the epoch for the rewritten entries (e.g. the image's
            creation time, so that the same image always gives the same bytes).
        names: entry names (without ``./`` or a trailing ``/``) to rewrite.

    Yields:
        The stream, byte for byte the same length; only the rewritten headers differ.
    """
    pending = bytearray()  # an incomplete header
    skip = 0  # data bytes (padded to 512) still to pass through unchanged
    done = False  # after the end-of-archive block: pass everything through
    for chunk in chunks:
        if skip >= len(chunk) or done:  # all data: no header to look at, no copy
            skip = 0 if done else skip - len(chunk)
            yield chunk
            continue
        view = memoryview(chunk)
        while view:
            if done:
                yield bytes(view)
                break
            if skip:
                step = min(skip, len(view))
                yield bytes(view[:step])
                view, skip = view[step:], skip - step
                continue
            need = BLOCK - len(pending)
            pending += view[:need]
            view = view[need:]
            if len(pending) < BLOCK:
                break
            header, pending = pending, bytearray()
            if not any(header):
                done = True
                yield bytes(header)
                continue
            if _name(header) in names:
                header = _with_mtime(header, mtime)
            skip = -(-_size(header[124:136]) // BLOCK) * BLOCK
            yield bytes(header)
    if pending:
        yield bytes(pending)
