"""Every Docker call of panorama-cli, through the Docker SDK (never the docker CLI).

The SDK is imported inside the functions so that CLI start-up stays fast. Errors a user can
fix (engine not running, missing image, failing Dockerfile step, no arm64 emulation) are
raised as :class:`panorama_cli.errors.UserError` with the exact fix as hint.

Functions that talk to the engine take an optional ``client`` (from :func:`connect`); without
one they connect from the environment (``DOCKER_HOST`` etc.).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from panorama_cli.build.platforms import check_platform, target_machine
from panorama_cli.errors import UserError

if TYPE_CHECKING:
    import docker

log = logging.getLogger(__name__)

#: Bytes per chunk of a filesystem export.
EXPORT_CHUNK = 1024 * 1024
#: Label put on every container this module creates (they are all removed again).
CONTAINER_LABEL = "panorama-cli.temporary"
#: The pid and host name of the process that created a temporary container: a later command
#: removes the container when that process is gone (killed before it could clean up).
OWNER_PID_LABEL = "panorama-cli.pid"
HOST_LABEL = "panorama-cli.host"
#: How many build log lines a failed build reports.
LOG_TAIL = 30

# colour codes the builder wraps around a step's stderr
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# builder bookkeeping lines, not output of the step itself
_BUILDER_NOISE = (" ---> ", "Removing intermediate container ", "Step ")


# --------------------------------------------------------------------------- connecting


def _docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock (DOCKER_HOST is not set)"


def connect(*, timeout_s: float = 60.0) -> docker.DockerClient:
    """Connect to the Docker engine named by the environment (``DOCKER_HOST``, ``DOCKER_*``).

    Args:
        timeout_s: HTTP timeout of ordinary API calls, in seconds (streams such as builds
            and exports are not limited by it).

    Returns:
        A connected ``docker.DockerClient`` (the engine answered a ping).

    Raises:
        UserError: the engine cannot be reached; names ``DOCKER_HOST`` and how to start or
            point to an engine.
    """
    import docker
    import requests

    try:
        client = docker.from_env(timeout=timeout_s)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        reason = str(exc)
        if "Permission denied" in reason:
            hint = (
                "let your user use the engine (sudo usermod -aG docker $USER, then log in "
                "again) or point DOCKER_HOST at a socket you may use"
            )
        else:
            hint = (
                "start Docker (sudo systemctl start docker) or point DOCKER_HOST at a "
                "running engine, e.g. export DOCKER_HOST=unix:///var/run/docker.sock"
            )
        raise UserError(
            f"cannot reach the Docker engine at DOCKER_HOST={_docker_host()}: "
            f"{_first_line(reason)}",
            hint=hint,
        ) from exc
    return client


def _first_line(text: str, limit: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _api_error(exc: Exception) -> str:
    """First line of what the engine said in a docker.errors.APIError."""
    return _first_line(str(getattr(exc, "explanation", None) or exc))


def _is_local_engine(client: docker.DockerClient) -> bool:
    """Whether the engine listens on a unix socket, i.e. runs on this machine's kernel."""
    return getattr(client.api, "base_url", "") == "http+docker://localhost"


# --------------------------------------------------------------------------- platforms


class BuildFailed(UserError):
    """A ``docker build`` step failed.

    Attributes:
        step: the failing step as the builder printed it, e.g. ``"Step 3/5 : RUN make"``
            (empty when the build failed before the first step).
        log_tail: the last build output lines (at most ``LOG_TAIL``).
    """

    def __init__(self, message: str, *, hint: str, step: str, log_tail: list[str]):
        super().__init__(message, hint=hint)
        self.step = step
        self.log_tail = log_tail


