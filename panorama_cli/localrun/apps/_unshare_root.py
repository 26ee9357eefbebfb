"""Build the app's root in fresh namespaces and run its entry without capabilities
(the ``unshare`` fallback of :mod:`panorama_cli.localrun.apps.sandbox`).

Run by :func:`panorama_cli.localrun.apps.sandbox.unshare_argv` as root inside ``unshare --mount
--pid --uts --fork --propagation private``, so it is pid 1 of the new pid namespace: it mounts
a tmpfs on the given root and recreates the steps there (dirs, symlinks, recursive bind mounts,
read-only where asked, including every submount, a minimal /dev, a fresh /proc), forks the
entry (chroot, working directory, then ``setpriv`` with no_new_privs and every capability set,
the bounding set too, emptied, as the node's own unprivileged uid when one is given) and
reaps until the entry ends. Its exit status is the entry's (128+N when signal N ended it);
when it exits, the kernel kills whatever else is left in the namespace (a setsid daemon too).
SIGINT and SIGTERM reach the entry through its process group (this process ignores them).
At EOF on the ``lifeline`` pipe (the runner is gone, even after a SIGKILL) it exits at once,
which ends the namespace. Standalone (stdlib only): it imports nothing of panorama_cli.
"""

import json
import os
import signal
import subprocess
import sys
import threading

_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
_DEV_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
    "ptmx": "pts/ptmx",
}


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def _mount_points(target: str) -> list:
    """``target`` and every mount below it (from /proc/self/mountinfo)."""
    found = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == target or point.startswith(target.rstrip("/") + "/"):
                found.append(point)
    return found


def _read_only(target: str) -> None:
    for point in _mount_points(target):
        _mount("-o", "remount,bind,ro", point)


def _target_for(source: str, target: str) -> None:
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.lexists(target):
            open(target, "a").close()


def _dev(target: str) -> None:
    os.makedirs(target, exist_ok=True)
    _mount("-t", "tmpfs", "-o", "mode=755,nosuid", "tmpfs", target)
    for name in _DEVICES:
        if os.path.exists("/dev/" + name):
            _target_for("/dev/" + name, target + "/" + name)
            _mount("--bind", "/dev/" + name, target + "/" + name)
    for name, link in _DEV_LINKS.items():
        os.symlink(link, target + "/" + name)
    for name in ("shm", "pts"):
        os.makedirs(target + "/" + name, exist_ok=True)


def build(root: str, ops: list) -> None:
    os.makedirs(root, exist_ok=True)
    _mount("-t", "tmpfs", "tmpfs", root)
    for kind, source, dest in ops:
        target = root + dest
        if kind == "dir":
            os.makedirs(target, exist_ok=True)
        elif kind == "symlink":
            os.symlink(source, target)
        elif kind == "tmpfs":  # source: its size in bytes ("": the default)
            os.makedirs(target, exist_ok=True)
            mode = "1777" if dest in ("/tmp", "/dev/shm") else "755"
            size = ",size=" + source if source else ""
            _mount("-t", "tmpfs", "-o", "mode=" + mode + ",nosuid,nodev" + size, "tmpfs", target)
        elif kind == "dev":
            _dev(target)
        elif kind == "proc":
            os.makedirs(target, exist_ok=True)
            _mount("-t", "proc", "-o", "nosuid,nodev,noexec", "proc", target)
        elif kind == "remount-ro":
            _mount("-o", "remount,bind,ro", target)
        else:
            _target_for(source, target)
            _mount("--rbind", source, target)
            if kind == "ro-bind":
                _read_only(target)


def _watch(lifeline: int) -> None:
    """Exit (pid 1: the kernel kills the whole namespace) when the runner's end closes."""
    while True:
        try:
            if not os.read(lifeline, 1):
                os._exit(137)
        except InterruptedError:
            continue
        except OSError:
            os._exit(137)


def _exec_entry(spec: dict) -> None:
    if spec.get("lifeline", -1) >= 0:
        os.close(spec["lifeline"])
    os.chroot(spec["root"])
    os.chdir(spec["chdir"])
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    user = []
    if spec.get("uid") is not None:  # the node's own unprivileged user, no other group
        uid = str(spec["uid"])
        user = ["--reuid=" + uid, "--regid=" + uid, "--clear-groups"]
    setpriv = [
        spec["setpriv"],
        *user,
        "--no-new-privs",
        "--bounding-set=-all",
        "--inh-caps=-all",
        "--ambient-caps=-all",
        "--",
    ]
    os.execv(setpriv[0], setpriv + spec["argv"])


def main() -> None:
    spec = json.loads(sys.argv[1])
    build(spec["root"], spec["ops"])
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    entry = os.fork()
    if entry != 0 and spec.get("lifeline", -1) >= 0:
        threading.Thread(target=_watch, args=(spec["lifeline"],), daemon=True).start()
    if entry == 0:
        try:
            _exec_entry(spec)
        except OSError as exc:
            sys.stderr.write("cannot start {}: {}\n".format(spec["argv"][0], exc))
        os._exit(127)
    while True:  # pid 1: reap every orphan until the entry itself ends
        try:
            pid, status = os.wait()
        except ChildProcessError:
            sys.exit(127)
        if pid == entry:
            code = os.waitstatus_to_exitcode(status)
            sys.exit(128 - code if code < 0 else code)


if __name__ == "__main__":
    main()
