"""The Pod of a :class:`.model.FleetApp` for :mod:`.kubernetes`: one core/v1 PodSpec holding
serve and every business-logic node container (pure functions, no I/O).

Format: Kubernetes API reference, core/v1 ``PodSpec``, ``Container``, ``Volume``
(https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/).
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Mapping
from typing import Any

from panorama_cli.fleet import model
from panorama_cli.fleet.model import Camera, Container, FleetApp, Mount

log = logging.getLogger(__name__)

#: A Kubernetes object (or part of one) as plain JSON-like data.
Doc = dict[str, Any]

PARAMS_VOLUME = "params"
SECRETS_VOLUME = "secrets"
#: Volumes that live as long as the Pod (emptyDir), not across restarts.
EPHEMERAL_VOLUMES = (model.CONTROL_VOLUME, model.SHM_VOLUME)


def params_name(app: FleetApp) -> str:
    """Name of the ConfigMap holding ``app.params``: ``<app>-params``."""
    return f"{app.name}-params"


def secret_name(app: FleetApp) -> str:
    """Name of the Secret holding ``app.secrets``: ``<app>-cameras``."""
    return f"{app.name}-cameras"


def persistent_volumes(app: FleetApp) -> tuple[str, ...]:
    """The volumes kept across restarts and updates (state, storage-*, logs-*): every volume the
    containers mount except the control socket's and shared memory's, sorted."""
    names = set(app.volumes) | {m.volume for c in app.containers for m in c.mounts}
    return tuple(sorted(names - set(EPHEMERAL_VOLUMES)))


def quantity(n_bytes: int) -> str:
    """A byte count as a Kubernetes quantity (``1073741824`` -> ``"1Gi"``)."""
    for suffix, unit in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if n_bytes and n_bytes % unit == 0:
            return f"{n_bytes // unit}{suffix}"
    return str(n_bytes)


def _camera_arg(camera: Camera) -> str:
    if camera.kind == "secret" and camera.secret is not None:
        return f"{camera.node}=@{model.SECRETS_DIR}/{camera.secret.name}"
    return camera.serve_arg()


def _param_arg(node: str, value: str) -> str:
    return f"{node}=@{model.PARAMS_DIR}/{node}"


def _bundle_dirs(app: FleetApp) -> list[tuple[str, str, str]]:
    """(volume name, folder inside the bundle, folder in serve) per folder of ``app.files``."""
    pairs = sorted({(posixpath.dirname(f.path), posixpath.dirname(f.target)) for f in app.files})
    return [(f"bundle-{i}" if i else "bundle", src, dst) for i, (src, dst) in enumerate(pairs)]


def _tmpfs_volume(container: Container, index: int) -> str:
    return f"{model.dns_label(f'tmpfs-{container.name}', 56)}-{index}"


def _mount(mount: Mount) -> Doc:
    doc: Doc = {"name": mount.volume, "mountPath": mount.target}
    if mount.read_only:
        doc["readOnly"] = True
    return doc


def _port_name(port: int) -> str:
    return {model.HTTP_PORT: "http", model.RTSP_PORT: "rtsp"}.get(port, f"port-{port}")


def _probe(path: str) -> Doc:
    return {"httpGet": {"path": path, "port": model.HTTP_PORT}, "periodSeconds": 10}


def _container(app: FleetApp, container: Container, bundle: list[tuple[str, str, str]]) -> Doc:
    serve = container.role == "serve"
    doc: Doc = {"name": container.name, "image": container.image}
    doc["imagePullPolicy"] = "IfNotPresent"
    if container.command:
        doc["command"] = list(container.command)
    args = app.serve_args(camera_arg=_camera_arg, param_arg=_param_arg) if serve else container.args
    if args:
        doc["args"] = list(args)
    doc["workingDir"] = container.working_dir
    if container.ports:
        doc["ports"] = [
            {"name": _port_name(inner), "containerPort": inner, "hostPort": outer}
            for inner, outer in container.ports
        ]
    if serve and app.device == "cuda":
        doc["resources"] = {"limits": {"nvidia.com/gpu": 1}}
    mounts = [_mount(m) for m in container.mounts]
    if not any(m.volume == model.SHM_VOLUME for m in container.mounts):
        mounts.append({"name": model.SHM_VOLUME, "mountPath": "/dev/shm"})
    mounts += [{"name": _tmpfs_volume(container, i), "mountPath": path}
               for i, path in enumerate(container.tmpfs)]  # fmt: skip
    if serve:
        if app.params:
            mounts.append({"name": PARAMS_VOLUME, "mountPath": model.PARAMS_DIR, "readOnly": True})
        if app.secrets:
            mounts.append(
                {"name": SECRETS_VOLUME, "mountPath": model.SECRETS_DIR, "readOnly": True}
            )
        mounts += [{"name": name, "mountPath": dst, "readOnly": True} for name, _, dst in bundle]
    doc["volumeMounts"] = mounts
    if serve or container.health_path:
        doc["livenessProbe"] = _probe(container.health_path or "/healthz")
        doc["livenessProbe"].update(initialDelaySeconds=10, failureThreshold=6)
    if serve or container.ready_path:
        doc["readinessProbe"] = _probe(container.ready_path or "/readyz")
    security: Doc = {"allowPrivilegeEscalation": False}
    if container.read_only:
        security["readOnlyRootFilesystem"] = True
    if not serve:
        security["capabilities"] = {"drop": ["ALL"]}
    doc["securityContext"] = security
    return doc


def pod_spec(
    app: FleetApp,
    *,
    persistent: Mapping[str, Doc],
    node_selector: Mapping[str, str],
    bundle_path: str,
) -> Doc:
    """The core/v1 PodSpec running every container of ``app`` together.

    Args:
        app: the application.
        persistent: volume name -> its core/v1 volume source, one per
            :func:`persistent_volumes` entry, e.g.
            ``{"state": {"persistentVolumeClaim": {"claimName": "pc-edge-1-state"}}}``.
        node_selector: the Pod's ``nodeSelector`` (labels -> values; empty: any node).
        bundle_path: the bundle folder's absolute path on every node (camera files are
            mounted from ``<bundle_path>/<folder of BundleFile.path>``).

    Returns:
        the PodSpec: containers (serve first), emptyDir volumes for the control socket, a
        Memory emptyDir of :data:`.model.SHM_SIZE_BYTES` at ``/dev/shm`` in every container,
        Memory emptyDirs for each container's tmpfs paths, the params ConfigMap and the
        cameras Secret (serve), the bundle's hostPath folders (serve, read-only).
    """
    bundle = _bundle_dirs(app)
    volumes: list[Doc] = [
        {"name": model.CONTROL_VOLUME, "emptyDir": {}},
        {
            "name": model.SHM_VOLUME,
            "emptyDir": {"medium": "Memory", "sizeLimit": quantity(model.SHM_SIZE_BYTES)},
        },
    ]
    volumes += [{"name": name, **persistent[name]} for name in persistent_volumes(app)]
    for container in app.containers:
        volumes += [{"name": _tmpfs_volume(container, i), "emptyDir": {"medium": "Memory"}}
                    for i in range(len(container.tmpfs))]  # fmt: skip
    if app.params:
        volumes.append({"name": PARAMS_VOLUME, "configMap": {"name": params_name(app)}})
    if app.secrets:
        items = [{"key": s.key, "path": s.name} for s in app.secrets]
        volumes.append(
            {"name": SECRETS_VOLUME, "secret": {"secretName": secret_name(app), "items": items}}
        )
    root = bundle_path.rstrip("/")
    for name, src, _ in bundle:
        path = posixpath.join(root, src) if src else root
        volumes.append({"name": name, "hostPath": {"path": path, "type": "Directory"}})
    spec: Doc = {"automountServiceAccountToken": False, "enableServiceLinks": False}
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    spec["containers"] = [_container(app, c, bundle) for c in app.containers]
    spec["volumes"] = volumes
    return spec