def build_image(
    context_dir: Path,
    *,
    tag: str,
    platform: str,
    build_args: dict[str, str] | None = None,
    on_log: Callable[[str], None] | None = None,
    dockerfile: str = "Dockerfile",
    client: docker.DockerClient | None = None,
    preflight: bool = True,
    timeout_s: float | None = None,
) -> str:
    """Build an image with the engine's builder, never pulling (base images must be local).

    Args:
        context_dir: the build context folder.
        tag: name:tag for the image, e.g. ``"people_counter:1.0"``.
        platform: ``"linux/arm64"`` or ``"linux/amd64"``.
        build_args: Dockerfile ``ARG`` values.
        on_log: called with each line of build output (without the newline).
        dockerfile: the Dockerfile's path relative to ``context_dir``.
        client: a client from :func:`connect` (default: connect from the environment).
        preflight: run :func:`check_platform` first when the engine is on this machine.
        timeout_s: HTTP timeout for the whole build in seconds; None waits as long as
            the build takes (Ctrl-C stops it).

    Returns:
        The image id, ``"sha256:<hex>"``.

    Raises:
        UserError: the context or Dockerfile is missing, the platform is unsupported or
            cannot be emulated, the engine rejects the request.
        BuildFailed (a UserError): a step failed; the message names the step and the
            builder's error, ``log_tail`` holds the last output lines.
    """
    import docker

    context_dir = Path(context_dir)
    if not context_dir.is_dir():
        raise UserError(
            f"build context {context_dir} is not a folder",
            hint="pass the package folder that holds the Dockerfile",
        )
    dockerfile_path = context_dir / dockerfile
    if not dockerfile_path.is_file():
        raise UserError(
            f"no Dockerfile at {dockerfile_path}",
            hint="create it (see the package template) or pass the right package folder",
        )
    target_machine(platform)
    own_client = client is None
    client = client or connect()
    try:
        if preflight and _is_local_engine(client):
            check_platform(platform)

        tail: deque[str] = deque(maxlen=LOG_TAIL)
        step = ""
        image_id = ""
        pending = ""

        def emit(line: str) -> None:
            nonlocal step
            line = _ANSI.sub("", line).rstrip("\r")
            if line.startswith("Step "):
                step = line
            tail.append(line)
            if on_log is not None:
                on_log(line)

        try:
            stream = client.api.build(
                path=str(context_dir),
                tag=tag,
                dockerfile=dockerfile,
                buildargs=dict(build_args or {}),
                decode=True,
                pull=False,
                rm=True,
                forcerm=True,
                platform=platform,
                timeout=timeout_s,
            )
            for item in stream:
                if "stream" in item:
                    pending += item["stream"]
                    *lines, pending = pending.split("\n")
                    for line in lines:
                        emit(line)
                elif "status" in item:
                    emit(
                        " ".join(str(item[k]) for k in ("id", "status", "progress") if item.get(k))
                    )
                if "aux" in item and isinstance(item["aux"], dict) and "ID" in item["aux"]:
                    image_id = item["aux"]["ID"]
                if "error" in item or "errorDetail" in item:
                    if pending:
                        emit(pending)
                        pending = ""
                    detail = item.get("errorDetail") or {}
                    error = _first_line(detail.get("message") or item.get("error") or "unknown")
                    raise _build_failure(
                        error, step, list(tail), dockerfile_path, dict(build_args or {})
                    )
            if pending:
                emit(pending)
        except docker.errors.APIError as exc:
            raise UserError(
                f"docker build of {context_dir} was refused: {_api_error(exc)}",
                hint=f"check {dockerfile_path}, the tag {tag!r} and the platform {platform!r}",
            ) from exc
        except docker.errors.DockerException as exc:
            raise UserError(
                f"docker build of {context_dir} failed: {_first_line(str(exc))}",
                hint=f"check {dockerfile_path} and that the engine at DOCKER_HOST={_docker_host()} "
                "is running",
            ) from exc

        if not image_id:
            for line in reversed(tail):
                if line.startswith("Successfully built "):
                    image_id = line.split()[-1]
                    break
            try:
                image_id = client.images.get(image_id or tag).id
            except docker.errors.ImageNotFound as exc:
                raise UserError(
                    f"docker build of {context_dir} ended without producing an image",
                    hint="run it again; if it persists, build with docker build to see why",
                ) from exc
        return image_id
    finally:
        if own_client:
            client.close()


