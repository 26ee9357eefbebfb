"""The Pod of a :class:`.model.FleetApp` for :mod:`.kubernetes`: one core/v1 PodSpec holding
serve and every business-logic node container (pure functions, no I/O).

Format: Kubernetes API reference, core/v1 ``PodSpec``, ``Container``, ``Volume``
(https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/).

Secrets: one Secret (:func:`secret_name`) holds the camera credentials, the control key,
serve's login token and every node's token; each container mounts a secret volume selecting
only its own keys (``items``): serve the cameras', ``control-key`` and ``serve-token``, a node
its ``token-<node>`` as ``/run/secrets/node.token``.

Pod Security *restricted* (https://kubernetes.io/docs/concepts/security/pod-security-standards/):
the Pod runs as non-root (``runAsNonRoot``; serve :data:`~.model.SERVE_UID`, node ``i``
``NODE_UID_BASE + i``, group and ``fsGroup`` :data:`~.model.APP_GID`, so claims and emptyDirs
are the app's group's), ``seccompProfile: RuntimeDefault``; every container
``allowPrivilegeEscalation: false``, ``capabilities.drop: [ALL]``, a read-only root. No
hostPort unless ``host_network`` (then on the ``--listen`` host as ``hostIP``); hostPath only in
``persistent`` / camera folders the caller chose (``--host-path-storage``).

Limits: a container's ``resources.limits.memory`` is its memory limit and its
``requests.memory`` at most :data:`MEMORY_REQUEST` (what the scheduler reserves: a small box
still takes the Pod); ``limits.cpu`` its CPUs, ``requests.cpu`` at most :data:`CPU_REQUEST`;
its ``/tmp`` is a Memory emptyDir with a ``sizeLimit``. A container that gets the GPU (``--device
cuda``: serve when it runs model nodes, a node the plan gives it, see :mod:`.app`) has
``limits["nvidia.com/gpu"]: 1`` (the NVIDIA device plugin's resource). Kubernetes has no
per-container process limit: pids are bounded per Pod by the kubelet's ``podPidsLimit``
(a node setting, not a manifest's). A node's storage and logs claims share its storage limit
(:func:`claim_bytes`; a claim's size is enforced by the storage class, hostPath folders are not
bounded).
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
#: Volumes that live as long as the Pod (emptyDir), not across restarts.
EPHEMERAL_VOLUMES = (model.CONTROL_VOLUME,)
#: Largest memory request of a container (bytes): what the scheduler reserves.
MEMORY_REQUEST = 256 << 20
#: Largest CPU request of a container (cores).
CPU_REQUEST = 0.25
#: A node's logs claim is this fraction of its storage limit, its storage claim the rest.
LOGS_SHARE = 4


def params_name(app: FleetApp) -> str:
    """Name of the ConfigMap holding ``app.params``: ``<app>-params``."""
    return f"{app.name}-params"


def secret_name(app: FleetApp) -> str:
    """Name of the Secret holding ``app.secrets``: ``<app>-secrets``."""
    return f"{app.name}-secrets"


def claim_bytes(app: FleetApp) -> dict[str, int]:
    """Volume -> bytes its claim requests, for the volumes of nodes with limits: the storage
    volume ``storage - storage // LOGS_SHARE``, the logs volume ``storage // LOGS_SHARE``."""
    from panorama_cli.localrun.apps.appliance import LOGS, STORAGE

    sizes: dict[str, int] = {}
    for node in app.nodes:
        if node.limits is None:
            continue
        logs = node.limits.storage // LOGS_SHARE
        for mount in node.mounts:
            if mount.target == STORAGE:
                sizes[mount.volume] = node.limits.storage - logs
            elif mount.target == LOGS:
                sizes[mount.volume] = logs
    return sizes


def _secret_volume(container: Container) -> str:
    return f"{model.dns_label(f'secrets-{container.name}', 63)}"


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
        return f"{camera.node}=@{camera.secret.target}"
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


def port_name(port: int) -> str:
    """A container port's name: ``http`` (8765), ``rtsp`` (8554), else ``port-N``."""
    return {model.HTTP_PORT: "http", model.RTSP_PORT: "rtsp"}.get(port, f"port-{port}")


def _probe(path: str) -> Doc:
    return {"httpGet": {"path": path, "port": model.HTTP_PORT}, "periodSeconds": 10}


