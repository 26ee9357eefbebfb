"""A file system of its own per node: a hard bound on its storage and logs together.

When the runner is root and a loop-mounted ext4 can be made here (:func:`available`, probed
once per process), each node's ``--node-storage`` is an image file of exactly that many bytes
(sparse, ``mkfs.ext4`` with one inode per :data:`BYTES_PER_INODE` bytes), mounted
``nosuid,nodev`` at a folder next to it; its ``storage/`` and ``logs/`` subfolders are bound
onto the node's storage and logs folders, so every reader (the sandbox, console.log, log
rotation, clips) finds them where they always were. A write past the limit fails with ENOSPC
as on a full device, however it is made (``posix_fallocate``, many files); the host never
holds more than the image's size. ``exec`` stays allowed: apps may write helper scripts there.

* ``run``: the image lives in the run folder; at the node's end its files are copied into the
  plain folders (what the run leaves to read), everything is unmounted and the image removed.
* ``serve``: the image is ``<state-dir>/volumes/<node>.ext4`` and lasts (the node's storage
  persists across restarts); it stays mounted while serve runs (:func:`release_all` at its
  end). Mounts a killed serve left are found in ``/proc/self/mountinfo`` and lazily unmounted
  before mounting again. A node whose folders held files before its first image gets them
  copied into it once (when they do not fit, the image is not used and its limit is polled).

Elsewhere the limit is polled (:class:`~.limits.LimitWatch`), said once at start.
"""

from __future__ import annotations

import atexit
import errno
import logging
import os
import shutil
import subprocess
import threading
from pathlib import Path

log = logging.getLogger(__name__)

#: One inode per this many bytes of a node's volume (2 GiB: 131072 files and folders).
BYTES_PER_INODE = 16 * 1024
#: The fewest inodes a volume gets (a tiny limit still holds console.log and a few files).
MIN_INODES = 64
_TIMEOUT_S = 60

_probe: tuple[bool, str] | None = None
_probe_lock = threading.Lock()
_mounted: dict[str, NodeVolume] = {}
_mounted_lock = threading.Lock()


def _run(argv: list[str]) -> None:
    """Run ``argv`` (a list, no shell).

    Raises:
        OSError: it cannot start, times out or fails (its stderr as the message).
    """
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise OSError(f"{argv[0]}: {exc}") from exc
    if out.returncode != 0:
        raise OSError(f"{Path(argv[0]).name}: {(out.stderr or out.stdout).strip()[:300]}")


