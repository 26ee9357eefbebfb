"""The app's world in host mode: the appliance's filesystem, no capabilities, its own pids,
its own unprivileged user.

Two ways to make it, chosen once per machine (:func:`mode`), both with a new mount, pid and
UTS namespace (``/proc`` lists only the sandbox; everything the app starts, a ``setsid``
daemon too, dies with it), ``no_new_privs`` and every capability dropped (CapEff, CapPrm and
the bounding set are 0):

* bubblewrap (``bwrap``, the well-kept tool; package ``bubblewrap``);
* as root when bwrap is missing or cannot: ``unshare --mount --pid --uts --fork`` running
  ``_unshare_root.py``, which builds the same layout with mount(8) on a tmpfs, chroots and
  execs the entry through ``setpriv`` (util-linux) with no capabilities at all.

Who the app is: a root runner builds the root as root (it can reach every folder it binds,
a project or interpreter under /root too) and the entry starts through ``setpriv`` as the
node's own uid and gid (:mod:`.app_user`, :func:`drop_argv`), no supplementary group: files
only root may read (``/etc/shadow``, ``~/.aws/credentials``) stay unreadable, and nodes cannot
signal or read each other. The app is not shown as uid 0: on the appliance root gave an app
nothing it needs here (its root is read-only, what it may write is its own), and a user
namespace made only to say "root" would hand it capabilities in a namespace of its own. A
runner that is not root runs the app as itself in bubblewrap's user namespace
(``--unshare-user --disable-userns``).

The layout (:func:`layout`), as on the appliance (:mod:`.appliance`), from an allow-list: the
host's :data:`ALLOWED_ROOT` (``/usr``, ``/bin``, ``/lib*``, ``/sbin``, ``/etc``) read-only, and
the interpreter's own folders (:func:`interpreter_paths`) read-only at their paths; nothing
else of the host (no ``/work``, ``/srv``, ``/var``, ``/opt``, ``/mnt``, ...); ``/tmp`` a private
tmpfs (sized to the node's memory limit); ``/run``, ``/root``, ``/home`` and ``$HOME`` empty
read-only tmpfs; a minimal ``/dev`` with a private ``/dev/shm`` of :data:`SHM_BYTES` (the frame
rings are memfds passed over the control socket, not files there) and the GPU devices; a fresh
``/proc`` (``/proc/sys`` and ``/proc/sysrq-trigger`` read-only); ``/panorama`` = the package's
src/ read-only; ``/opt/aws/panorama/{logs,storage}`` = the run folder's (the only writable
folders besides /tmp and /dev/shm, the node uid's); the SDK, the python3 shims and the control
socket under ``/opt/panorama-cli`` and ``/run/panorama-cli``. Working directory ``/``.

``writable`` (``run --writable-app``, not what the appliance does): /panorama writable, the
app's writes never reaching src/ (bubblewrap >= 0.9 and no node uid: ``--overlay-src SRC
--tmp-overlay``; else a copy of src/ in the run folder, the node uid's, :func:`copy_src`), and
working directory /panorama.

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
#: The host's folders the app sees, read-only (an allow-list): programs, libraries, settings.
#: Anything else it needs (the interpreter's prefix when it lives elsewhere) is bound at its
#: own path; /work, /srv, /opt, /var, /home, /root, /mnt, /media ... are not there.
ALLOWED_ROOT = ("/bin", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/sbin", "/usr")
#: The app's /dev/shm: a private tmpfs of :data:`SHM_BYTES` (the frame rings are memfds passed
#: over the control socket, :mod:`..frames.memfd`), never the host's. False: the host's
#: /dev/shm (for rings named in /dev/shm).
PRIVATE_SHM = True
SHM_BYTES = 64 << 20
#: /proc entries a process with uid 0 could change the host through: read-only.
_PROC_READ_ONLY = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus")
_HELPER = Path(__file__).with_name("_unshare_root.py")

#: One step of building the sandbox's root: (kind, source, destination) with kind one of
#: "dir", "symlink" (source = link text), "bind", "ro-bind", "dev-bind", "tmpfs" (source =
#: its size in bytes, "" for the default), "dev"
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


def root_ops() -> list[Op]:
    """Steps showing the host's :data:`ALLOWED_ROOT` folders read-only (a symbolic link stays
    a link, as ``/lib -> usr/lib``); nothing else of the host's root."""
    ops: list[Op] = []
    for path in ALLOWED_ROOT:
        if os.path.islink(path):
            ops.append(("symlink", os.readlink(path), path))
        elif os.path.isdir(path):
            ops.append(("ro-bind", path, path))
    return ops


