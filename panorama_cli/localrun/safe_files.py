"""Files in folders an app can write into (its logs, storage and clips), never followed.

A node's ``/opt/aws/panorama/logs`` and ``/opt/aws/panorama/storage`` are host folders the
runner owns and reads, rotates, lists, serves and deletes files in, as root under serve; the app
writes into them too, so any name in them may be a symbolic link to a host file, a FIFO that
blocks an ``open``, a directory or a device. Everything here works on directory file
descriptors, one path component at a time:

- :func:`open_dir` opens a folder from a trusted root (followed as given) down through
  components opened with ``O_DIRECTORY | O_NOFOLLOW``: a link among them fails (``ELOOP``);
- :func:`open_regular` opens a name relative to a directory fd with ``O_NOFOLLOW | O_CLOEXEC
  | O_NOCTTY | O_NONBLOCK`` (a FIFO cannot block it) and keeps it only when ``fstat`` says it
  is a regular file (:class:`NotRegular` otherwise);
- :func:`regular_files` / :func:`subdirs` list real files / real folders (``lstat``, links
  left out); :func:`find_regular` walks real folders only, bounded;
- :func:`rename_regular`, :func:`remove`, :func:`copytruncate`: rotation and clean-up by name
  within a directory fd (a rename or an unlink acts on the name itself, never on a link's
  target), and copy-then-truncate done on file descriptors of regular files only.

Names passed to these functions are single components (no ``/``, not ``.`` or ``..``).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
#: Bytes copied per call by :func:`copytruncate`.
_COPY_CHUNK = 1 << 20


class NotRegular(OSError):
    """A name that should be a regular file is something else (a link, FIFO, folder, ...).

    Attributes:
        kind: what it is, in words ("a symbolic link", "a FIFO", ...).
    """

    def __init__(self, name: str, kind: str) -> None:
        super().__init__(errno.EINVAL, f"{name} is {kind}, not a regular file")
        self.kind = kind


def kind_of(mode: int) -> str:
    """``st_mode`` in words: "a regular file", "a symbolic link", "a folder", ...."""
    for test, words in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return words
    return "not a regular file"


def _component(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise ValueError(f"{name!r} is not a single file name")
    return name


def open_dir(root: Path | str | int, *parts: str) -> int:
    """A directory fd for ``root/parts...``, no component of ``parts`` followed if a link.

    Args:
        root: a trusted folder (opened as given: links in it are followed), or a directory fd
            (not closed).
        parts: single path components under it, each opened with ``O_NOFOLLOW``.

    Returns:
        The new fd (``O_CLOEXEC``); the caller closes it.

    Raises:
        OSError: a component is missing (``ENOENT``), a link (``ELOOP``) or not a folder
            (``ENOTDIR``). ValueError: a part is not a single component.
    """
    if isinstance(root, int):
        fd = os.open(".", _DIR_FLAGS, dir_fd=root)
    else:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts:
            inner = os.open(_component(part), _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def opened_dir(root: Path | str | int, *parts: str) -> Iterator[int]:
    """:func:`open_dir` as a context manager (the fd is closed at its end)."""
    fd = open_dir(root, *parts)
    try:
        yield fd
    finally:
        os.close(fd)


def open_regular(dir_fd: int, name: str, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
    """Open ``name`` in ``dir_fd`` only if it is a regular file (never through a link).

    Args:
        dir_fd: the folder's fd (:func:`open_dir`).
        name: one component.
        flags: ``os.O_RDONLY``, ``os.O_WRONLY | os.O_APPEND | os.O_CREAT``, ...; ``O_NOFOLLOW``,
            ``O_CLOEXEC``, ``O_NOCTTY`` and ``O_NONBLOCK`` are added (``O_NONBLOCK`` is cleared
            again once the file is known to be regular).
        mode: permission bits of a file ``O_CREAT`` makes.

    Returns:
        The fd; the caller closes it.

    Raises:
        NotRegular: ``name`` is a link, FIFO, folder, socket or device. OSError: it cannot be
        opened (``ENOENT``, ``EACCES``, ...).
    """
    _component(name)
    try:
        fd = os.open(name, flags | _FILE_FLAGS, mode, dir_fd=dir_fd)
    except OSError as exc:
        # O_NOFOLLOW on a link: ELOOP; a FIFO without reader for writing: ENXIO; a folder
        # for writing: EISDIR. Say what the name is.
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.ENOTDIR):
            try:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError:
                raise exc from None
            if not stat.S_ISREG(info.st_mode):
                raise NotRegular(name, kind_of(info.st_mode)) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegular(name, kind_of(info.st_mode))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def lstat_in(dir_fd: int, name: str) -> os.stat_result | None:
    """``lstat`` of ``name`` in ``dir_fd`` (the link itself for a link), None if missing."""
    try:
        return os.stat(_component(name), dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def is_regular(dir_fd: int, name: str) -> bool:
    """Whether ``name`` in ``dir_fd`` is a regular file (a link to one is not)."""
    try:
        info = lstat_in(dir_fd, name)
    except OSError:
        return False
    return info is not None and stat.S_ISREG(info.st_mode)


def regular_files(dir_fd: int) -> list[tuple[str, os.stat_result]]:
    """The regular files directly in ``dir_fd``: ``[(name, lstat)]`` (links, folders, FIFOs,
    ... left out; a file that vanishes while listing too)."""
    found = []
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                found.append((entry.name, info))
    return found


def subdirs(dir_fd: int) -> list[str]:
    """Names of the real folders directly in ``dir_fd`` (links to folders left out)."""
    with os.scandir(dir_fd) as entries:
        return [entry.name for entry in entries if entry.is_dir(follow_symlinks=False)]


def find_regular(
    root: Path | str, name: str, max_depth: int = 4, limit: int = 256
) -> list[tuple[Path, int]]:
    """Every regular file called ``name`` under ``root`` (itself and real sub-folders, down to
    ``max_depth`` levels), sorted by path: ``[(path (for messages), open read-only fd)]``.

    Links are never followed (neither to files nor into folders); at most ``limit`` files. The
    caller closes the fds. A missing ``root`` gives ``[]``.
    """
    found: list[tuple[Path, int]] = []
    try:
        top = open_dir(root)
    except OSError:
        return found

    def walk(fd: int, where: Path, depth: int) -> None:
        if len(found) >= limit:
            return
        with contextlib.suppress(OSError):
            found.append((where / name, open_regular(fd, name)))
        if depth >= max_depth:
            return
        try:
            names = sorted(subdirs(fd))
        except OSError:
            return
        for sub in names:
            try:
                inner = open_dir(fd, sub)
            except OSError:
                continue
            try:
                walk(inner, where / sub, depth + 1)
            finally:
                os.close(inner)

    try:
        walk(top, Path(root), 0)
    finally:
        os.close(top)
    found.sort(key=lambda item: str(item[0]))
    return found


def read_tail(fd: int, limit: int) -> bytes:
    """The last ``limit`` bytes of the open regular file ``fd`` (at most ``limit`` read)."""
    size = os.fstat(fd).st_size
    start = max(0, size - limit)
    chunks, want = [], size - start
    while want > 0:
        chunk = os.pread(fd, min(want, _COPY_CHUNK), start)
        if not chunk:
            break
        chunks.append(chunk)
        start += len(chunk)
        want -= len(chunk)
    return b"".join(chunks)


def rename_regular(dir_fd: int, src: str, dst: str) -> bool:
    """Rename ``src`` to ``dst`` within ``dir_fd`` when ``src`` is a regular file.

    A ``dst`` that is a link or a file is replaced (the name, not what a link points to); a
    ``dst`` folder makes the rename fail.

    Returns:
        True: renamed; False: ``src`` is missing or not a regular file.

    Raises:
        OSError: the rename failed.
    """
    if not is_regular(dir_fd, src):
        return False
    os.rename(_component(src), _component(dst), src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    return True


def remove(dir_fd: int, name: str) -> bool:
    """Unlink ``name`` in ``dir_fd`` (a link is removed itself; a folder is left).

    Returns:
        True: removed; False: missing or a folder.
    """
    try:
        os.unlink(_component(name), dir_fd=dir_fd)
    except (FileNotFoundError, IsADirectoryError):
        return False
    except PermissionError:
        # unlink of a folder is EISDIR on Linux but EPERM elsewhere
        info = lstat_in(dir_fd, name)
        if info is not None and stat.S_ISDIR(info.st_mode):
            return False
        raise
    return True


def copytruncate(dir_fd: int, name: str, copy: str, limit: int | None = None) -> int:
    """logrotate's ``copytruncate`` on file descriptors: copy the regular file ``name`` to
    ``copy`` (written as a new hidden file, then renamed over ``copy``) and truncate ``name``
    to 0 through the fd that was copied.

    Only a regular file with a single link is copied or truncated: a link, a FIFO, a folder
    or a hard link to a file elsewhere is refused.

    Args:
        dir_fd: the folder's fd.
        name, copy: single components.
        limit: copy at most this many bytes (the start of the file); None: all of it.

    Returns:
        Bytes copied.

    Raises:
        NotRegular: ``name`` is not a regular file, or has several links. OSError: a read,
        write, rename or truncate failed (a failed copy leaves ``name`` as it was).
    """
    src = open_regular(dir_fd, name, os.O_RDWR)
    try:
        info = os.fstat(src)
        if info.st_nlink != 1:
            raise NotRegular(name, f"a file with {info.st_nlink} hard links")
        temp = f".{copy}.{os.getpid()}.tmp"
        remove(dir_fd, temp)
        dst = open_regular(dir_fd, temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        copied = 0
        try:
            total = info.st_size if limit is None else min(limit, info.st_size)
            while copied < total:
                chunk = os.pread(src, min(_COPY_CHUNK, total - copied), copied)
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    view = view[os.write(dst, view) :]
                copied += len(chunk)
            os.close(dst)
            dst = -1
            os.rename(temp, _component(copy), src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            if dst >= 0:
                os.close(dst)
            with contextlib.suppress(OSError):
                remove(dir_fd, temp)
            raise
        os.ftruncate(src, 0)
        return copied
    finally:
        os.close(src)