def _tool(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")


def available() -> tuple[bool, str]:
    """(True, "") when node volumes can be made here (root, ``mkfs.ext4``, ``mount -o loop``
    work: tried once on a 1 MiB image, the answer kept for the process), else (False, why)."""
    global _probe
    with _probe_lock:
        if _probe is None:
            _probe = _try_probe()
            log.debug("node volumes: %s", _probe)
        return _probe


def _try_probe() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "not root"
    if not (_tool("mkfs.ext4") and _tool("mount") and _tool("umount")):
        return False, "mkfs.ext4 (e2fsprogs) or mount not found"
    import tempfile

    # a stop signal (KeyboardInterrupt) may land anywhere in here: unmount in any case, and
    # a folder still busy must not turn that signal into an OSError
    with tempfile.TemporaryDirectory(prefix="panorama-loop-", ignore_cleanup_errors=True) as tmp:
        image, point = Path(tmp) / "probe.ext4", Path(tmp) / "mnt"
        point.mkdir()
        try:
            _make_image(image, 1 << 20, 0, 0)
            _run([str(_tool("mount")), "-o", "loop,nosuid,nodev", str(image), str(point)])
        except OSError as exc:
            return False, f"no loop file system: {exc}"
        finally:
            _unmount(point)
    return True, ""


def _make_image(image: Path, size: int, uid: int, gid: int) -> None:
    """A sparse ``size``-byte ext4 image at ``image`` (created exclusively), root folder
    owned by uid:gid, no blocks kept for root, inodes bounded by the size."""
    fd = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)
    inodes = max(MIN_INODES, size // BYTES_PER_INODE)
    try:
        _run(
            [
                str(_tool("mkfs.ext4")),
                "-q",
                "-F",
                "-m",
                "0",
                "-N",
                str(inodes),
                "-E",
                f"root_owner={uid}:{gid},lazy_itable_init=1,lazy_journal_init=1",
                str(image),
            ]
        )
    except OSError:
        image.unlink(missing_ok=True)
        raise


def mounted_at() -> list[str]:
    """Mount points of this mount namespace (``/proc/self/mountinfo``, escapes decoded)."""
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return []
    points = []
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) > 4:
            points.append(_unescape(fields[4]))
    return points


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 3 < len(text) and text[i + 1 : i + 4].isdigit():
            out.append(chr(int(text[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _unmount(point: Path) -> None:
    """Lazily unmount everything stacked on ``point`` (nothing when nothing is)."""
    target = os.path.realpath(point)
    for _ in range(8):
        if target not in mounted_at():
            return
        try:
            _run([str(_tool("umount")), "-l", target])
        except OSError as exc:
            log.warning("cannot unmount %s: %s", target, exc)
            return


class NodeVolume:
    """One node's volume (see the module docstring).

    Args:
        node: the node's name (log lines).
        image: the image file (``<state-dir>/volumes/<node>.ext4``); mounted at the folder of
            the same name without ``.ext4``.
        size: bytes (``--node-storage``).
        logs / storage: the node's host folders, onto which the volume's ``logs/`` and
            ``storage/`` are bound.
        uid: the node's own uid (it owns the volume's folders), or None (the runner's).
        keep: keep the image at :meth:`close` (serve); else copy its files into the plain
            folders and remove it (run).
    """

    def __init__(
        self,
        node: str,
        image: Path,
        size: int,
        logs: Path,
        storage: Path,
        uid: int | None,
        keep: bool,
    ) -> None:
        self.node = node
        self.image = Path(image)
        self.point = self.image.with_suffix("")
        self.size = size
        self.logs = Path(logs)
        self.storage = Path(storage)
        self.uid = uid
        self.keep = keep
        #: Lines worth telling (an image that could not be used, a size kept).
        self.notes: list[str] = []

    def _targets(self) -> list[tuple[str, Path]]:
        return [("storage", self.storage), ("logs", self.logs)]

    def open(self) -> bool:
        """Mount the volume and bind its folders (made, and filled from the plain folders,
        the first time); False (with a note) when it cannot be used."""
        for _, target in self._targets():
            target.mkdir(parents=True, exist_ok=True)
            _unmount(target)  # a killed runner's binds
        _unmount(self.point)
        self.image.parent.mkdir(parents=True, exist_ok=True)
        self.point.mkdir(exist_ok=True)
        fresh = not self.image.exists()
        owner = self.uid if self.uid is not None else os.getuid()
        try:
            if fresh:
                _make_image(self.image, self.size, owner, owner)
            elif self.image.stat().st_size != self.size:
                self.notes.append(
                    f"node {self.node}: its volume {self.image} keeps its size "
                    f"{self.image.stat().st_size} bytes (remove it to use the new limit)"
                )
            _run([str(_tool("mount")), "-o", "loop,nosuid,nodev", str(self.image), str(self.point)])
        except OSError as exc:
            self.notes.append(f"node {self.node}: no volume of its own ({exc}); storage polled")
            if fresh:
                self.image.unlink(missing_ok=True)
            return False
        try:
            for name, target in self._targets():
                inner = self.point / name
                if not inner.is_dir() or inner.is_symlink():
                    inner.mkdir()
                    os.chown(inner, owner, owner)
                if fresh:
                    _copy(target, inner)
                _run([str(_tool("mount")), "--bind", str(inner), str(target)])
        except (OSError, shutil.Error) as exc:
            why = "its files do not fit" if _enospc(exc) else str(exc)
            self.notes.append(f"node {self.node}: no volume of its own ({why}); storage polled")
            self._unmount_all()
            if fresh:
                self.image.unlink(missing_ok=True)
            return False
        with _mounted_lock:
            _mounted[str(self.image)] = self
        return True

    def full(self) -> bool:
        """No inode left, or (nearly) no block: less than a tenth of it or 1 MiB free (ext4
        refuses writes with some blocks still free, kept for its own metadata)."""
        try:
            info = os.statvfs(self.point)
        except OSError:
            return False
        blocks_left = info.f_bavail * info.f_frsize
        return blocks_left < max(1 << 20, self.size // 10) or info.f_favail == 0

    def close(self) -> None:
        """Unmount; unless ``keep``, copy the files into the plain folders first and remove
        the image."""
        with _mounted_lock:
            _mounted.pop(str(self.image), None)
        for _, target in self._targets():
            _unmount(target)
        if self.keep:  # serve: its logs readable when it has stopped (a copy; the image rules)
            self._copy_out("logs", self.logs, fresh=True)
        else:
            for name, target in self._targets():
                self._copy_out(name, target, fresh=False)
        _unmount(self.point)
        if not self.keep:
            self.image.unlink(missing_ok=True)
            try:
                self.point.rmdir()
            except OSError:
                pass

    def _copy_out(self, name: str, target: Path, fresh: bool) -> None:
        """Copy the volume's ``name`` folder into ``target`` (emptied first with ``fresh``:
        links removed, never followed), the node's own files staying its own (not root's)."""
        if os.path.ismount(target):  # still the volume's own folder: nothing to copy
            log.warning("node %s: its %s folder is still mounted", self.node, name)
            return
        try:
            if fresh:
                for entry in list(target.iterdir()):
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
            _copy(self.point / name, target)
            if self.uid is not None:
                from panorama_cli.localrun.apps.app_user import hand_over

                hand_over(target, self.uid)
        except (OSError, shutil.Error) as exc:
            log.warning("node %s: copying its %s out of its volume: %s", self.node, name, exc)

    def _unmount_all(self) -> None:
        for _, target in self._targets():
            _unmount(target)
        _unmount(self.point)


def _copy(source: Path, target: Path) -> None:
    """Copy a node's files: links as links, contents only (no mode or owner, so no set-uid
    file comes out root's), FIFOs and devices refused (shutil.Error)."""
    shutil.copytree(
        source, target, symlinks=True, dirs_exist_ok=True, copy_function=shutil.copyfile
    )


def _enospc(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    return isinstance(exc, shutil.Error) and "No space left" in str(exc)


def attach(
    node: str, image: Path, size: int, logs: Path, storage: Path, uid: int | None, keep: bool
) -> NodeVolume | None:
    """The node's volume, mounted (already mounted by this process: the same one); None when
    volumes cannot be made here or this one cannot be used (its notes logged)."""
    ok, _ = available()
    if not ok:
        return None
    with _mounted_lock:
        known = _mounted.get(str(image))
    if known is not None:
        return known
    volume = NodeVolume(node, image, size, logs, storage, uid, keep)
    opened = volume.open()
    for note in volume.notes:
        log.warning("%s", note)
    return volume if opened else None


def release_all() -> None:
    """Unmount every volume this process mounted (serve's end, and at exit)."""
    with _mounted_lock:
        volumes = list(_mounted.values())
    for volume in volumes:
        try:
            volume.close()
        except Exception:  # noqa: BLE001 - every volume gets its turn
            log.exception("node %s: closing its volume", volume.node)


atexit.register(release_all)
