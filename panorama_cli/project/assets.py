"""Content-addressed asset store of a project's ``assets/`` folder.

Every asset is stored as ``assets/<sha256><suffix>`` where ``<sha256>`` is the hex SHA-256 of
the bytes *on disk* (for a container asset: of the compressed ``.tar.gz``), which is what
``package.json`` refers to as ``assetUri`` / ``descriptorUri``.

All writers work in one streaming pass with bounded memory: the bytes are (optionally)
gzip-compressed with ISA-L on two threads, hashed on their way to disk and written to a
temporary file ``assets/.tmp-*`` that is fsync'ed and then renamed into place with
:func:`os.replace` (atomic, since it is on the same file system). On any exception, including
``KeyboardInterrupt``, the temporary file is removed and the exception propagates, so the
``assets/`` folder is left exactly as it was.

The intended command flow (see :mod:`panorama_cli.project.asset_cleanup`) is: store the new files
inside ``rollback_new_assets`` (which removes exactly the files this command added if anything
fails before the commit), rewrite ``package.json`` atomically, then ``remove_superseded`` the
files the old ``package.json`` pointed to (best effort; only content addresses, never through
a symlink).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from panorama_cli.errors import UserError
from panorama_cli.interrupts import deferred_signals

log = logging.getLogger(__name__)

#: Bytes per read when copying or hashing files.
READ_CHUNK = 1024 * 1024

#: gzip settings, measured on a 1.9 GB ``docker export`` stream (see benchmarks/).
GZIP_LEVEL = 1
GZIP_THREADS = 2
GZIP_BLOCK = 1024 * 1024

#: Temporary files of the writers start with this; they are never asset content.
TMP_PREFIX = ".tmp-"
_ASSET_NAME = re.compile(r"^(?P<sha>[0-9a-f]{64})(?P<suffix>\.[A-Za-z0-9._-]+)?$")
#: The only names the store ever deletes: what its own writers produce for package.json.
CONTENT_ADDRESS = re.compile(r"^[0-9a-f]{64}\.(?:tar\.gz|json)$")


def is_content_address(uri: object) -> bool:
    """Whether ``uri`` is a content address: 64 lower-case hex + ``.tar.gz`` or ``.json``.

    No folder part, no other suffix: the names :func:`store_stream` gives model, container
    and descriptor files. Anything else in an ``assetUri``/``descriptorUri`` is never deleted.
    """
    return isinstance(uri, str) and CONTENT_ADDRESS.fullmatch(uri) is not None


@dataclass(frozen=True)
class StoredAsset:
    """An asset file in the store.

    Attributes:
        sha256: hex SHA-256 (64 lower-case characters) of the file's bytes.
        path: the file, ``<assets_dir>/<sha256><suffix>``.
        size: size of the file in bytes.
        created: True when this store call added the file; False when an identical file was
            already there (then a rollback must not delete it).
    """

    sha256: str
    path: Path
    size: int
    created: bool = field(default=True, compare=False)

    @property
    def uri(self) -> str:
        """The name ``package.json`` uses for the asset, e.g. ``"<sha256>.tar.gz"``."""
        return self.path.name


class _HashingWriter:
    """File-like sink that hashes and counts bytes on their way to an open binary file."""

    def __init__(self, fileobj: BinaryIO):
        self._f = fileobj
        self.hasher = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        n = self._f.write(data)
        self.size += len(data) if n is None else n
        return len(data) if n is None else n

    def flush(self) -> None:
        self._f.flush()


def _check_dir(assets_dir: Path) -> None:
    if not assets_dir.is_dir():
        raise UserError(
            f"assets folder {assets_dir} does not exist",
            hint="run the command from the project root (the folder holding assets/ and "
            f"packages/), or create it with: mkdir -p {assets_dir}",
        )


def _check_suffix(suffix: str) -> None:
    if suffix and not re.fullmatch(r"\.[A-Za-z0-9._-]+", suffix):
        raise ValueError(f"asset suffix must look like '.tar.gz' or '.json', got {suffix!r}")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a directory; the rename is still atomic
    finally:
        os.close(fd)


def file_mode() -> int:
    """Permission bits for a new file: ``0o666`` less the process umask (as ``open`` would).

    Read from ``/proc/self/status`` (Linux); elsewhere set and restored with ``os.umask``.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _raise_disk_error(exc: OSError, assets_dir: Path) -> None:
    """Raise a UserError for a full disk or a read-only/forbidden folder; else return."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise UserError(
            f"no space left on the device holding {assets_dir} ({exc.strerror})",
            hint="free disk space (e.g. docker system prune, or delete old build output) "
            "and run the command again",
        ) from exc
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        raise UserError(
            f"cannot write to {assets_dir}: {exc.strerror}",
            hint=f"make the folder writable for you (e.g. sudo chown -R $USER {assets_dir})",
        ) from exc


def store_stream(
    chunks: Iterable[bytes],
    assets_dir: Path,
    *,
    suffix: str = ".tar.gz",
    compress: bool = True,
    progress: Callable[[int], None] | None = None,
) -> StoredAsset:
    """Write a byte stream into the store in one pass, gzip-compressing it on the way.

    Args:
        chunks: the input bytes, in pieces of any size (e.g. ``docker export`` chunks of
            1 MiB). Consumed exactly once.
        assets_dir: the project's ``assets/`` folder; must exist.
        suffix: file name suffix after the hash, e.g. ``".tar.gz"`` or ``".json"``.
        compress: gzip the stream (ISA-L level 1, 2 threads) when True; store it as is when
            False.
        progress: called after each chunk with the number of *input* bytes it held.

    Returns:
        The stored asset; its name is the SHA-256 of the bytes written to disk (the
        compressed bytes when ``compress`` is True).

    Raises:
        UserError: ``assets_dir`` is missing, not writable, or the disk is full.
        Any exception raised by ``chunks`` or ``progress`` (including ``KeyboardInterrupt``)
        propagates unchanged. In every error case the temporary file is removed and
        ``assets_dir`` is left as it was.

    Memory use is bounded (a few MiB of compression buffers) whatever the stream length.
    """
    _check_suffix(suffix)
    assets_dir = Path(assets_dir)
    _check_dir(assets_dir)
    tmp: Path | None = None
    try:
        # the file and its name arrive together: a Ctrl-C/SIGTERM in between would leak it
        with deferred_signals():
            fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=".part", dir=assets_dir)
            tmp = Path(tmp_name)
        with os.fdopen(fd, "wb", buffering=READ_CHUNK) as out:
            sink = _HashingWriter(out)
            if compress:
                _write_gzip(chunks, sink, progress)
            else:
                for chunk in chunks:
                    sink.write(chunk)
                    if progress is not None:
                        progress(len(chunk))
            out.flush()
            os.fchmod(out.fileno(), file_mode())
            os.fsync(out.fileno())
        sha = sink.hasher.hexdigest()
        final = assets_dir / f"{sha}{suffix}"
        existed = os.path.lexists(final)
        os.replace(tmp, final)
    except OSError as exc:
        _unlink_quietly(tmp)
        _raise_disk_error(exc, assets_dir)
        raise
    except BaseException:
        _unlink_quietly(tmp)
        raise
    _fsync_dir(assets_dir)
    log.debug("asset %s: %d bytes (%s)", final.name, sink.size, "existed" if existed else "new")
    return StoredAsset(sha256=sha, path=final, size=sink.size, created=not existed)


def _write_gzip(
    chunks: Iterable[bytes], sink: _HashingWriter, progress: Callable[[int], None] | None
) -> None:
    from isal import igzip_threaded

    gz = igzip_threaded.open(  # type: ignore[no-untyped-call]
        sink, "wb", compresslevel=GZIP_LEVEL, threads=GZIP_THREADS, block_size=GZIP_BLOCK
    )
    try:
        for chunk in chunks:
            gz.write(chunk)
            if progress is not None:
                progress(len(chunk))
    except BaseException:
        # Stop the worker threads; what they still write goes to a file we delete anyway.
        try:
            gz.close()
        except BaseException:  # the original exception matters, not this one
            pass
        raise
    gz.close()


def _unlink_quietly(path: Path | None) -> None:
    if path is None:
        return
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _file_chunks(src: Path, size: int = READ_CHUNK) -> Iterable[bytes]:
    with open(src, "rb") as f:
        while chunk := f.read(size):
            yield chunk


def store_file(
    src: Path,
    assets_dir: Path,
    *,
    suffix: str,
    progress: Callable[[int], None] | None = None,
) -> StoredAsset:
    """Copy an existing file (a model ``.tar.gz``, a descriptor ``.json``) into the store.

    The bytes are copied unchanged (no recompression) and hashed while copying, with the
    same atomic temp-file-and-rename as :func:`store_stream`.

    Args:
        src: the file to copy.
        assets_dir: the project's ``assets/`` folder; must exist.
        suffix: file name suffix after the hash, e.g. ``".tar.gz"``.
        progress: called after each 1 MiB piece with its size in bytes.

    Returns:
        The stored asset, named after the SHA-256 of ``src``'s bytes.

    Raises:
        UserError: ``src`` does not exist or is not a regular file; ``assets_dir`` is
            missing, not writable, or the disk is full.
    """
    src = Path(src)
    if not src.is_file():
        raise UserError(
            f"{src} does not exist or is not a file",
            hint="check the path (relative paths are taken from the current folder)",
        )
    try:
        f = open(src, "rb")  # opened here so that a read error is not taken for a write error
    except OSError as exc:
        raise UserError(
            f"cannot read {src}: {exc.strerror}",
            hint=f"make it readable for you (e.g. sudo chmod a+r {src})",
        ) from exc
    with f:
        chunks = iter(lambda: f.read(READ_CHUNK), b"")
        return store_stream(chunks, assets_dir, suffix=suffix, compress=False, progress=progress)


def store_bytes(data: bytes, assets_dir: Path, *, suffix: str) -> StoredAsset:
    """Store ``data`` unchanged as ``<sha256(data)><suffix>`` (e.g. a descriptor ``.json``).

    Raises:
        UserError: as :func:`store_stream`.
    """
    return store_stream([bytes(data)], assets_dir, suffix=suffix, compress=False)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB pieces (bounded memory).

    Raises:
        OSError: the file cannot be read.
    """
    hasher = hashlib.sha256()
    for chunk in _file_chunks(Path(path)):
        hasher.update(chunk)
    return hasher.hexdigest()


def verify(path: Path) -> bool:
    """Whether an asset file's name matches its content.

    Args:
        path: an asset file ``<sha256><suffix>``.

    Returns:
        True when the name starts with 64 hex characters equal to the SHA-256 of the file's
        bytes; False when it does not, when the name is not an asset name, or when the file
        is missing.
    """
    path = Path(path)
    m = _ASSET_NAME.match(path.name)
    if not m or not path.is_file():
        return False
    return sha256_file(path) == m.group("sha")
