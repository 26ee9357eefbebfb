"""The app's mount namespace: /panorama and /opt/aws/panorama/{logs,storage} for one node.

Two ways to make it, chosen once per machine (:func:`mode`):

* bubblewrap (``bwrap``, the well-kept tool; Debian/Ubuntu package ``bubblewrap``): a new
  mount namespace (and pid namespace where the kernel allows it, so nothing the app starts
  can outlive it) rebuilt from this machine's top-level folders, read-only except /tmp,
  /dev (with /dev/shm, where frames are) and the three app folders;
* ``unshare --mount`` as root, when bwrap is missing or cannot make namespaces: the same
  layout built with mount(8) on a tmpfs, then chroot (``_unshare_root.py``).

Neither touches the host's /panorama or /opt. ``PANORAMA_LOCALRUN_SANDBOX=bwrap|unshare``
forces one (tests).

/panorama is writable, as the image's own folder is on the device, but the app's writes never
reach the package's src/: with bubblewrap >= 0.9 it is an overlay of src/ whose writes go to
an invisible tmpfs (``--overlay-src SRC --tmp-overlay /panorama``); otherwise a copy of src/
in the run folder (:func:`copy_src`), removed when the app has stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

from panorama_cli.errors import UserError

APP_ROOT = "/panorama"
LOGS = "/opt/aws/panorama/logs"
STORAGE = "/opt/aws/panorama/storage"
TARGETS = (APP_ROOT, LOGS, STORAGE)
FORCE_ENV = "PANORAMA_LOCALRUN_SANDBOX"
_HELPER = Path(__file__).with_name("_unshare_root.py")

#: One step of building the sandbox's root: (kind, source, destination) with kind one of
#: "dir", "symlink" (source = link text), "bind", "ro-bind", "dev-bind", and (bubblewrap
#: only, see :func:`bwrap_overlay`) "tmp-overlay" (source seen through a throwaway overlay).
Op = tuple[str, str, str]


def root_ops(host: str = "/", inside: str = "/") -> list[Op]:
    """Steps rebuilding ``host`` in the sandbox, leaving room for the :data:`TARGETS`."""
    ops: list[Op] = []
    for entry in sorted(os.scandir(host), key=lambda e: e.name):
        path = os.path.join(inside, entry.name)
        if path in ("/dev", "/proc") or path in TARGETS:
            continue
        if any(t.startswith(path + "/") for t in TARGETS):
            if entry.is_dir(follow_symlinks=False):
                ops += [("dir", "", path), *root_ops(entry.path, path)]
            continue
        if entry.is_symlink():
            ops.append(("symlink", os.readlink(entry.path), path))
        elif path == "/tmp":
            ops.append(("bind", entry.path, path))
        elif entry.is_dir(follow_symlinks=False) or entry.is_file(follow_symlinks=False):
            ops.append(("ro-bind", entry.path, path))
    return ops


def app_ops(src: Path, logs: Path, storage: Path, *, overlay: bool = False) -> list[Op]:
    """The app's three folders (after :func:`root_ops`, /dev and /proc).

    Args:
        src: what /panorama shows: the package's src/ when ``overlay``, else a copy of it
            (:func:`copy_src`) that is bound read-write.
        overlay: /panorama is a ``--tmp-overlay`` of ``src`` (bubblewrap >= 0.9 only).
    """
    return [
        ("tmp-overlay" if overlay else "bind", str(src), APP_ROOT),
        ("bind", str(logs), LOGS),
        ("bind", str(storage), STORAGE),
    ]


def _probe(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@cache
def mode() -> str:
    """ "bwrap-pid" (mount + pid namespace), "bwrap" (mount namespace), "unshare" (root
    fallback) or "" (no way here)."""
    forced = os.environ.get(FORCE_ENV, "")
    bwrap = shutil.which("bwrap")
    if bwrap and forced in ("", "bwrap"):
        base = [bwrap, "--ro-bind", "/", "/", "--dev-bind", "/dev", "/dev"]
        if _probe([*base, "--unshare-pid", "--proc", "/proc", "--", "/bin/true"]):
            return "bwrap-pid"
        if _probe([*base, "--", "/bin/true"]):
            return "bwrap"
    unshare = shutil.which("unshare")
    if unshare and os.geteuid() == 0 and forced in ("", "unshare"):
        if _probe([unshare, "--mount", "--propagation", "private", "/bin/true"]):
            return "unshare"
    return ""


@cache
def bwrap_overlay() -> bool:
    """Whether this machine's bubblewrap mounts overlays (``--overlay-src``/``--tmp-overlay``,
    bubblewrap >= 0.9, and a kernel that lets it)."""
    bwrap = shutil.which("bwrap")
    if not bwrap or not mode().startswith("bwrap"):
        return False
    try:
        usage = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    if "--tmp-overlay" not in usage.stdout + usage.stderr:
        return False
    base = [bwrap, "--ro-bind", "/", "/", "--dev-bind", "/dev", "/dev", "--tmpfs", "/tmp"]
    return _probe([*base, "--overlay-src", "/etc", "--tmp-overlay", "/tmp/o", "--", "/bin/true"])


def copy_src(src: Path, dest: Path) -> Path:
    """A copy of the package's ``src`` at ``dest`` (replaced if present) for the app to write
    in: symlinks stay symlinks (they resolve inside the sandbox either way), modes and times
    are kept; ``dest`` itself is left out when it lies inside ``src``.

    Raises:
        UserError: src/ cannot be read or the copy cannot be written (one line naming it).
    """
    src, dest = Path(src), Path(dest)
    inside = dest.resolve().is_relative_to(src.resolve())

    def skip(folder: str, names: list[str]) -> set[str]:
        if not inside:
            return set()
        return {n for n in names if (Path(folder) / n).resolve() == dest.resolve()}

    try:
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(src, dest, symlinks=True, ignore=skip)
    except (OSError, shutil.Error) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise UserError(f"{src}: cannot copy it for the app's /panorama: {exc}") from exc
    return dest


def unavailable() -> UserError:
    return UserError(
        "cannot give the app its /panorama: bubblewrap (bwrap) is not installed or cannot "
        "create a mount namespace here (and `unshare --mount` needs root)",
        hint="install it (apt-get install bubblewrap) or run where user namespaces are allowed",
    )


def bwrap_argv(ops: list[Op], entry: list[str], info_fd: int, pid_namespace: bool) -> list[str]:
    """bwrap command line: ``ops`` then ``entry`` in /panorama, in a new session."""
    args = [shutil.which("bwrap") or "bwrap"]
    for kind, source, dest in ops:
        if kind == "dir":
            args += ["--dir", dest]
        elif kind == "symlink":
            args += ["--symlink", source, dest]
        elif kind == "tmp-overlay":
            args += ["--overlay-src", source, "--tmp-overlay", dest]
        else:
            args += [f"--{kind}", source, dest]
    args += ["--dev-bind", "/dev", "/dev"]
    args += ["--unshare-pid", "--proc", "/proc"] if pid_namespace else ["--bind", "/proc", "/proc"]
    args += ["--chdir", APP_ROOT, "--die-with-parent", "--new-session", "--info-fd", str(info_fd)]
    return [*args, "--", *entry]


def unshare_argv(ops: list[Op], entry: list[str], new_root: Path) -> list[str]:
    """``unshare --mount`` running the helper that builds ``new_root`` and execs ``entry``."""
    ops = [*ops, ("dev-bind", "/dev", "/dev"), ("bind", "/proc", "/proc")]
    spec = json.dumps({"root": str(new_root), "ops": ops, "chdir": APP_ROOT, "argv": entry})
    unshare = shutil.which("unshare") or "unshare"
    return [unshare, "--mount", "--propagation", "private", sys.executable, str(_HELPER), spec]
