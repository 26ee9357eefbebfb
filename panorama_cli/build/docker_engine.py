"""Every Docker call of panorama-cli, through the Docker SDK (never the docker CLI): the public API.

This module re-exports the API of the modules that implement it, by concept:

- :mod:`panorama_cli.build.docker_client`: :func:`connect` (engine from ``DOCKER_HOST`` etc.).
- :mod:`panorama_cli.build.docker_build`: :func:`build_image` (streamed logs, local base
  images only), :class:`BuildFailed`.
- :mod:`panorama_cli.build.docker_export`: :func:`export_filesystem` (an image's tar stream).
- :mod:`panorama_cli.build.docker_containers`: :func:`run_once`, temporary-container labels,
  :func:`remove_stale_containers` (leftovers of killed commands).

Errors a user can fix (engine not running, missing image, failing Dockerfile step, no arm64
emulation) are raised as :class:`panorama_cli.errors.UserError` with the exact fix as hint.
Functions that talk to the engine take an optional ``client`` (from :func:`connect`); without
one they connect from the environment. To replace a function in a test, patch it in the module
that defines it (that is where the other modules look it up).
"""

from __future__ import annotations

import logging

from panorama_cli.build.docker_build import LOG_TAIL, BuildFailed, build_image
from panorama_cli.build.docker_client import connect
from panorama_cli.build.docker_containers import (
    CONTAINER_LABEL,
    HOST_LABEL,
    OWNER_PID_LABEL,
    remove_stale_containers,
    run_once,
)
from panorama_cli.build.docker_export import EXPORT_CHUNK, export_filesystem
from panorama_cli.build.platforms import check_platform

log = logging.getLogger(__name__)

__all__ = [
    "CONTAINER_LABEL",
    "EXPORT_CHUNK",
    "HOST_LABEL",
    "LOG_TAIL",
    "OWNER_PID_LABEL",
    "BuildFailed",
    "build_image",
    "check_platform",
    "connect",
    "export_filesystem",
    "remove_stale_containers",
    "run_once",
]
