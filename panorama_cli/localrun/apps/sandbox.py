"""The app's world in host mode: the appliance's filesystem, no capabilities, its own pids.

Two ways to make it, chosen once per machine (:func:`mode`), both with a new mount, pid and
UTS namespace (``/proc`` lists only the sandbox; everything the app starts, a ``setsid``
daemon too, dies with it), ``no_new_privs`` and every capability dropped (CapEff, CapPrm and,
in the fallback, the bounding set are 0: as root the app cannot remount, mount or load
anything, only what file permissions give uid 0):

* bubblewrap (``bwrap``, the well-kept tool; package ``bubblewrap``), ``--cap-drop ALL``;
* as root when bwrap is missing or cannot: ``unshare --mount --pid --uts --fork`` running
  ``_unshare_root.py``, which builds the same layout with mount(8) on a tmpfs, chroots and
  execs the entry through ``setpriv`` (util-linux) with no capabilities at all.

The layout (:func:`layout`), as on the appliance (:mod:`.appliance`): the host's top-level
folders read-only; ``/tmp`` a private tmpfs; ``/run``, ``/root``, ``/home`` and ``$HOME``
empty read-only tmpfs (only what the interpreter needs is bound back, read-only, at its own
path); a minimal ``/dev`` with the host's ``/dev/shm`` (the frames) and GPU devices; a fresh
``/proc`` (``/proc/sys`` and ``/proc/sysrq-trigger`` read-only); ``/panorama`` = the package's
src/ read-only; ``/opt/aws/panorama/{logs,storage}`` = the run folder's (the only writable
folders besides /tmp); the SDK, the python3 shims and the control socket under
``/opt/panorama-cli`` and ``/run/panorama-cli``. Working directory ``/``.

``writable`` (``run --writable-app``, not what the appliance does): /panorama writable, the
app's writes never reaching src/ (bubblewrap >= 0.9: ``--overlay-src SRC --tmp-overlay``; else a
copy of src/ in the run folder, :func:`copy_src`), and working directory /panorama.

``PANORAMA_LOCALRUN_SANDBOX=bwrap|unshare`` forces one (tests).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from panorama_cli.errors import UserError
from panorama_cli.localrun.apps import appliance
from panorama_cli.localrun.apps.appliance import APP_ROOT, LOGS, STORAGE, TOOLS

TARGETS = (APP_ROOT, LOGS, STORAGE, TOOLS)
FORCE_ENV = "PANORAMA_LOCALRUN_SANDBOX"
#: Top-level folders that are not the host's in the sandbox (tmpfs, or made below).
_REPLACED = ("/dev", "/proc", "/tmp", "/run")
#: /proc entries a process with uid 0 could change the host through: read-only.
_PROC_READ_ONLY = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus")
_HELPER = Path(__file__).with_name("_unshare_root.py")

#: One step of building the sandbox's root: (kind, source, destination) with kind one of
#: "dir", "symlink" (source = link text), "bind", "ro-bind", "dev-bind", "tmpfs", "dev"
#: (a minimal /dev), "proc" (a fresh /proc), "remount-ro" and (bubblewrap only, see
#: :func:`bwrap_overlay`) "tmp-overlay" (source seen through a throwaway overlay).
Op = tuple[str, str, str]


def hidden_homes() -> list[str]:
    """/root, /home and $HOME (where it is elsewhere): shown empty in the sandbox."""
    found: list[str] = []
    for path in ("/root", "/home", os.path.realpath(os.path.expanduser("~"))):
        if os.path.isdir(path) and path != "/" and not _under(path, found):
            found.append(path)
    return found


def _under(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def root_ops(host: str = "/", inside: str = "/") -> list[Op]:
    """Steps rebuilding ``host`` read-only in the sandbox, leaving room for the
    :data:`TARGETS` and leaving out what :func:`layout` replaces."""
    ops: list[Op] = []
    skip = {*_REPLACED, *TARGETS, *(h for h in hidden_homes() if h.count("/") == 1)}
    for entry in sorted(os.scandir(host), key=lambda e: e.name):
        path = os.path.join(inside, entry.name)
        if path in skip:
            continue
        if any(t.startswith(path + "/") for t in TARGETS):
            if entry.is_dir(follow_symlinks=False):
                ops += [("dir", "", path), *root_ops(entry.path, path)]
            continue
        if entry.is_symlink():
            ops.append(("symlink", os.readlink(entry.path), path))
        elif entry.is_dir(follow_symlinks=False) or entry.is_file(follow_symlinks=False):
            ops.append(("ro-bind", entry.path, path))
    return ops


@cache
def interpreter_paths(python: str) -> tuple[str, ...]:
    """Folders ``python`` needs to start and import (its prefixes, sys.path), real paths.

    Asked of the interpreter itself with the app's HOME (/root), so that its user site is
    the one the app would use. [] entries that do not exist are left out.
    """
    code = (
        "import json, sys; print(json.dumps([sys.executable, sys.prefix, sys.base_prefix, "
        "sys.exec_prefix, sys.base_exec_prefix] + sys.path))"
    )
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root"}
    try:
        out = subprocess.run(
            [python, "-c", code], capture_output=True, text=True, timeout=60, env=env, check=True
        )
        paths = [python, *json.loads(out.stdout)]
    except (OSError, ValueError, subprocess.SubprocessError):
        paths = [python]
    found = []
    for path in paths:
        if not path or not os.path.exists(path):
            continue
        for candidate in (os.path.abspath(path), os.path.realpath(path)):
            folder = candidate if os.path.isdir(candidate) else os.path.dirname(candidate)
            found.append(folder)
    return tuple(dict.fromkeys(found))


def tool_binds(bin_dir: Path, socket: Path, *, aws: bool) -> list[Op]:
    """The runner's pieces in the sandbox: the python3 shims, the SDK (read-only), the control
    socket and, with ``aws`` (``--aws-profile``), the runner's AWS files read-only."""
    binds: list[Op] = [
        ("ro-bind", str(bin_dir), appliance.BIN_TARGET),
        ("ro-bind", str(appliance.SDK_DIR), appliance.SDK_TARGET),
        ("bind", str(socket), appliance.SOCKET_TARGET),
    ]
    if aws:
        for name, path in appliance.aws_files().items():
            binds.append(("ro-bind", str(path), f"{appliance.AWS_TARGET}/{name}"))
    return binds


