"""``export --target compose``: ``compose.yaml`` for Docker Compose, ``stack.yaml`` for Swarm.

A pure function of the :class:`~.model.FleetApp`: the serve service and one service per
business-logic node (see :mod:`.model`), in the Compose file format 3.x
(https://docs.docker.com/compose/compose-file/compose-file-v3/). The two files differ only in
how a node's limits are written, because the two readers' schemas exclude each other:

* ``compose.yaml`` (version 3.8; ``docker compose`` and Debian's ``docker-compose`` 1.29, which
  validates against the Compose Specification): ``mem_limit`` and ``memswap_limit`` (the same:
  no swap beyond the memory limit) and ``pids_limit`` on each node service. 1.29's schema has
  no ``deploy.resources.limits.pids``;
* ``stack.yaml`` (version 3.9, ``docker stack deploy``, docker/cli's schema, which has no
  ``mem_limit`` / ``pids_limit``): ``deploy.resources.limits`` ``memory`` and ``pids``.

Both give every container (serve too, with serve's own limits) the same kinds of bounds: CPUs
(``cpus`` / ``deploy.resources.limits.cpus``), the engine's log of the container in
``json-file`` files of :func:`~.model.log_file_bytes` (:data:`~.model.LOG_FILES` of them) and
a ``/tmp`` tmpfs of :func:`~.model.tmp_bytes`. The storage and logs volumes themselves have no
size: Docker's ``local`` volumes cannot be bounded (``storage_opt`` needs overlay2 on xfs with
project quotas, and applies to the container's root, which is read-only here).

* ``restart: unless-stopped`` (Compose) and ``deploy.restart_policy`` (Swarm: on any exit)
  for every service; a healthcheck on serve's ``/healthz``; serve's HTTP (and RTSP) port
  published on the ``--listen`` host only (``127.0.0.1:PORT:8765``; every address for
  ``0.0.0.0``). Swarm cannot publish on one address (``docker stack deploy`` has no host IP):
  ``stack.yaml`` publishes on the box itself (``mode: host``: no routing mesh; serve runs once
  per box) on every address, and says so in its header;
* named volumes for serve's state, the control socket (read-only in the nodes), each node's
  storage and logs; no shared ``/dev/shm`` (frame rings travel as descriptors);
* every container hardened: a user that is not root (serve :data:`~.model.SERVE_UID`, node
  ``i`` ``NODE_UID_BASE + i``, group :data:`~.model.APP_GID`), read-only root, a tmpfs
  ``/tmp``, ``cap_drop: [ALL]``, ``no-new-privileges``, Docker's default seccomp profile (the
  engine applies it to every container that does not ask for another), memory, pids and CPU
  limits, bounded engine logs;
* nodes as the appliance started them: the descriptor's entry with ``env -i``, working
  directory ``/``;
* ``--camera`` files mounted read-only from the bundle's ``cameras/``; camera URLs with
  credentials as Compose secrets from the bundle's ``secrets/``, never in the file;
* the control key (``secrets/control.key``) and serve's login token (``secrets/serve-token``,
  ``--auth-token-file``) as secrets of serve only, and each node's own token
  (``secrets/node-<node>.token``) as a secret of that node's service only, at
  ``/run/secrets/node.token``. Compose (not Swarm) bind-mounts a secret's file as it is on the
  box, owner and mode included, and its containers run as users without capabilities that own
  no file of the box: a 0600 file would be unreadable to them. So every secret file is 0644
  inside the ``secrets/`` folder of mode 0700: no other user of the box can enter the folder,
  and inside a container only the one service that mounts a secret sees it. ``stack.yaml``
  gives Swarm each secret's owner (the service's user) and mode 0400;
* with ``--device cuda``, each container that gets the GPU (serve when it runs model nodes, a
  node whose package asks for an accelerator or whose graph has no model node: see
  :mod:`.app`): in ``compose.yaml`` every GPU of the box through a device reservation
  (``deploy.resources.reservations.devices``, driver ``nvidia``, ``count: all``, which both
  Compose readers accept); in ``stack.yaml`` one GPU as a Swarm generic resource
  (``generic_resources``, kind :data:`SWARM_GPU_KIND`), since docker/cli's schema has no
  device reservations. Swarm schedules such a task only on a box whose engine advertises
  that resource (``node-generic-resources`` in daemon.json) and hands it over only through
  the NVIDIA container runtime set as the engine's default runtime (its ``swarm-resource``
  naming the ``DOCKER_RESOURCE_*`` variable); ``stack.yaml`` says so in its header.
"""

