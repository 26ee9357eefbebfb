"""Temporary containers: creating them labelled, removing them, one-shot runs (``run_once``).

Every container panorama-cli creates carries :data:`CONTAINER_LABEL` plus the pid and host of
the process that created it; it is removed when the work is done, and a later command removes
the leftovers of a command that was killed before it could (:func:`remove_stale_containers`).
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import TYPE_CHECKING, Any

from panorama_cli.build import docker_client
from panorama_cli.build.docker_client import _api_error, _first_line
from panorama_cli.build.platforms import target_machine
from panorama_cli.errors import UserError

if TYPE_CHECKING:
    import docker

log = logging.getLogger(__name__)

#: Label put on every container this module creates (they are all removed again).
CONTAINER_LABEL = "panorama-cli.temporary"
#: The pid and host name of the process that created a temporary container: a later command
#: removes the container when that process is gone (killed before it could clean up).
OWNER_PID_LABEL = "panorama-cli.pid"
HOST_LABEL = "panorama-cli.host"


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
    client = client or docker_client.connect()
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