def _kept(paths: Sequence[str]) -> list[str]:
    """Of ``paths``, those that the sandbox hides (under /tmp, /run or a home), outermost."""
    hidden = ["/tmp", "/run", *hidden_homes()]
    kept: list[str] = []
    for path in sorted(set(paths), key=len):
        if path not in hidden and _under(path, hidden) and not _under(path, kept):
            kept.append(path)
    return kept


def layout(
    src: Path,
    logs: Path,
    storage: Path,
    *,
    binds: Sequence[Op] = (),
    keep: Sequence[str] = (),
    writable: str = "",
) -> list[Op]:
    """Every step of the app's root (see the module docstring), in order.

    Args:
        src: what /panorama shows (the package's src/; with ``writable="copy"`` its copy).
        logs / storage: the run folder's, at /opt/aws/panorama/logs and /storage.
        binds: more (kind, host path, sandbox path) steps: the SDK, shims, socket, AWS files.
        keep: host folders the app needs at their own path (the interpreter's): bound back
            read-only where the sandbox hides them.
        writable: "" (read-only /panorama, as on the appliance), "overlay" (bubblewrap's
            throwaway overlay of src) or "copy" (``src`` is a copy, bound read-write).
    """
    homes = hidden_homes()
    ops = root_ops()
    ops += [("tmpfs", "", "/tmp"), ("tmpfs", "", "/run"), *(("tmpfs", "", h) for h in homes)]
    ops += [("dev", "", "/dev"), ("bind", "/dev/shm", "/dev/shm")]
    ops += [("dev-bind", d, d) for d in sorted(glob.glob("/dev/nvidia*")) + ["/dev/dri"]
            if os.path.exists(d)]  # fmt: skip
    ops.append(("proc", "", "/proc"))
    ops += [("ro-bind", p, p) for p in _PROC_READ_ONLY if os.path.exists(p)]
    kind = {"": "ro-bind", "overlay": "tmp-overlay", "copy": "bind"}[writable]
    ops += [(kind, str(src), APP_ROOT), ("bind", str(logs), LOGS), ("bind", str(storage), STORAGE)]
    ops += list(binds)
    ops += [("ro-bind", path, path) for path in _kept(keep)]
    ops += [("remount-ro", "", path) for path in ("/run", *homes, "/")]
    return ops