from __future__ import annotations

import logging
from typing import Any

from panorama_cli.fleet.model import (
    ANY_HOST,
    HTTP_PORT,
    LABEL_APP,
    LABEL_ROLE,
    LABEL_VERSION,
    LOG_FILES,
    Container,
    FleetApp,
    OutFile,
    cpus_text,
    docker_size,
    log_file_bytes,
    published,
    tmp_bytes,
)

log = logging.getLogger(__name__)

FILE_NAME = "compose.yaml"
#: The Swarm stack's file (``docker stack deploy -c stack.yaml``).
STACK_FILE_NAME = "stack.yaml"
FORMAT_VERSION = "3.8"
#: docker/cli's first format with ``deploy.resources.limits.pids`` (Docker 20.10).
STACK_FORMAT_VERSION = "3.9"
#: serve's own Python in the runtime image (the healthcheck needs no curl in the image).
HEALTH_PYTHON = "/opt/panorama-cli/runtime/venv/bin/python"
#: stack.yaml's first line when the bundle was asked to publish on one address only.
#: The generic resource a Swarm box advertises its NVIDIA GPUs as (``node-generic-resources``).
SWARM_GPU_KIND = "NVIDIA-GPU"
#: stack.yaml's header when a service reserves the GPU.
SWARM_GPU_NOTE = (
    f"# GPU: Swarm gives a service a {SWARM_GPU_KIND} generic resource; each box's engine must\n"
    f'# advertise it (daemon.json: "node-generic-resources": ["{SWARM_GPU_KIND}=GPU-<uuid>"]) and\n'
    "# run the NVIDIA container runtime as its default runtime, its swarm-resource naming the\n"
    "# DOCKER_RESOURCE_* variable Swarm hands the resource over in\n"
)
SWARM_PUBLISH_NOTE = (
    "# Swarm publishes on every address of the box (it cannot bind one address: "
    "docker stack deploy has no host IP); compose.yaml publishes on {host} only\n"
)


def _labels(app: FleetApp, container: Container) -> dict[str, str]:
    return {LABEL_APP: app.name, LABEL_VERSION: app.version, LABEL_ROLE: container.role}


def _volumes(container: Container) -> list[Any]:
    mounts: list[Any] = [
        f"{m.volume}:{m.target}{':ro' if m.read_only else ''}" for m in container.mounts
    ]
    for path in container.tmpfs:
        tmpfs: dict[str, Any] = {"type": "tmpfs", "target": path}
        if container.limits is not None:
            tmpfs["tmpfs"] = {"size": tmp_bytes(container.limits)}
        mounts.append(tmpfs)
    return mounts


def _secrets(container: Container, swarm: bool) -> list[dict[str, Any]]:
    """The service's secrets: each at its file name under /run/secrets (Swarm: owned by the
    service's user, mode 0400; Compose bind-mounts the file as it is)."""
    found: list[dict[str, Any]] = []
    for secret in container.secrets:
        item: dict[str, Any] = {"source": secret.name, "target": secret.target.rsplit("/", 1)[-1]}
        if swarm and container.user is not None:
            item.update(uid=str(container.user[0]), gid=str(container.user[1]), mode=0o400)
        found.append(item)
    return found


def _ports(app: FleetApp, container: Container, swarm: bool) -> list[Any]:
    """Published ports: on the listen host only (Compose's short syntax), or on the box's
    every address (Swarm, ``mode: host``)."""
    if swarm:
        return [
            {"target": inner, "published": host, "protocol": "tcp", "mode": "host"}
            for inner, host in container.ports
        ]
    return [published(app.listen_host, host, inner) for inner, host in container.ports]


def _harden(service: dict[str, Any], container: Container, swarm: bool) -> None:
    """A non-root user, read-only root, no capabilities, no new privileges, the limits."""
    if container.user is not None:
        service["user"] = f"{container.user[0]}:{container.user[1]}"
    service["read_only"] = True
    service["cap_drop"] = ["ALL"]
    service["security_opt"] = ["no-new-privileges:true"]
    limits = container.limits
    if limits is not None:
        memory = docker_size(limits.memory)
        if swarm:
            resources: dict[str, Any] = {"memory": memory, "pids": limits.pids}
            if container.cpus:
                resources["cpus"] = cpus_text(container.cpus)
            service["deploy"].setdefault("resources", {})["limits"] = resources
        else:
            service.update(mem_limit=memory, memswap_limit=memory, pids_limit=limits.pids)
            if container.cpus:
                service["cpus"] = float(cpus_text(container.cpus))
        options = {"max-size": docker_size(log_file_bytes(limits)), "max-file": str(LOG_FILES)}
        service["logging"] = {"driver": "json-file", "options": options}


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


