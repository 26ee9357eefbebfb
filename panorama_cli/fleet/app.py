"""The :class:`~.model.FleetApp` of a run plan and its images: a pure function.

What serve gets in the serve container: ``--camera`` files as bundle files mounted under
:data:`~.model.CAMERAS_DIR`; URLs with a user or password as secrets (read back with
``NODE=@FILE``); other URLs as they are; ``--param`` values as typed; ``--model`` files,
overrides and a graph outside graphs/ inside the image (:data:`EXPORT_DIR`).

Who is who on the control socket: serve gets the bundle's control key as a secret file
(``--control-key``), each node container only its own token
(:func:`~panorama_cli.localrun.frames.identity.node_token`) as a secret file named by
``PANORAMA_LOCALRUN_TOKEN_FILE``; serve refuses a ``hello`` whose token is not the named
node's. Node containers get the export's limits (``--node-memory`` and the others).

Who may watch: serve's login token (HTTP and RTSP out, :mod:`panorama_cli.localrun.serve.auth`)
is a secret file of serve only (``--auth-token-file``), kept in the bundle's
``secrets/serve-token`` across exports as the control key is. RTSP out's URLs name where a
client reaches it (``--public-url``: the published host and port, or the export's own
``--public-url``).

Who gets the GPU (``--device cuda``): serve when the graph has model nodes (it runs them), and
each business-logic node the plan gives it (:func:`panorama_cli.project.accelerators.gpu_reasons`:
its package asks for an accelerator, or the graph has no model node and the app runs its models
itself); serve starts with ``--device cpu`` when it runs no model.

Who runs: serve as :data:`~.model.SERVE_UID`, node ``i`` as ``NODE_UID_BASE + i``, all in
group :data:`~.model.APP_GID`; no container runs as root.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from panorama_cli.errors import UsageError
from panorama_cli.fleet import model
from panorama_cli.fleet.model import (
    BundleFile,
    Camera,
    Container,
    FleetApp,
    Secret,
    dns_label,
)
from panorama_cli.localrun.apps.limits import NodeLimits

log = logging.getLogger(__name__)

#: Files export adds to the project inside the serve image (overrides, --model files).
EXPORT_DIR = ".panorama-export"
#: serve's own limits in a fleet (it decodes every camera and runs the models).
SERVE_LIMITS = NodeLimits(memory=8 << 30, pids=1024, storage=2 << 30)
#: CPUs of serve's container and of each node container by default (Docker refuses more
#: than the box has: a small box's count).
SERVE_CPUS = 2.0
NODE_CPUS = 1.0
#: How long a node container's SDK waits for serve's control socket at start (seconds).
NODE_CONNECT_WAIT_S = 60
TARGETS = ("compose", "kubernetes", "greengrass")


@dataclass(frozen=True)
class ExportOptions:
    """``panorama-cli export``'s own options (run's graph/camera/param/model options are a
    :class:`~panorama_cli.localrun.plan.RunOptions`).

    Attributes:
        target: ``compose``, ``kubernetes`` or ``greengrass``.
        output_dir: the bundle folder.
        listen_port: host port of serve's HTTP (``--listen HOST:PORT``'s port).
        rtsp_port: host port of RTSP out (0: off).
        device: ``cpu`` or ``cuda``.
        registry: ``--registry PREFIX`` images are pushed to and pulled from (None: local).
        platform: ``linux/amd64`` / ``linux/arm64`` (None: the nodes' images' own).
        device_names: kubernetes: one Deployment per device (node host name).
        node_selector: kubernetes: one DaemonSet over these labels.
        runtime_base: the Debian base image of the runtime (None: base-image's tag).
        limits: each node container's memory, processes and storage.
        listen_host: the host address HTTP and RTSP out are published on (``0.0.0.0``: all).
        public_url: RTSP out's base URL as clients reach it (``rtsp://HOST:PORT``; None: the
            published host and port, the host a client named when published on all).
        allowed_hosts: names clients reach serve's HTTP by (serve's ``--allowed-host``).
        host_network: kubernetes: publish with hostPort on each box (else a Service).
        host_path_storage: kubernetes: state, storage and camera files in hostPath folders.
        node_cpus: CPUs of each node container (0: no limit).
        serve_limits: serve's own memory, processes and log/``/tmp`` sizes.
        serve_cpus: CPUs of serve's container (0: no limit).
    """

    target: str
    output_dir: Path
    listen_port: int = model.HTTP_PORT
    rtsp_port: int = model.RTSP_PORT
    device: str = "cpu"
    registry: str | None = None
    platform: str | None = None
    device_names: tuple[str, ...] = ()
    node_selector: Mapping[str, str] = field(default_factory=dict)
    runtime_base: str | None = None
    limits: NodeLimits = field(default_factory=NodeLimits)
    listen_host: str = "0.0.0.0"
    public_url: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    host_network: bool = False
    host_path_storage: bool = False
    node_cpus: float = NODE_CPUS
    serve_limits: NodeLimits = field(default_factory=lambda: SERVE_LIMITS)
    serve_cpus: float = SERVE_CPUS


def has_credentials(source: str) -> bool:
    """An URL with a user name or password in it (``rtsp://user:pw@host/...``)."""
    if "://" not in source:
        return False
    parts = urlsplit(source)
    return bool(parts.username or parts.password)


def cameras(sources: Mapping[str, str]) -> tuple[dict[str, Camera], list[BundleFile], list[Secret]]:
    """serve's view of each camera (see the module docstring).

    Raises:
        UsageError: a local folder or glob (image folders are not bundled: give a video).
    """
    found: dict[str, Camera] = {}
    files: list[BundleFile] = []
    secrets: list[Secret] = []
    for node, source in sources.items():
        label = dns_label(node)
        path = Path(source)
        if "://" not in source and not source.startswith(("gst:", "/dev/")) and path.exists():
            if not path.is_file():
                raise UsageError(
                    f"--camera {node}={source}: a folder cannot be bundled",
                    hint="give a video file or a camera URL for a fleet",
                )
            name = f"{label}{path.suffix.lower()}"
            target = f"{model.CAMERAS_DIR}/{name}"
            files.append(BundleFile(f"cameras/{name}", path.resolve(), target))
            found[node] = Camera(node, "file", target)
        elif has_credentials(source):
            secret = Secret(f"camera-{label}", node, source, f"{model.SECRETS_DIR}/camera-{label}")
            secrets.append(secret)
            found[node] = Camera(node, "secret", secret.target, secret)
        else:
            found[node] = Camera(node, "url", source)
    return found, files, secrets


def _version(parts: Mapping[str, Any]) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def control_secrets(key: bytes, nodes: list[str]) -> tuple[Secret, dict[str, Secret]]:
    """The control key as serve's secret and each node's own token as that node's secret.

    Args:
        key: the bundle's control key (:func:`~panorama_cli.localrun.frames.identity.new_key`).
        nodes: the business-logic nodes' names.

    Returns:
        (the key's :class:`~.model.Secret`, ``{node: its token's Secret}``): the key's value
        is its hex text (``identity.key_to_text`` without the newline), a token's the 43
        characters of ``identity.node_token(key, node)``.
    """
    from panorama_cli.localrun.frames.identity import key_to_text, node_token

    control = Secret("control.key", "control-key", key_to_text(key).strip(),
                     model.CONTROL_KEY_FILE, kind="control-key")  # fmt: skip
    tokens = {
        node: Secret(
            f"node-{dns_label(node)}.token",
            f"token-{dns_label(node)}",
            node_token(key, node),
            model.NODE_TOKEN_FILE,
            kind="node-token",
            node=node,
        )  # fmt: skip
        for node in nodes
    }
    return control, tokens


def node_container(
    app_name: str,
    uid: str,
    business: Any,
    image: str,
    python_path: str = "",
    *,
    token: Secret | None = None,
    limits: NodeLimits | None = None,
    index: int = 0,
    cpus: float = 0.0,
    gpu: bool = False,
) -> Container:
    """A business-logic node's container, started as the appliance started it, but as user
    ``NODE_UID_BASE + index`` of group :data:`~.model.APP_GID` (not root).

    Args:
        token: the node's own token (:func:`control_secrets`): mounted into this container
            only, named by ``PANORAMA_LOCALRUN_TOKEN_FILE`` in its environment.
        limits: the container's limits.
        index: the node's place in the graph (its user id's offset).
        cpus: CPUs it may use (0: no limit).
        gpu: the container gets every GPU of the box (``--device cuda`` and the node is in
            the plan's :attr:`~panorama_cli.localrun.plan.RunPlan.gpu_nodes`).
    """
    from panorama_cli.localrun.apps.appliance import CONNECT_WAIT_ENV, SDK_TARGET, app_environment
    from panorama_cli.localrun.frames.identity import TOKEN_FILE_ENV

    name = business.node.name
    env = app_environment(
        {"AppGraph_Uid": uid, "PANORAMA_LOCALRUN_NODE": name}, shims=False, aws_profile=None
    )
    if token is not None:
        env[TOKEN_FILE_ENV] = token.target
    env[CONNECT_WAIT_ENV] = str(NODE_CONNECT_WAIT_S)  # serve's socket may come after the node
    if python_path:
        env["PYTHONPATH"] = f"{SDK_TARGET}:{python_path}"
    command = (
        "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in sorted(env.items())),
        business.entry.interpreter, business.entry.entry,
    )  # fmt: skip
    label = dns_label(name)
    return Container(
        name=label,
        role="node",
        node=name,
        image=image,
        command=command,
        mounts=model.node_mounts(label),
        read_only=True,
        tmpfs=("/tmp",),
        secrets=(token,) if token is not None else (),
        limits=limits,
        user=(model.NODE_UID_BASE + index, model.APP_GID),
        cpus=cpus,
        gpu=gpu,
    )


def serve_token_secret(token: str) -> Secret:
    """serve's login token as serve's secret file (:data:`~.model.SERVE_TOKEN_FILE`).

    Args:
        token: the token (``secrets.token_urlsafe(32)``: 43 URL-safe characters).
    """
    return Secret("serve-token", "serve-token", token, model.SERVE_TOKEN_FILE, kind="serve-token")


def public_url(options: ExportOptions) -> str:
    """RTSP out's base URL for serve's ``--public-url``: the export's own, else
    ``rtsp://<published host>:<rtsp port>`` (``0.0.0.0``: the host a client named; so on
    Kubernetes without hostPort, where clients come through a Service or a port-forward).

    Raises:
        UsageError: a ``--public-url`` that is not ``rtsp://HOST[:PORT]``.
    """
    from panorama_cli.localrun.serve.rtsp_out import check_public_url

    if options.public_url:
        return check_public_url(options.public_url)
    host = options.listen_host
    if options.target == "kubernetes" and not options.host_network:
        host = "0.0.0.0"
    shown = "0.0.0.0" if host in model.ANY_HOST else (f"[{host}]" if ":" in host else host)
    return f"rtsp://{shown}:{options.rtsp_port}"


def fleet_app(
    plan: Any,
    options: ExportOptions,
    serve_image: str,
    node_images: Mapping[str, tuple[str, str]],
    serve_extra_args: tuple[str, ...] = (),
    platform: str = "linux/amd64",
    *,
    control_key: bytes,
    serve_token: str,
) -> FleetApp:
    """The application as every target deploys it.

    Args:
        plan: the run plan (graph with overrides, cameras, parameters, business nodes).
        options: export's options.
        serve_image: the serve image's reference (registry prefix applied).
        node_images: node -> (image reference, the image's own PYTHONPATH).
        serve_extra_args: serve's ``--graph``/``--override``/``--model`` arguments (paths in
            the image).
        platform: the images' platform.
        control_key: the bundle's control key (kept across exports by the caller): serve
            gets it, each node container its own token.
        serve_token: serve's login token (kept across exports by the caller).

    Raises:
        UsageError: a camera that cannot be bundled.
    """
    found, files, secrets = cameras(plan.cameras)
    control, tokens = control_secrets(control_key, [b.node.name for b in plan.business])
    login = serve_token_secret(serve_token)
    rtsp_url = public_url(options) if options.rtsp_port else ""
    params = {k: str(v) for k, v in plan.options.params.items()}
    name = dns_label(plan.project.root.name)
    version = _version(
        {
            "serve": serve_image,
            "nodes": dict(node_images),
            "cameras": {k: c.value for k, c in found.items()},
            "secrets": {s.name: hashlib.sha256(s.value.encode()).hexdigest() for s in secrets},
            "params": params,
            "ports": [options.listen_port, options.rtsp_port],
            "device": options.device,
            "args": serve_extra_args,
            "control": hashlib.sha256(control_key).hexdigest(),
            "login": hashlib.sha256(serve_token.encode()).hexdigest(),
            "limits": [options.limits.memory, options.limits.pids, options.limits.storage],
            "serve_limits": [
                options.serve_limits.memory,
                options.serve_limits.pids,
                options.serve_limits.storage,
                options.serve_cpus,
            ],
            "published": [
                options.listen_host,
                rtsp_url,
                list(options.allowed_hosts),
                options.node_cpus,
                options.host_network,
                options.host_path_storage,
            ],
        }
    )
    uid = f"applicationInstance-{name}-{version}"
    # serve runs the model nodes: it gets the GPU when there are some to run
    serve_gpu = options.device == "cuda" and bool(plan.models)
    nodes = tuple(
        node_container(
            name,
            uid,
            b,
            *node_images[b.node.name],
            token=tokens[b.node.name],
            limits=options.limits,
            index=index,
            cpus=options.node_cpus,
            gpu=b.node.name in plan.gpu_nodes,
        )  # fmt: skip
        for index, b in enumerate(plan.business)
    )
    args = (
        "serve", "--listen", f"0.0.0.0:{model.HTTP_PORT}",
        "--rtsp-port", str(model.RTSP_PORT if options.rtsp_port else 0),
        "--state-dir", model.STATE_DIR, "--external-nodes",
        "--control-socket", f"{model.CONTROL_DIR}/ctl.sock",
        "--control-key", model.CONTROL_KEY_FILE, "--log-format", "json",
        "--auth-token-file", model.SERVE_TOKEN_FILE,
        *(("--public-url", rtsp_url) if rtsp_url else ()),
        *(arg for name in options.allowed_hosts for arg in ("--allowed-host", name)),
        "--device", "cuda" if serve_gpu else "cpu", *serve_extra_args,
    )  # fmt: skip
    ports = [(model.HTTP_PORT, options.listen_port)]
    if options.rtsp_port:
        ports.append((model.RTSP_PORT, options.rtsp_port))
    serve = Container(
        name="serve",
        role="serve",
        node="",
        image=serve_image,
        args=args,
        mounts=model.serve_mounts(),
        ports=tuple(ports),
        health_path="/healthz",
        ready_path="/readyz",
        gpu=serve_gpu,
        working_dir=f"{model.PROJECT_DIR}/{plan.project.root.name}",
        secrets=(*secrets, control, login),
        read_only=True,
        tmpfs=("/tmp",),
        limits=options.serve_limits,
        user=(model.SERVE_UID, model.APP_GID),
        cpus=options.serve_cpus,
    )
    volumes = sorted({m.volume for c in (serve, *nodes) for m in c.mounts})
    log.debug("fleet app %s %s: %d node container(s), %d camera(s), %d secret(s)",
              name, version, len(nodes), len(found), len(secrets))  # fmt: skip
    return FleetApp(
        name=name,
        version=version,
        serve=serve,
        nodes=nodes,
        cameras=found,
        params=params,
        files=tuple(files),
        secrets=(*secrets, control, login, *tokens.values()),
        listen_host=options.listen_host,
        listen_port=options.listen_port,
        rtsp_port=options.rtsp_port,
        device=options.device,
        platform=platform,
        volumes=tuple(volumes),
    )
