"""The connection to the Docker engine, and the error texts shared by every Docker call.

All Docker calls of panorama-cli go through the Docker SDK (never the docker CLI); the SDK is
imported inside the functions so that CLI start-up stays fast. Errors a user can fix are raised
as :class:`panorama_cli.errors.UserError` with the exact fix as hint.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from panorama_cli.errors import UserError

if TYPE_CHECKING:
    import docker

log = logging.getLogger(__name__)


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
