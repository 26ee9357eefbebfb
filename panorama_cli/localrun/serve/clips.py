"""The event clips apps wrote (backpack.clips.ClipRecorder), for serve's ``/api/clips``.

A node's ``/opt/aws/panorama/storage`` is ``<state dir>/storage/<node>/`` under serve, so its
clips are ``storage/<node>/clips/*.mp4``. Clips being written are hidden (``.<name>.mp4``,
renamed when complete) and not listed.

The app writes that folder, so nothing in it is followed: the node and ``clips`` folders are
opened component by component with ``O_NOFOLLOW`` (a ``clips`` that is a link is skipped) and
only regular files are listed, stat'ed (``lstat``) or opened (:mod:`..safe_files`); a link
``clips/leak.mp4 -> ../../../logs/serve.log`` is neither listed nor served.

A clip left hidden by a killed app (:func:`settle_partial_clips`, at serve's start before any
app runs) is finalized when it holds at least one whole fragment (backpack writes fragmented
mp4 with PyAV: ``ftyp``, ``moov``, then ``moof`` + ``mdat`` pairs): cut after its last whole
fragment and renamed to its visible name. Anything else (OpenCV's mp4v writes its index at
the end, so a killed one does not play) is removed.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import time
from pathlib import Path
from typing import Any

from panorama_cli.localrun import safe_files

log = logging.getLogger(__name__)

#: A clip name: what backpack.clips writes (``<UTC time>_<label>[-N].mp4``) and no more.
CLIP_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,250}\.mp4")
#: Top-level boxes read at most per partial clip (a fragment is two).
_MAX_BOXES = 1 << 20


def list_clips(storage_root: Path) -> list[dict[str, Any]]:
    """Every complete clip under ``storage_root/<node>/clips/``, newest first.

    Args:
        storage_root: the state dir's ``storage`` folder (trusted; everything under it is not).

    Returns:
        ``[{"node", "name", "path" ("storage/<node>/clips/<name>", relative to the state
        dir), "bytes", "created" (unix seconds, the file's mtime)}]``; empty when the folder
        does not exist. Only regular files are listed (links, folders and FIFOs are left
        out, as are node or clips folders that are links); files that vanish while listing
        are left out.
    """
    root = Path(storage_root)
    clips: list[dict[str, Any]] = []
    try:
        top = safe_files.open_dir(root)
    except OSError:
        return clips
    try:
        nodes = safe_files.subdirs(top)
        for node in nodes:
            if node.startswith("."):
                continue
            try:
                folder = safe_files.open_dir(top, node, "clips")
            except OSError:
                continue  # no clips folder, or a link
            try:
                files = safe_files.regular_files(folder)
            except OSError:
                files = []
            finally:
                os.close(folder)
            for name, info in files:
                if name.startswith(".") or not CLIP_NAME.fullmatch(name):
                    continue
                clips.append(
                    {
                        "node": node,
                        "name": name,
                        "path": f"{root.name}/{node}/clips/{name}",
                        "bytes": info.st_size,
                        "created": info.st_mtime,
                    }
                )
    except OSError:
        log.debug("clips under %s not listed", root, exc_info=True)
    finally:
        os.close(top)
    clips.sort(key=lambda c: (c["created"], c["name"]), reverse=True)
    return clips


def open_clip(storage_root: Path, node: str, name: str) -> tuple[int, os.stat_result] | None:
    """The clip ``storage_root/<node>/clips/<name>`` opened for reading, never through a link.

    Returns:
        ``(fd, fstat)`` of the regular file (the caller closes the fd), or None: a name that
        is not a clip's, or no such regular file (missing, a link anywhere below
        ``storage_root``, a FIFO, a folder).
    """
    if node.startswith(".") or not CLIP_NAME.fullmatch(name):
        return None
    try:
        with safe_files.opened_dir(storage_root, node, "clips") as folder:
            fd = safe_files.open_regular(folder, name)
    except (OSError, ValueError):
        return None
    return fd, os.fstat(fd)


def settle_partial_clips(storage_root: Path, idle_s: float = 0.0) -> list[str]:
    """Finalize or remove the hidden partial clips (``clips/.<name>.mp4``) a killed app left.

    Run at serve's start, before any app runs (``idle_s``: only clips not written for that many
    seconds, for apps serve does not start and that may still be writing). A partial clip
    holding at least one whole
    fragment is cut after its last whole fragment and renamed to ``<name>.mp4`` (or
    ``<name>-recovered[-N].mp4`` when that exists); one that holds none is removed. Links,
    folders and other non-regular names are left alone (never followed).

    Returns:
        One line per clip settled ("node X: clip Y recovered (N bytes)" / "... removed").
    """
    notes: list[str] = []
    try:
        top = safe_files.open_dir(storage_root)
    except OSError:
        return notes
    try:
        for node in safe_files.subdirs(top):
            try:
                folder = safe_files.open_dir(top, node, "clips")
            except OSError:
                continue
            try:
                for name, info in safe_files.regular_files(folder):
                    if not (name.startswith(".") and CLIP_NAME.fullmatch(name[1:])):
                        continue
                    if idle_s and time.time() - info.st_mtime < idle_s:
                        continue  # being written
                    try:
                        note = _settle(folder, name)
                    except OSError as exc:
                        note = f"partial clip {name[1:]} left as it is: {exc.strerror or exc}"
                    if note:
                        notes.append(f"node {node}: {note}")
            except OSError:
                log.debug("partial clips of %s not settled", node, exc_info=True)
            finally:
                os.close(folder)
    finally:
        os.close(top)
    for note in notes:
        log.info("%s", note)
    return notes


def _settle(folder: int, hidden: str) -> str | None:
    """One hidden partial clip: recovered (cut, renamed) or removed; None when left."""
    visible = hidden[1:]
    try:
        fd = safe_files.open_regular(folder, hidden, os.O_RDWR)
    except OSError:
        return None
    try:
        end = _playable_end(fd)
        if end:
            os.ftruncate(fd, end)
    finally:
        os.close(fd)
    if not end:
        safe_files.remove(folder, hidden)
        return f"partial clip {visible} held no whole fragment: removed"
    stem = visible[: -len(".mp4")]
    candidates = [visible, f"{stem}-recovered.mp4"]
    candidates += [f"{stem}-recovered-{n}.mp4" for n in range(2, 100)]
    for target in candidates:
        try:  # a new name only: link() never replaces
            os.link(hidden, target, src_dir_fd=folder, dst_dir_fd=folder, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError as exc:
            return f"partial clip {visible} not recovered: {exc.strerror}"
        safe_files.remove(folder, hidden)
        return f"partial clip {visible} recovered as {target} ({end} bytes)"
    return None


def _playable_end(fd: int) -> int:
    """The byte after the last whole ``moof`` + ``mdat`` pair of a fragmented mp4 that begins
    ``ftyp``, ``moov``; 0 when there is none (not fragmented, no whole fragment)."""
    size = os.fstat(fd).st_size
    offset, kinds, end, moof = 0, [], 0, False
    for _ in range(_MAX_BOXES):
        if offset + 8 > size:
            break
        head = os.pread(fd, 16, offset)
        if len(head) < 8:
            break
        length, kind = struct.unpack(">I4s", head[:8])
        if length == 1 and len(head) == 16:
            length = struct.unpack(">Q", head[8:16])[0]
        if length < 8 or offset + length > size:
            break  # size 0 (to the end: not finished) or cut by the kill
        kinds.append(kind)
        offset += length
        if kinds[:2] != [b"ftyp", b"moov"][: len(kinds)]:
            return 0
        if kind == b"moof":
            moof = True
        elif kind == b"mdat" and moof:
            end, moof = offset, False
    return end
