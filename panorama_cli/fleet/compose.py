"""``export --target compose``: ``compose.yaml`` for Docker Compose and Docker Swarm stacks.

A pure function of the :class:`~.model.FleetApp`: the serve service and one service per
business-logic node (see :mod:`.model`), in the Compose file format 3.8 that both
``docker compose`` / ``docker-compose`` 1.29 and ``docker stack deploy`` read
(https://docs.docker.com/compose/compose-file/compose-file-v3/):

* ``restart: unless-stopped`` (Compose) and ``deploy.restart_policy`` (Swarm: on any exit)
  for every service; a healthcheck on serve's ``/healthz``; serve's HTTP (and RTSP) port
  published on the box itself (``mode: host``: a Swarm stack does not need the routing mesh,
  and serve runs once per box);
* named volumes for serve's state, the control socket, each node's storage and logs, and a
  tmpfs volume at ``/dev/shm`` shared by every service (the frame rings);
* nodes as the appliance started them: the descriptor's entry with ``env -i``, working
  directory ``/``, read-only root, a tmpfs ``/tmp``, no capabilities, user root;
* ``--camera`` files mounted read-only from the bundle's ``cameras/``; camera URLs with
  credentials as Compose secrets from the bundle's ``secrets/`` (mode 0600), never in the file;
* with ``--device cuda``: every GPU through a device reservation (Compose;
  ``docker stack deploy`` has no GPU reservations).
"""

from __future__ import annotations

import logging
from typing import Any

from panorama_cli.fleet.model import (
    HTTP_PORT,
    LABEL_APP,
    LABEL_ROLE,
    LABEL_VERSION,
    SHM_SIZE_BYTES,
    SHM_VOLUME,
    Container,
    FleetApp,
    OutFile,
)

log = logging.getLogger(__name__)

FILE_NAME = "compose.yaml"
FORMAT_VERSION = "3.8"
#: serve's own Python in the runtime image (the healthcheck needs no curl in the image).
HEALTH_PYTHON = "/opt/panorama-cli/runtime/venv/bin/python"


def _labels(app: FleetApp, container: Container) -> dict[str, str]:
    return {LABEL_APP: app.name, LABEL_VERSION: app.version, LABEL_ROLE: container.role}


def _volumes(container: Container) -> list[Any]:
    mounts: list[Any] = [
        f"{m.volume}:{m.target}{':ro' if m.read_only else ''}" for m in container.mounts
    ]
    mounts += [{"type": "tmpfs", "target": path} for path in container.tmpfs]
    return mounts


def _health() -> dict[str, Any]:
    probe = (
        "import urllib.request; "
        f"urllib.request.urlopen('http://127.0.0.1:{HTTP_PORT}/healthz', timeout=4)"
    )
    return {
        "test": ["CMD", HEALTH_PYTHON, "-c", probe],
        "interval": "10s",
        "timeout": "5s",
        "retries": 3,
        "start_period": "120s",
    }


def _deploy(gpu: bool) -> dict[str, Any]:
    deploy: dict[str, Any] = {"restart_policy": {"condition": "any"}}
    if gpu:
        devices = [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
        deploy["resources"] = {"reservations": {"devices": devices}}
    return deploy


def _serve_service(app: FleetApp) -> dict[str, Any]:
    serve = app.serve
    service: dict[str, Any] = {
        "image": serve.image,
        "command": list(app.serve_args()),
        "working_dir": serve.working_dir,
        "restart": "unless-stopped",
        "ports": [
            {"target": inner, "published": host, "protocol": "tcp", "mode": "host"}
            for inner, host in serve.ports
        ],
        "volumes": _volumes(serve) + [f"./{f.path}:{f.target}:ro" for f in app.files],
        "healthcheck": _health(),
        "labels": _labels(app, serve),
        "deploy": _deploy(serve.gpu),
    }
    if app.secrets:
        service["secrets"] = [{"source": s.name, "target": s.name} for s in app.secrets]
    return service


def _node_service(app: FleetApp, node: Container) -> dict[str, Any]:
    return {
        "image": node.image,
        "entrypoint": list(node.command),
        "command": [],
        "working_dir": node.working_dir,
        "user": "0:0",
        "read_only": node.read_only,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "restart": "unless-stopped",
        "depends_on": [app.serve.name],
        "volumes": _volumes(node),
        "labels": _labels(app, node),
        "deploy": _deploy(False),
    }


def compose_document(app: FleetApp) -> dict[str, Any]:
    """The Compose file of ``app`` as a mapping (services, volumes, secrets)."""
    services = {app.serve.name: _serve_service(app)}
    for node in app.nodes:
        services[node.name] = _node_service(app, node)
    volumes: dict[str, Any] = {}
    for name in app.volumes:
        if name == SHM_VOLUME:
            options = {"type": "tmpfs", "device": "tmpfs", "o": f"size={SHM_SIZE_BYTES}"}
            volumes[name] = {"driver": "local", "driver_opts": options}
        else:
            volumes[name] = {"labels": {LABEL_APP: app.name}}
    document: dict[str, Any] = {"version": FORMAT_VERSION, "services": services}
    document["volumes"] = volumes
    if app.secrets:
        document["secrets"] = {s.name: {"file": f"./secrets/{s.name}"} for s in app.secrets}
    return document


def render(app: FleetApp) -> list[OutFile]:
    """``compose.yaml`` and, per secret, ``secrets/<name>`` (private) for ``app``.

    Returns:
        The bundle's files; the same ``app`` gives the same bytes.
    """
    import yaml  # type: ignore[import-untyped]

    text = (
        f"# {app.name} {app.version}: made by panorama-cli export --target compose\n"
        "# docker compose up -d  |  docker stack deploy -c compose.yaml NAME\n"
        + yaml.safe_dump(compose_document(app), sort_keys=False, width=100)
    )
    files = [OutFile(FILE_NAME, text.encode())]
    log.debug("compose.yaml for %s: %d bytes", app.name, len(text))
    files += [
        OutFile(f"secrets/{s.name}", s.value.encode() + b"\n", private=True) for s in app.secrets
    ]
    return files