def drop_argv(uid: int) -> list[str]:
    """``setpriv`` to ``uid``:``uid``, no other group, no capability (bounding set too), and
    no_new_privs, followed by the program to run."""
    return [
        shutil.which("setpriv") or "/usr/bin/setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--no-new-privs",
        "--bounding-set=-all",
        "--inh-caps=-all",
        "--ambient-caps=-all",
        "--",
    ]


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


def tool_binds(
    bin_dir: Path, socket: Path, *, aws: bool, aws_files: dict[str, Path] | None = None
) -> list[Op]:
    """The runner's pieces in the sandbox: the python3 shims, the SDK (read-only), the control
    socket and, with ``aws`` (``--aws-profile``), the runner's AWS files read-only (or
    ``aws_files``: name -> the node's own copy of them)."""
    binds: list[Op] = [
        ("ro-bind", str(bin_dir), appliance.BIN_TARGET),
        ("ro-bind", str(appliance.SDK_DIR), appliance.SDK_TARGET),
        ("bind", str(socket), appliance.SOCKET_TARGET),
    ]
    if aws:
        files = appliance.aws_files() if aws_files is None else aws_files
        for name, path in files.items():
            binds.append(("ro-bind", str(path), f"{appliance.AWS_TARGET}/{name}"))
    return binds


#: The folder holding this panorama_cli when it runs from a checkout (an editable install
#: puts it on the interpreter's path): the app never needs it (its SDK is bound on its own).
_PARENT = Path(__file__).resolve().parents[3]
_CHECKOUT = (
    str(_PARENT)
    if (_PARENT / "pyproject.toml").is_file()
    and _PARENT.name not in ("site-packages", "dist-packages")
    else ""
)


def _kept(paths: Sequence[str]) -> list[str]:
    """Of ``paths``, those the sandbox does not show otherwise (outside :data:`ALLOWED_ROOT`,
    or hidden under /tmp, /run or a home), outermost first."""
    hidden = ["/tmp", "/run", *hidden_homes()]
    shown = list(ALLOWED_ROOT)
    kept: list[str] = []
    for path in sorted(set(paths), key=len):
        if path in hidden or path == "/" or _under(path, kept) or path == _CHECKOUT:
            continue
        if _under(path, shown) and not _under(path, hidden):
            continue
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
    tmp_bytes: int = 0,
) -> list[Op]:
    """Every step of the app's root (see the module docstring), in order.

    Args:
        src: what /panorama shows (the package's src/; with ``writable="copy"`` its copy).
        logs / storage: the run folder's, at /opt/aws/panorama/logs and /storage.
        binds: more (kind, host path, sandbox path) steps: the SDK, shims, socket, AWS files.
        keep: host folders the app needs at their own path (the interpreter's): bound back
            read-only where the sandbox does not show them.
        tmp_bytes: the size of the private /tmp (0: the tmpfs default, half the RAM).
        writable: "" (read-only /panorama, as on the appliance), "overlay" (bubblewrap's
            throwaway overlay of src) or "copy" (``src`` is a copy, bound read-write).
    """
    homes = hidden_homes()
    ops = root_ops()
    tmp = str(tmp_bytes) if tmp_bytes else ""
    ops += [("tmpfs", tmp, "/tmp"), ("tmpfs", "", "/run"), *(("tmpfs", "", h) for h in homes)]
    ops.append(("dev", "", "/dev"))
    if PRIVATE_SHM:
        ops.append(("tmpfs", str(SHM_BYTES), "/dev/shm"))
    else:
        ops.append(("bind", "/dev/shm", "/dev/shm"))
    ops += [("dev-bind", d, d) for d in sorted(glob.glob("/dev/nvidia*")) + ["/dev/dri"]
            if os.path.exists(d)]  # fmt: skip
    ops.append(("proc", "", "/proc"))
    ops += [("ro-bind", p, p) for p in _PROC_READ_ONLY if os.path.exists(p)]
    kind = {"": "ro-bind", "overlay": "tmp-overlay", "copy": "bind"}[writable]
    ops += [(kind, str(src), APP_ROOT), ("bind", str(logs), LOGS), ("bind", str(storage), STORAGE)]
    ops += list(binds)
    ops += [("ro-bind", path, path) for path in _kept(keep)]
    ops += [("remount-ro", "", path) for path in ("/run", *homes, "/")]
    return _with_parents(ops)


