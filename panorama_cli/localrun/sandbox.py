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
#: "dir", "symlink" (source = link text), "bind", "ro-bind", "dev-bind".
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


def app_ops(src: Path, logs: Path, storage: Path) -> list[Op]:
    """The app's three folders (after :func:`root_ops`, /dev and /proc)."""
    return [
        ("bind", str(src), APP_ROOT),
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
