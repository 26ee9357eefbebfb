"""Stand-ins for what a Greengrass core device gives the component's Run step: the nucleus'
IPC socket (a JSON file the SDK stand-in in ``fake_awsiot/`` reads), and a ``docker`` that
records each call and runs the secret fetcher's container on this machine.
"""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

from panorama_cli.fleet.greengrass_scripts import (
    ENV_IPC_SOCKET,
    ENV_SVCUID,
    FETCH_MODULE,
    FETCH_OUT,
    FETCH_SOCKET,
)
from tests.support.paths import REPO

#: Put first on PYTHONPATH (or copied into an image): the SDK stand-in.
FAKE_AWSIOT = Path(__file__).resolve().parent / "fake_awsiot"


def write_nucleus(
    path: Path, secret_values: dict[str, str], *, allowed: list[str] | None = None
) -> dict[str, str]:
    """The stand-in nucleus at ``path`` holding ``secret_values`` (ARN -> text), readable by
    a component allowed ``allowed`` (default: all of them); returns the environment the nucleus
    gives the component's lifecycle: the socket's path and a new ``SVCUID``."""
    svcuid = secrets.token_hex(16)
    state = {
        "svcuid": svcuid,
        "secrets": secret_values,
        "allowed": list(secret_values) if allowed is None else allowed,
    }
    path.write_text(json.dumps(state))
    path.chmod(0o644)
    return {ENV_IPC_SOCKET: str(path), ENV_SVCUID: svcuid}


_FAKE_DOCKER = """#!{python}
import os, subprocess, sys
args = sys.argv[1:]
with open(os.environ["DOCKER_LOG"], "a") as log:
    log.write("".join(a + "\\0" for a in args) + "\\n")
if args[:1] != ["run"] or {module!r} not in args:
    sys.exit(0)
# the fetch container, run here: its mounts as this machine's paths, the SDK stand-in
mounts = {{}}
for i, arg in enumerate(args[:-1]):
    if arg == "-v":
        source, target = args[i + 1].split(":")[:2]
        mounts[target] = source
out = os.path.dirname(mounts[{out!r} + "/secrets"])
assert os.path.dirname(mounts[{out!r} + "/tokens"]) == out
assert "--network" in args and args[args.index("--network") + 1] == "none"
assert args[args.index("-e") + 1] == "SVCUID"  # by name: its value never on a command line
rest = [out if a == {out!r} else a for a in args[args.index("-m") + 2 :]]
env = {{
    "PATH": "/usr/bin:/bin",
    "PYTHONPATH": {fake!r} + ":" + {repo!r},
    "SVCUID": os.environ["SVCUID"],
    {socket_env!r}: mounts[{socket!r}],
}}
sys.exit(subprocess.call([sys.executable, "-m", {module!r}, *rest], env=env))
"""


def fake_docker(folder: Path) -> tuple[dict[str, str], Path]:
    """A ``docker`` in ``folder/bin`` that appends each call's argv (each word NUL-ended, one
    line) to ``folder/docker.log`` and runs the fetch container's command on this machine;
    returns the environment to run a lifecycle step with (PATH first) and the log's path."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = folder / "docker.log"
    program = bin_dir / "docker"
    program.write_text(
        _FAKE_DOCKER.format(
            python=sys.executable,
            module=FETCH_MODULE,
            out=FETCH_OUT,
            socket=FETCH_SOCKET,
            socket_env=ENV_IPC_SOCKET,
            fake=str(FAKE_AWSIOT),
            repo=str(REPO),
        )  # fmt: skip
    )
    program.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "DOCKER_LOG": str(log)}
    return env, log


def docker_calls(log: Path) -> list[list[str]]:
    """The calls :func:`fake_docker`'s ``docker`` recorded, each its argv."""
    if not log.exists():
        return []
    return [line.split("\0")[:-1] for line in log.read_text().splitlines()]