def _cpu(cores: float) -> str:
    """Cores as a Kubernetes CPU quantity: ``1.0`` -> ``"1"``, ``0.25`` -> ``"250m"``."""
    milli = round(cores * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def _resources(app: FleetApp, container: Container) -> Doc:
    requests: Doc = {}
    limits: Doc = {}
    if container.limits is not None:
        memory = container.limits.memory
        requests["memory"] = quantity(min(memory, MEMORY_REQUEST))
        limits["memory"] = quantity(memory)
    if container.cpus:
        requests["cpu"] = _cpu(min(container.cpus, CPU_REQUEST))
        limits["cpu"] = _cpu(container.cpus)
    if container.gpu:  # the NVIDIA device plugin's resource: one GPU of the box
        limits["nvidia.com/gpu"] = 1
    resources: Doc = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return resources


def _security(container: Container) -> Doc:
    security: Doc = {"allowPrivilegeEscalation": False, "privileged": False}
    if container.read_only:
        security["readOnlyRootFilesystem"] = True
    security["runAsNonRoot"] = True
    if container.user is not None:
        security["runAsUser"], security["runAsGroup"] = container.user
    security["capabilities"] = {"drop": ["ALL"]}
    security["seccompProfile"] = {"type": "RuntimeDefault"}
    return security


def _container(
    app: FleetApp,
    container: Container,
    bundle: list[tuple[str, str, str]],
    host_ip: str | None,
    extra_args: tuple[str, ...],
) -> Doc:
    serve = container.role == "serve"
    doc: Doc = {"name": container.name, "image": container.image}
    doc["imagePullPolicy"] = "IfNotPresent"
    if container.command:
        doc["command"] = list(container.command)
    args = app.serve_args(camera_arg=_camera_arg, param_arg=_param_arg) if serve else container.args
    if args:
        doc["args"] = [*args, *(extra_args if serve else ())]
    doc["workingDir"] = container.working_dir
    if container.ports:
        ports = []
        for inner, outer in container.ports:
            port: Doc = {"name": port_name(inner), "containerPort": inner, "protocol": "TCP"}
            if host_ip is not None:  # --host-network: on each box's own address
                port["hostPort"] = outer
                if host_ip not in model.ANY_HOST:
                    port["hostIP"] = host_ip
            ports.append(port)
        doc["ports"] = ports
    resources = _resources(app, container)
    if resources:
        doc["resources"] = resources
    mounts = [_mount(m) for m in container.mounts]
    mounts += [{"name": _tmpfs_volume(container, i), "mountPath": path}
               for i, path in enumerate(container.tmpfs)]  # fmt: skip
    if serve:
        if app.params:
            mounts.append({"name": PARAMS_VOLUME, "mountPath": model.PARAMS_DIR, "readOnly": True})
        mounts += [{"name": name, "mountPath": dst, "readOnly": True} for name, _, dst in bundle]
    if container.secrets:
        mounts.append(
            {"name": _secret_volume(container), "mountPath": model.SECRETS_DIR, "readOnly": True}
        )
    doc["volumeMounts"] = mounts
    if serve or container.health_path:
        doc["livenessProbe"] = _probe(container.health_path or "/healthz")
        doc["livenessProbe"].update(initialDelaySeconds=10, failureThreshold=6)
    if serve or container.ready_path:
        doc["readinessProbe"] = _probe(container.ready_path or "/readyz")
    doc["securityContext"] = _security(container)
    return doc


def pod_spec(
    app: FleetApp,
    *,
    persistent: Mapping[str, Doc],
    node_selector: Mapping[str, str],
    bundle_path: str,
    host_ip: str | None = None,
    serve_args: tuple[str, ...] = (),
) -> Doc:
    """The core/v1 PodSpec running every container of ``app`` together.

    Args:
        app: the application.
        persistent: volume name -> its core/v1 volume source, one per
            :func:`persistent_volumes` entry, e.g.
            ``{"state": {"persistentVolumeClaim": {"claimName": "pc-edge-1-state"}}}``.
        node_selector: the Pod's ``nodeSelector`` (labels -> values; empty: any node).
        bundle_path: the bundle folder's absolute path on every node (camera files are
            mounted from ``<bundle_path>/<folder of BundleFile.path>``: hostPath, which the
            caller allows only with ``--host-path-storage``).
        host_ip: None: no hostPort (a Service reaches the Pod); else serve's ports are
            hostPorts on this address (``0.0.0.0``: every address of the box).
        serve_args: more arguments of serve (``--allowed-host`` of the Service's names).

    Returns:
        the PodSpec: containers (serve first), an emptyDir for the control socket (read-only
        in the nodes), Memory emptyDirs for each container's tmpfs paths (a node's with its
        ``/tmp`` size), the params ConfigMap (serve), one volume of the Secret per container
        holding only that container's keys, the bundle's hostPath folders (serve, read-only).
    """
    bundle = _bundle_dirs(app)
    volumes: list[Doc] = [{"name": model.CONTROL_VOLUME, "emptyDir": {}}]
    volumes += [{"name": name, **persistent[name]} for name in persistent_volumes(app)]
    for container in app.containers:
        tmp: Doc = {"medium": "Memory"}
        if container.limits is not None:
            tmp["sizeLimit"] = quantity(model.tmp_bytes(container.limits))
        volumes += [{"name": _tmpfs_volume(container, i), "emptyDir": dict(tmp)}
                    for i in range(len(container.tmpfs))]  # fmt: skip
    if app.params:
        volumes.append({"name": PARAMS_VOLUME, "configMap": {"name": params_name(app)}})
    for container in app.containers:
        if container.secrets:  # only this container's keys of the Secret
            items = [{"key": s.key, "path": posixpath.basename(s.target)}
                     for s in container.secrets]  # fmt: skip
            source = {"secretName": secret_name(app), "items": items}
            volumes.append({"name": _secret_volume(container), "secret": source})
    root = bundle_path.rstrip("/")
    for name, src, _ in bundle:
        path = posixpath.join(root, src) if src else root
        volumes.append({"name": name, "hostPath": {"path": path, "type": "Directory"}})
    spec: Doc = {"automountServiceAccountToken": False, "enableServiceLinks": False}
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    spec["securityContext"] = {
        "runAsNonRoot": True,
        "runAsUser": model.SERVE_UID,
        "runAsGroup": model.APP_GID,
        "fsGroup": model.APP_GID,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    spec["containers"] = [_container(app, c, bundle, host_ip, serve_args) for c in app.containers]
    spec["volumes"] = volumes
    return spec
