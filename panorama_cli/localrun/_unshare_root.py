"""Build the app's root in a fresh mount namespace and exec its entry (``unshare`` fallback).

Run by :func:`panorama_cli.localrun.sandbox.unshare_argv` as root inside ``unshare --mount
--propagation private``: mounts a tmpfs on the given root, recreates the steps (dirs,
symlinks, recursive bind mounts, read-only where asked), chroots into it and execs the entry.
Standalone (stdlib only): it runs before the app and imports nothing of panorama_cli.
"""

import json
import os
import subprocess
import sys


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def main() -> None:
    spec = json.loads(sys.argv[1])
    root = spec["root"]
    os.makedirs(root, exist_ok=True)
    _mount("-t", "tmpfs", "tmpfs", root)
    for kind, source, dest in spec["ops"]:
        target = root + dest
        if kind == "dir":
            os.makedirs(target, exist_ok=True)
        elif kind == "symlink":
            os.symlink(source, target)
        else:
            if os.path.isdir(source):
                os.makedirs(target, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                open(target, "a").close()
            _mount("--rbind", source, target)
            if kind == "ro-bind":
                _mount("-o", "remount,bind,ro", target)
    os.chroot(root)
    os.chdir(spec["chdir"])
    os.execvp(spec["argv"][0], spec["argv"])


if __name__ == "__main__":
    main()