def _build_failure(
    error: str, step: str, tail: list[str], dockerfile_path: Path, build_args: dict[str, str]
) -> BuildFailed:
    from_step = step.split(" : ", 1)[-1].strip().upper().startswith("FROM ")
    if from_step or "pull access denied" in error or "manifest unknown" in error:
        base = step.split(" : ", 1)[-1].strip()[5:].split()[0] if from_step else "the base image"
        if "BASE_IMAGE" in base:  # FROM ${BASE_IMAGE}: name the image it stood for
            from panorama_cli.build.base_image import dockerfile_default_base

            chosen = build_args.get("BASE_IMAGE") or dockerfile_default_base(dockerfile_path)
            base = chosen or "the base image"
        return BuildFailed(
            f"docker build failed at {step or 'FROM'}: {error}",
            hint=f"{base} is not in the local engine for this platform (builds use local "
            "images only): make one with `panorama-cli base-image --platform <platform>`, "
            "or pass --base-image IMAGE (--build-arg BASE_IMAGE=IMAGE) naming a local image",
            step=step,
            log_tail=tail,
        )
    last = [line for line in tail if line.strip() and not line.startswith(_BUILDER_NOISE)][-3:]
    shown = " | ".join(_first_line(line, 160) for line in last)
    return BuildFailed(
        f"docker build failed at {step or 'the first step'}: {error}",
        hint=f"fix that step in {dockerfile_path}"
        + (f"; its last output: {shown}" if shown else ""),
        step=step,
        log_tail=tail,
    )


# --------------------------------------------------------------------------- containers


def _create_container(
    client: docker.DockerClient,
    image: str,
    command: list[str],
    platform: str | None,
    role: str,
    **options: Any,
) -> Any:
    import docker

    if platform is not None:
        target_machine(platform)
    remove_stale_containers(client)
    try:
        return client.containers.create(
            image,
            command=command,
            platform=platform,
            labels={CONTAINER_LABEL: role, OWNER_PID_LABEL: str(os.getpid()), HOST_LABEL: _host()},
            name=f"panorama-cli-{role}-{uuid.uuid4().hex[:12]}",
            detach=True,
            **options,
        )
    except docker.errors.ImageNotFound as exc:
        raise UserError(
            f"image {image} not found in the Docker engine"
            + (f" for {platform}" if platform else ""),
            hint=f"build it first (panorama-cli build-container), or pull it: docker pull {image}",
        ) from exc
    except docker.errors.APIError as exc:
        message = _api_error(exc)
        if exc.status_code == 404 or "does not match the specified platform" in message:
            raise UserError(
                f"image {image} not available"
                + (f" for {platform}" if platform else "")
                + f": {message}",
                hint="build it for that platform first (panorama-cli build-container), or pull "
                f"it: docker pull {'--platform ' + platform + ' ' if platform else ''}{image}",
            ) from exc
        raise UserError(
            f"cannot create a container from {image}: {message}",
            hint=f"check the image (docker image inspect {image})",
        ) from exc


def _host() -> str:
    import socket

    return socket.gethostname()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def remove_stale_containers(client: docker.DockerClient) -> list[str]:
    """Remove the temporary containers a killed panorama-cli left behind (best effort).

    Only containers carrying :data:`CONTAINER_LABEL` whose owner (labels
    :data:`OWNER_PID_LABEL`, :data:`HOST_LABEL`) is a process of this host that no longer
    runs; another command's containers, or another host's, are left alone. Never raises.

    Returns:
        The names of the containers removed.
    """
    removed: list[str] = []
    try:
        found = client.containers.list(
            all=True, sparse=True, filters={"label": [CONTAINER_LABEL, f"{HOST_LABEL}={_host()}"]}
        )
    except Exception as exc:  # best effort: the command itself reports engine problems
        log.debug("listing stale containers failed: %s", exc)
        return removed
    for container in found:
        labels = (container.attrs or {}).get("Labels") or {}
        pid = str(labels.get(OWNER_PID_LABEL, ""))
        if not pid.isdigit() or _pid_alive(int(pid)):
            continue
        try:
            client.api.remove_container(container.id, force=True)
            removed.append(str(container.attrs.get("Names", [container.id])[0]).lstrip("/"))
        except Exception as exc:
            log.debug("removing stale container %s failed: %s", container.id, exc)
    return removed