_BINDS = ("bind", "ro-bind", "dev-bind", "tmp-overlay")


def _with_parents(ops: list[Op]) -> list[Op]:
    """``ops`` with a "dir" step (mode 0755: the node's uid passes) before each mount point's
    folders that no earlier step made (bubblewrap would make them 0700)."""
    out: list[Op] = []
    made: set[str] = {"/"}
    bound: list[str] = []
    for kind, source, dest in ops:
        if kind in (*_BINDS, "tmpfs", "symlink", "dev", "proc") and not _under(dest, bound):
            parts = Path(dest).parts[1:-1]
            for n in range(1, len(parts) + 1):
                folder = "/" + "/".join(parts[:n])
                if folder not in made and not _under(folder, bound):
                    out.append(("dir", "", folder))
                    made.add(folder)
        out.append((kind, source, dest))
        made.add(dest)
        if kind in (*_BINDS, "dev", "proc"):
            bound.append(dest)
    return out


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


@cache
def bwrap_disables_userns() -> bool:
    """Whether this bubblewrap has ``--disable-userns`` (>= 0.8)."""
    bwrap = shutil.which("bwrap")
    try:
        usage = subprocess.run([bwrap or "bwrap", "--help"], capture_output=True, text=True,
                               timeout=30)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return False
    return "--disable-userns" in usage.stdout + usage.stderr


def bwrap_argv(
    ops: list[Op], entry: list[str], info_fd: int, chdir: str = "/", uid: int | None = None
) -> list[str]:
    """bwrap command line: ``ops`` then ``entry`` in ``chdir``, in a new session, with new
    pid and UTS namespaces and no capabilities.

    Args:
        uid: (a root runner) the node's own uid (:mod:`.app_user`): bubblewrap builds the
            root as root, keeping only what ``setpriv`` needs to change user, and the entry
            runs through :func:`drop_argv` as that uid with no capability at all. None: the
            entry runs as the runner's user; a runner that is not root gets a user namespace
            of its own (``--unshare-user``, ``--disable-userns``: no nested one).
    """
    args = [shutil.which("bwrap") or "bwrap"]
    for kind, source, dest in ops:
        if kind == "dir":
            args += ["--perms", "0755", "--dir", dest]
        elif kind in ("dev", "proc", "remount-ro"):
            args += [f"--{kind}", dest]
        elif kind == "tmpfs":
            if dest in ("/tmp", "/dev/shm"):
                args += ["--perms", "01777"]
            args += [*(["--size", source] if source else []), "--tmpfs", dest]
        elif kind == "symlink":
            args += ["--symlink", source, dest]
        elif kind == "tmp-overlay":
            args += ["--overlay-src", source, "--tmp-overlay", dest]
        else:
            args += [f"--{kind}", source, dest]
    args += ["--unshare-pid", "--unshare-uts", "--cap-drop", "ALL"]
    if uid is not None:
        args += [arg for cap in _SETPRIV_CAPS for arg in ("--cap-add", cap)]
        entry = [*drop_argv(uid), *entry]
    elif os.geteuid() != 0:
        args.append("--unshare-user")
        if bwrap_disables_userns():
            args.append("--disable-userns")
    args += ["--chdir", chdir, "--die-with-parent", "--new-session", "--info-fd", str(info_fd)]
    return [*args, "--", *entry]


#: What the sandbox's first program keeps, as root, to become the node's uid (setpriv).
_SETPRIV_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")


def unshare_argv(
    ops: list[Op],
    entry: list[str],
    new_root: Path,
    chdir: str = "/",
    lifeline: int = -1,
    uid: int | None = None,
) -> list[str]:
    """``unshare`` running the helper that builds ``new_root`` and execs ``entry`` through
    ``setpriv`` with no capabilities.

    Args:
        lifeline: the read end of a pipe whose write end only the runner holds (passed to the
            child): at its EOF (the runner died, even by SIGKILL) the helper ends the sandbox,
            as bubblewrap's ``--die-with-parent`` does (-1: none).
        uid: the node's own uid (``setpriv --reuid/--regid --clear-groups``); None: root's.
    """
    spec = {
        "lifeline": lifeline,
        "root": str(new_root),
        "ops": ops,
        "chdir": chdir,
        "argv": entry,
        "setpriv": shutil.which("setpriv") or "setpriv",
        "uid": uid,
    }
    return [*_unshare(), sys.executable, str(_HELPER), json.dumps(spec)]