def _probe(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@cache
def mode() -> str:
    """ "bwrap" (bubblewrap with a pid namespace), "unshare" (the root fallback, with
    ``setpriv``) or "" (no sandbox with a pid namespace can be made here)."""
    forced = os.environ.get(FORCE_ENV, "")
    bwrap = shutil.which("bwrap")
    if bwrap and forced in ("", "bwrap"):
        base = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--unshare-pid", "--unshare-uts"]
        if _probe([*base, "--proc", "/proc", "--cap-drop", "ALL", "--", "/bin/true"]):
            return "bwrap"
    unshare, setpriv = shutil.which("unshare"), shutil.which("setpriv")
    if unshare and setpriv and os.geteuid() == 0 and forced in ("", "unshare"):
        if _probe([*_unshare(), "/bin/true"]):
            return "unshare"
    return ""


def _unshare() -> list[str]:
    unshare = shutil.which("unshare") or "unshare"
    return [unshare, "--mount", "--pid", "--uts", "--fork", "--propagation", "private"]


@cache
def bwrap_overlay() -> bool:
    """Whether this machine's bubblewrap mounts overlays (``--overlay-src``/``--tmp-overlay``,
    bubblewrap >= 0.9, and a kernel that lets it)."""
    bwrap = shutil.which("bwrap")
    if not bwrap or mode() != "bwrap":
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
        "cannot give the app its sandbox: bubblewrap (bwrap) is not installed or cannot create "
        "mount and pid namespaces here (and the fallback, `unshare` and `setpriv`, needs root)",
        hint="install it (apt-get install bubblewrap) or run where user namespaces are allowed",
    )


def bwrap_argv(ops: list[Op], entry: list[str], info_fd: int, chdir: str = "/") -> list[str]:
    """bwrap command line: ``ops`` then ``entry`` in ``chdir``, in a new session, with new
    pid and UTS namespaces and no capabilities."""
    args = [shutil.which("bwrap") or "bwrap"]
    for kind, source, dest in ops:
        if kind in ("dir", "dev", "proc", "remount-ro"):
            args += [f"--{kind}", dest]
        elif kind == "tmpfs":
            args += [*(["--perms", "01777"] if dest == "/tmp" else []), "--tmpfs", dest]
        elif kind == "symlink":
            args += ["--symlink", source, dest]
        elif kind == "tmp-overlay":
            args += ["--overlay-src", source, "--tmp-overlay", dest]
        else:
            args += [f"--{kind}", source, dest]
    args += ["--unshare-pid", "--unshare-uts", "--cap-drop", "ALL", "--chdir", chdir]
    args += ["--die-with-parent", "--new-session", "--info-fd", str(info_fd)]
    return [*args, "--", *entry]


def unshare_argv(
    ops: list[Op], entry: list[str], new_root: Path, chdir: str = "/", lifeline: int = -1
) -> list[str]:
    """``unshare`` running the helper that builds ``new_root`` and execs ``entry`` through
    ``setpriv`` with no capabilities.

    Args:
        lifeline: the read end of a pipe whose write end only the runner holds (passed to the
            child): at its EOF (the runner died, even by SIGKILL) the helper ends the sandbox,
            as bubblewrap's ``--die-with-parent`` does (-1: none).
    """
    spec = {
        "lifeline": lifeline,
        "root": str(new_root),
        "ops": ops,
        "chdir": chdir,
        "argv": entry,
        "setpriv": shutil.which("setpriv") or "setpriv",
    }
    return [*_unshare(), sys.executable, str(_HELPER), json.dumps(spec)]