def _remove_container(container: Any, *, quiet: bool) -> None:
    import docker

    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass
    except Exception as exc:
        if not quiet:
            raise UserError(
                f"could not remove the temporary container {container.name}: "
                f"{_first_line(str(exc))}",
                hint=f"remove it by hand: docker rm -f {container.name}",
            ) from exc


@contextlib.contextmanager
def export_filesystem(
    image: str,
    *,
    platform: str | None = None,
    chunk_size: int = EXPORT_CHUNK,
    client: docker.DockerClient | None = None,
) -> Iterator[Iterator[bytes]]:
    """Stream an image's flattened filesystem as an uncompressed tar.

    A container is created from the image (never started) and exported; the container is
    always removed when the ``with`` block ends, also on an exception or Ctrl-C.

    Usage::

        with export_filesystem("people_counter:1.0") as chunks:
            asset = assets.store_stream(chunks, assets_dir)

    Args:
        image: image name or id.
        platform: ``"linux/arm64"``/``"linux/amd64"`` to pick that variant of the image.
        chunk_size: bytes per yielded chunk (the last one may be shorter).
        client: a client from :func:`connect` (default: connect from the environment).

    Yields:
        An iterator of ``bytes`` chunks of the tar stream.

    Raises:
        UserError: the image is missing (build or pull it), or the engine refuses.
    """
    own_client = client is None
    client = client or connect()
    try:
        container = _create_container(client, image, ["/bin/true"], platform, "export")
        chunks = None
        try:
            chunks = container.export(chunk_size=chunk_size)
            yield chunks
        except BaseException:
            _close(chunks)
            _remove_container(container, quiet=True)
            raise
        _close(chunks)
        _remove_container(container, quiet=False)
    finally:
        if own_client:
            client.close()


def _close(gen: object) -> None:
    close = getattr(gen, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            close()


def run_once(
    image: str,
    command: list[str],
    *,
    platform: str | None = None,
    timeout_s: float = 60.0,
    environment: dict[str, str] | None = None,
    network_disabled: bool = False,
    client: docker.DockerClient | None = None,
) -> tuple[int, str]:
    """Run ``command`` in a new container of ``image`` once and wait for it to exit.

    Used to prove that an entry point starts. The container is always removed.

    Args:
        image: image name or id.
        command: argument list, e.g. ``["python3", "/panorama/app.py", "--check"]``.
        platform: ``"linux/arm64"``/``"linux/amd64"`` to pick that variant of the image.
        timeout_s: how long to wait for the exit, in seconds; the container is killed after.
        environment: extra environment variables for the command.
        network_disabled: run without any network (a sandboxed start-up check).
        client: a client from :func:`connect` (default: connect from the environment).

    Returns:
        ``(exit_code, logs)``: the exit status and stdout+stderr, decoded as UTF-8.

    Raises:
        UserError: the image is missing, the command cannot be started (e.g. not found in
            the image), or it did not exit within ``timeout_s``.
    """
    import docker
    import requests

    if not command:
        raise ValueError("run_once needs a non-empty command list")
    own_client = client is None
    client = client or connect()
    try:
        container = _create_container(
            client,
            image,
            list(command),
            platform,
            "run",
            environment=dict(environment or {}),
            network_disabled=network_disabled,
        )
        try:
            try:
                container.start()
            except docker.errors.APIError as exc:
                raise UserError(
                    f"cannot start {command[0]!r} in {image}: {_api_error(exc)}",
                    hint="fix the entry point path (descriptor.json) or install the program in the "
                    "Dockerfile",
                ) from exc
            try:
                result = container.wait(timeout=timeout_s)
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
                raise UserError(
                    f"{' '.join(command)} in {image} did not exit within {timeout_s:g} s",
                    hint="make the command finish (e.g. a --check mode) or raise the timeout",
                ) from exc
            logs = container.logs(stdout=True, stderr=True).decode("utf-8", errors="replace")
            exit_code = int(result.get("StatusCode", -1))
        except BaseException:
            _remove_container(container, quiet=True)
            raise
        _remove_container(container, quiet=False)
        return exit_code, logs
    finally:
        if own_client:
            client.close()