def _deploy(gpu: bool, swarm: bool) -> dict[str, Any]:
    """The service's ``deploy``: restart on any exit; with ``gpu``, the GPU reserved (every
    GPU as a device reservation, or one Swarm generic resource in ``stack.yaml``)."""
    deploy: dict[str, Any] = {"restart_policy": {"condition": "any"}}
    if gpu and swarm:
        spec = {"discrete_resource_spec": {"kind": SWARM_GPU_KIND, "value": 1}}
        deploy["resources"] = {"reservations": {"generic_resources": [spec]}}
    elif gpu:
        devices = [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
        deploy["resources"] = {"reservations": {"devices": devices}}
    return deploy


def _serve_service(app: FleetApp, swarm: bool) -> dict[str, Any]:
    serve = app.serve
    service: dict[str, Any] = {
        "image": serve.image,
        "command": list(app.serve_args()),
        "working_dir": serve.working_dir,
        "restart": "unless-stopped",
        "ports": _ports(app, serve, swarm),
        "volumes": _volumes(serve) + [f"./{f.path}:{f.target}:ro" for f in app.files],
        "healthcheck": _health(),
        "labels": _labels(app, serve),
        "deploy": _deploy(serve.gpu, swarm),
    }
    _harden(service, serve, swarm)
    if serve.secrets:
        service["secrets"] = _secrets(serve, swarm)
    return service


def _node_service(app: FleetApp, node: Container, swarm: bool) -> dict[str, Any]:
    service: dict[str, Any] = {
        "image": node.image,
        "entrypoint": list(node.command),
        "command": [],
        "working_dir": node.working_dir,
        "restart": "unless-stopped",
        "depends_on": [app.serve.name],
        "volumes": _volumes(node),
        "labels": _labels(app, node),
        "deploy": _deploy(node.gpu, swarm),
    }
    _harden(service, node, swarm)
    if node.secrets:
        service["secrets"] = _secrets(node, swarm)
    return service


def compose_document(app: FleetApp, *, swarm: bool = False) -> dict[str, Any]:
    """The Compose file of ``app`` as a mapping (services, volumes, secrets).

    Args:
        swarm: the Swarm stack's form (``stack.yaml``): limits under ``deploy.resources``.
    """
    services = {app.serve.name: _serve_service(app, swarm)}
    for node in app.nodes:
        services[node.name] = _node_service(app, node, swarm)
    volumes: dict[str, Any] = {}
    for name in app.volumes:
        volumes[name] = {"labels": {LABEL_APP: app.name}}
    version = STACK_FORMAT_VERSION if swarm else FORMAT_VERSION
    document: dict[str, Any] = {"version": version, "services": services}
    document["volumes"] = volumes
    if app.secrets:
        document["secrets"] = {s.name: {"file": f"./secrets/{s.name}"} for s in app.secrets}
    return document


def render(app: FleetApp) -> list[OutFile]:
    """``compose.yaml``, ``stack.yaml`` and, per secret, ``secrets/<name>`` for ``app``.

    Returns:
        The bundle's files (every secret 0644 in the 0700 ``secrets/``: see the module
        docstring); the same ``app`` gives the same bytes.
    """
    import yaml  # type: ignore[import-untyped]

    files = []
    for name, swarm, how in (
        (FILE_NAME, False, f"docker compose -f {FILE_NAME} up -d"),
        (STACK_FILE_NAME, True, f"docker stack deploy -c {STACK_FILE_NAME} NAME"),
    ):
        note = ""
        if swarm and app.listen_host not in ANY_HOST:
            note = SWARM_PUBLISH_NOTE.format(host=app.listen_host)
        if swarm and any(c.gpu for c in app.containers):
            note += SWARM_GPU_NOTE
        text = (
            f"# {app.name} {app.version}: made by panorama-cli export --target compose\n"
            f"# {how}\n"
            + note
            + yaml.safe_dump(compose_document(app, swarm=swarm), sort_keys=False, width=100)
        )
        files.append(OutFile(name, text.encode()))
        log.debug("%s for %s: %d bytes", name, app.name, len(text))
    for secret in app.secrets:
        # a token file holds the token alone (no newline): the SDK sends what it reads
        token = secret.kind == "node-token"
        content = secret.value.encode() + (b"" if token else b"\n")
        files.append(OutFile(f"secrets/{secret.name}", content, private=True, mode=0o644))
    return files
