"""The :class:`~.model.FleetApp` of a run plan and its images: a pure function.

What serve gets in the serve container: ``--camera`` files as bundle files mounted under
:data:`~.model.CAMERAS_DIR`; URLs with a user or password as secrets (read back with
``NODE=@FILE``); other URLs as they are; ``--param`` values as typed; ``--model`` files,
overrides and a graph outside graphs/ inside the image (:data:`EXPORT_DIR`).
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
from panorama_cli.fleet.model import BundleFile, Camera, Container, FleetApp, Secret, dns_label

log = logging.getLogger(__name__)

#: Files export adds to the project inside the serve image (overrides, --model files).
EXPORT_DIR = ".panorama-export"
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


def node_container(
    app_name: str, uid: str, business: Any, image: str, python_path: str = ""
) -> Container:
    """A business-logic node's container, started as the appliance started it."""
    from panorama_cli.localrun.apps.appliance import SDK_TARGET, app_environment

    name = business.node.name
    env = app_environment(
        {"AppGraph_Uid": uid, "PANORAMA_LOCALRUN_NODE": name}, shims=False, aws_profile=None
    )
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
    )


def fleet_app(
    plan: Any,
    options: ExportOptions,
    serve_image: str,
    node_images: Mapping[str, tuple[str, str]],
    serve_extra_args: tuple[str, ...] = (),
    platform: str = "linux/amd64",
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

    Raises:
        UsageError: a camera that cannot be bundled.
    """
    found, files, secrets = cameras(plan.cameras)
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
        }
    )
    uid = f"applicationInstance-{name}-{version}"
    nodes = tuple(node_container(name, uid, b, *node_images[b.node.name]) for b in plan.business)
    args = (
        "serve", "--listen", f"0.0.0.0:{model.HTTP_PORT}",
        "--rtsp-port", str(model.RTSP_PORT if options.rtsp_port else 0),
        "--state-dir", model.STATE_DIR, "--external-nodes",
        "--control-socket", f"{model.CONTROL_DIR}/ctl.sock", "--log-format", "json",
        "--device", options.device, *serve_extra_args,
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
        gpu=options.device == "cuda",
        working_dir=f"{model.PROJECT_DIR}/{plan.project.root.name}",
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
        secrets=tuple(secrets),
        listen_port=options.listen_port,
        rtsp_port=options.rtsp_port,
        device=options.device,
        platform=platform,
        volumes=tuple(volumes),
    )
