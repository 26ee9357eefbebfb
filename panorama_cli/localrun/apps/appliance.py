"""What an app sees on the appliance, as ``panorama-cli run`` reproduces it in both modes.

Facts (../shared/reference/panoramasdk-reference.md, last section, with its sources): the
appliance runs the image's exported filesystem, not a container of the image, so the
Dockerfile's runtime instructions (ENV, WORKDIR, USER, ENTRYPOINT, CMD, ...) have no effect;
the working directory is ``/``; the root is read-only and only :data:`LOGS` and
:data:`STORAGE` are writable. This module holds those paths, the app's environment (an
allow-list: nothing of the runner's own environment reaches the app), the start note that names
the ignored Dockerfile instructions, and the hint that explains an app's EROFS or relative-path
error at the end of a run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

#: The simulated ``panoramasdk`` (runs in the app, Python >= 3.7), seen at :data:`SDK_TARGET`.
SDK_DIR = Path(__file__).resolve().parent / "sdk"
APP_ROOT = "/panorama"
LOGS = "/opt/aws/panorama/logs"
STORAGE = "/opt/aws/panorama/storage"
#: Where the runner's own pieces appear in the app's filesystem (host mode and container).
TOOLS = "/opt/panorama-cli"
SDK_TARGET = f"{TOOLS}/sdk"
BIN_TARGET = f"{TOOLS}/bin"
AWS_TARGET = f"{TOOLS}/aws"
SOCKET_TARGET = "/run/panorama-cli/ctl.sock"
#: The PATH of a Debian/Ubuntu root shell (the appliance's base images are Ubuntu).
STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SOCKET_ENV = "PANORAMA_LOCALRUN_SOCKET"
#: How long the SDK waits for the socket to appear (seconds, default 0; the SDK's own name).
CONNECT_WAIT_ENV = "PANORAMA_LOCALRUN_CONNECT_WAIT_S"
#: ``--aws-endpoint-url`` without ``--aws-profile``: credentials any local AWS server (moto,
#: LocalStack) accepts, so that boto3 signs its requests instead of raising NoCredentialsError.
TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
#: The region an app gets with ``--aws-endpoint-url`` when the runner has none set.
DEFAULT_REGION = "us-east-1"
#: The name containers reach this machine by (``--add-host host.docker.internal:host-gateway``).
DOCKER_HOST_NAME = "host.docker.internal"

#: Dockerfile instructions that only describe how to run a container: the appliance
#: ignores them (it runs the exported filesystem).
RUNTIME_INSTRUCTIONS = (
    "ENV",
    "WORKDIR",
    "USER",
    "ENTRYPOINT",
    "CMD",
    "EXPOSE",
    "VOLUME",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
    "ONBUILD",
)


def app_environment(
    node_env: Mapping[str, str],
    *,
    shims: bool,
    aws_profile: str | None,
    endpoint_url: str | None = None,
) -> dict[str, str]:
    """The app's whole environment, built from nothing (an allow-list).

    Args:
        node_env: the runner's variables for this node (``AppGraph_Uid``,
            ``PANORAMA_LOCALRUN_NODE``, ...); ``PANORAMA_LOCALRUN_SOCKET`` and ``PYTHONPATH``
            are replaced by their in-sandbox values (:data:`SOCKET_TARGET`, :data:`SDK_TARGET`).
        shims: put :data:`BIN_TARGET` (python3 -> the chosen interpreter) first on PATH.
        aws_profile: pass this profile (its files appear under :data:`AWS_TARGET`); None: no
            credentials at all (both files /dev/null).
        endpoint_url: ``AWS_ENDPOINT_URL`` for every AWS client of the app (boto3 >= 1.28 /
            botocore >= 1.31 honour it), checked by :func:`endpoint_url`; without
            ``aws_profile`` the app also gets :data:`TEST_CREDENTIALS` and a region (the
            runner's ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else :data:`DEFAULT_REGION`).

    Returns:
        name -> value: PATH, HOME=/root, LANG (the runner's, else C.UTF-8), PYTHONPATH,
        PYTHONUNBUFFERED, the AWS settings and ``node_env``. Nothing else of ``os.environ``.
    """
    env = {k: v for k, v in node_env.items() if k not in (SOCKET_ENV, "PYTHONPATH")}
    env.update(
        PATH=f"{BIN_TARGET}:{STANDARD_PATH}" if shims else STANDARD_PATH,
        HOME="/root",
        LANG=os.environ.get("LANG") or "C.UTF-8",
        PYTHONPATH=SDK_TARGET,
        PYTHONUNBUFFERED="1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    env[SOCKET_ENV] = SOCKET_TARGET
    if aws_profile is None:
        env["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
        env["AWS_CONFIG_FILE"] = "/dev/null"
    else:
        env["AWS_PROFILE"] = aws_profile
        env["AWS_SHARED_CREDENTIALS_FILE"] = f"{AWS_TARGET}/credentials"
        env["AWS_CONFIG_FILE"] = f"{AWS_TARGET}/config"
        for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
            if os.environ.get(name):
                env[name] = os.environ[name]
    if endpoint_url is not None:
        env["AWS_ENDPOINT_URL"] = endpoint_url
        if aws_profile is None:
            env.update(TEST_CREDENTIALS)
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = region or DEFAULT_REGION
    return env


def endpoint_url(url: str, *, in_container: bool) -> str:
    """Check ``--aws-endpoint-url``: an ``http(s)://HOST[:PORT][/PATH]`` URL.

    Args:
        url: as typed.
        in_container: the apps run in containers, whose 127.0.0.1 is their own.

    Returns:
        ``url`` unchanged.

    Raises:
        UsageError: another scheme, no host, a user or password in it (``ps`` would show
            it), a character that is not printable, a bad port; or, with ``in_container``, a
            loopback host (names :data:`DOCKER_HOST_NAME` instead).
    """
    import ipaddress
    from urllib.parse import urlsplit

    from panorama_cli.errors import UsageError

    flag = f"--aws-endpoint-url {url}"
    example = "e.g. http://127.0.0.1:5000 (moto_server) or http://localhost:4566"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"{flag}: not a URL ({exc})", hint=example) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{flag}: give an http:// or https:// URL with a host", hint=example)
    if parts.username is not None or parts.password is not None:
        raise UsageError(
            "--aws-endpoint-url: no user or password in the URL (the command line is visible "
            "to every user)",
            hint="the app gets test credentials, or those of --aws-profile",
        )
    if not url.isprintable() or any(c.isspace() for c in url) or parts.query or parts.fragment:
        raise UsageError(f"{flag!r}: no spaces, query or fragment in the URL", hint=example)
    host = parts.hostname
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host.endswith(".localhost")
    if in_container and loopback:
        where = f"{DOCKER_HOST_NAME}:{port}" if port else DOCKER_HOST_NAME
        raise UsageError(
            f"{flag}: with --in-container the app's {host} is its container's own, not this "
            "machine's",
            hint=f"serve it on an address containers reach (e.g. 0.0.0.0) and pass "
            f"{parts.scheme}://{where}",
        )
    return url


def aws_files() -> dict[str, Path]:
    """The runner's AWS files for ``--aws-profile``: {"credentials": path, "config": path}
    (``AWS_SHARED_CREDENTIALS_FILE`` / ``AWS_CONFIG_FILE`` else ~/.aws/), those that exist."""
    home = Path.home() / ".aws"
    found = {
        "credentials": Path(os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or home / "credentials"),
        "config": Path(os.environ.get("AWS_CONFIG_FILE") or home / "config"),
    }
    return {name: path for name, path in found.items() if path.is_file()}


def ignored_instructions(dockerfile: Path) -> list[tuple[str, int]]:
    """The final stage's runtime instructions (:data:`RUNTIME_INSTRUCTIONS`) in ``dockerfile``.

    Parsed with dockerfile-parse (line continuations, comments, parser directives); only the
    last ``FROM`` stage counts (an earlier stage's WORKDIR does not reach the image).

    Returns:
        [(instruction, 1-based line)], in file order; [] when the file cannot be read.
    """
    import io

    from dockerfile_parse import DockerfileParser

    try:
        data = dockerfile.read_bytes()
    except OSError:
        return []
    parser = DockerfileParser(fileobj=io.BytesIO(data))  # in memory: it never writes a file
    found: list[tuple[str, int]] = []
    for item in parser.structure:
        instruction = str(item["instruction"]).upper()
        if instruction == "FROM":
            found = []
        elif instruction in RUNTIME_INSTRUCTIONS:
            found.append((instruction, int(item["startline"]) + 1))
    return found


def ignored_note(node: str, dockerfile: Path) -> str | None:
    """One start note naming what the appliance ignores in ``dockerfile`` (None: nothing)."""
    found = ignored_instructions(dockerfile)
    if not found:
        return None
    listed = ", ".join(f"{name} (line {line})" for name, line in found)
    return (
        f"node {node}: the appliance ignores the Dockerfile's {listed}: the app runs in / "
        "with the appliance's environment, here too"
    )


_EROFS = re.compile(r"\[Errno 30\] Read-only file system: '([^']*)'|Read-only file system")
_RELATIVE = re.compile(r"FileNotFoundError: \[Errno 2\] No such file or directory: '([^/'][^']*)'")


def failure_hint(console: str) -> str | None:
    """Why an app that failed on the appliance's filesystem failed, and what to do instead.

    Args:
        console: the end of the app's console output (its traceback).

    Returns:
        One sentence for an EROFS error (a write outside logs/storage/tmp) or a
        FileNotFoundError on a relative path (the working directory is /), else None.
    """
    erofs = list(_EROFS.finditer(console))
    if erofs:
        where = erofs[-1].group(1)
        return (
            f"the app wrote to {where or 'a read-only folder'}, which is read-only as on the "
            f"appliance: write to {STORAGE} (kept), {LOGS} or /tmp instead "
            "(or run with --writable-app, which the appliance does not do)"
        )
    relative = list(_RELATIVE.finditer(console))
    if relative:
        name = relative[-1].group(1)
        return (
            f"the app opened the relative path '{name}', but its working directory is / as on "
            f"the appliance: open {APP_ROOT}/{name.removeprefix('./')} to read the app's files, "
            f"write under {STORAGE}"
        )
    return None


def console_tail(logs: Path, limit: int = 64 * 1024) -> str:
    """The last ``limit`` bytes of every console.log in the run's ``logs`` folder (one node)
    or its node folders: regular files only, never through a link the app made there."""
    from panorama_cli.localrun import safe_files

    parts = []
    for _path, fd in safe_files.find_regular(logs, "console.log", max_depth=1):
        try:
            parts.append(safe_files.read_tail(fd, limit).decode("utf-8", "replace"))
        except OSError:
            continue
        finally:
            os.close(fd)
    return "\n".join(parts)
