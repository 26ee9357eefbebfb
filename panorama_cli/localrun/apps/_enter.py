"""Enter a node's limits, then exec its sandbox (see :mod:`panorama_cli.localrun.apps.limits`).

Run by the supervisor as ``python3 -I -S _enter.py SPEC``: writes its own pid to each
``cgroup.procs`` of the node's cgroup (so bubblewrap or unshare, and everything the app forks,
start inside it), sets the rlimits (``{"DATA": bytes, "NPROC": n, "FSIZE": bytes}``) and execs
``argv`` with the same pid and open descriptors. Standalone (stdlib only): it imports nothing
of panorama_cli.
"""

import json
import os
import resource
import sys


def main() -> None:
    spec = json.loads(sys.argv[1])
    for path in spec.get("cgroups", []):
        with open(path, "w") as stream:
            stream.write(str(os.getpid()))
    for name, value in spec.get("rlimits", {}).items():
        which = getattr(resource, "RLIMIT_" + name)
        resource.setrlimit(which, (value, value))
    argv = spec["argv"]
    os.execv(argv[0], argv)


if __name__ == "__main__":
    try:
        main()
    except OSError as exc:
        sys.stderr.write(f"cannot enter the node's limits: {exc}\n")
        sys.exit(126)
