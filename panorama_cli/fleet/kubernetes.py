"""Kubernetes export of a :class:`.model.FleetApp` (a pure function: no I/O, no cluster).

:func:`render` gives ``<app>.yaml`` (apply it with ``kubectl apply --server-side -f`` or
``panorama-cli deploy --target kubernetes``) and, when the app has camera credentials,
``<app>-secret.yaml`` (a Secret, written 0600, never merged into ``<app>.yaml``): the camera
credentials, the control key, serve's login token and each node's token
(:mod:`.kubernetes_pod` mounts each into its own container only).

How clients reach serve: a Service per workload, never a hostPort (unless ``host_network``):

* a Deployment (one box) gets a ``ClusterIP`` Service ``<workload>`` with ports ``http``
  (the export's ``--listen`` port) and ``rtsp`` (``--rtsp-port``) to serve's 8765 and 8554:
  in the cluster ``http://<workload>.<namespace>.svc:PORT``; from a workstation
  ``kubectl port-forward svc/<workload> PORT``. ClusterIP rather than NodePort: a NodePort
  opens a port from 30000-32767 on every address of every node of the cluster, the widening
  ``--listen`` is there to prevent; an Ingress or a LoadBalancer in front of the Service is the
  cluster owner's choice;
* a DaemonSet (one Pod per box) gets a headless Service (``clusterIP: None``): one DNS record
  per Pod, each box's serve addressed on its own (Prometheus' endpoints discovery);
* serve allows the Service's names as request hosts (``--allowed-host <svc>``, ``<svc>.<ns>``,
  ``<svc>.<ns>.svc``, ``<svc>.<ns>.svc.cluster.local``); addresses always pass;
* ``host_network``: serve's ports also become hostPorts on each box, on the ``--listen``
  address (``hostIP``); this fails Pod Security *baseline*.

Storage: PersistentVolumeClaims (a Deployment) or emptyDirs (a DaemonSet: its Pods cannot have
their own claims; storage lasts as long as the Pod); hostPath folders only with
``storage="hostpath"`` (``--host-path-storage``), which is also what camera files need (they
are hostPath folders of the bundle copied to each box). A hostPath folder must be writable by
the app's group (``chown -R 10001:10001``): ``fsGroup`` does not apply to hostPath.

Format: Kubernetes API reference (https://kubernetes.io/docs/reference/kubernetes-api/):
apps/v1 ``Deployment`` and ``DaemonSet``, core/v1 ``ConfigMap``, ``Secret``,
``PersistentVolumeClaim`` and ``PodSpec`` (:mod:`.kubernetes_pod`); checked against the
official schemas of Kubernetes 1.30 (strict) by the tests.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Mapping, Sequence

from panorama_cli.errors import UsageError
from panorama_cli.fleet import model
from panorama_cli.fleet.kubernetes_pod import (
    Doc,
    claim_bytes,
    params_name,
    persistent_volumes,
    pod_spec,
    port_name,
    quantity,
    secret_name,
)
from panorama_cli.fleet.model import FleetApp, OutFile

log = logging.getLogger(__name__)

STORAGE_KINDS = ("pvc", "hostpath")
#: Size each PersistentVolumeClaim requests (serve's state; a node's storage and logs share
#: its storage limit: :func:`.kubernetes_pod.claim_bytes`).
PVC_SIZE = "1Gi"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_VERSION = "app.kubernetes.io/version"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
HOSTNAME_LABEL = "kubernetes.io/hostname"


def render(
    app: FleetApp,
    *,
    device_names: Sequence[str] = (),
    node_selector: Mapping[str, str] | None = None,
    storage: str = "pvc",
    host_path_root: str = "/var/lib/panorama-cli",
    bundle_path: str | None = None,
    namespace: str = "default",
    host_network: bool = False,
) -> list[OutFile]:
    """The Kubernetes manifests of ``app`` (see the module docstring).

    One Pod runs serve and every business-logic node container (they share the control
    socket), either as one Deployment per device (``device_names``: Kubernetes node
    names; replicas 1, strategy Recreate, pinned with ``nodeSelector:
    {kubernetes.io/hostname: NAME}``) or as one DaemonSet over ``node_selector`` (labels ->
    values; ``{}``: every node). The camera files of the bundle are hostPath volumes: copy the
    bundle folder to ``bundle_path`` on each node before applying.

    Args:
        app: the application.
        device_names: Kubernetes node names, one Deployment ``<app>-<node as a DNS label>``
            each. Exactly one of ``device_names`` and ``node_selector`` is given.
        node_selector: node labels the DaemonSet ``<app>`` runs on.
        storage: ``"pvc"``: a PersistentVolumeClaim (ReadWriteOnce; :data:`PVC_SIZE`, a
            node's storage and logs together its storage limit) per volume per Deployment,
            an emptyDir of that size per volume of a DaemonSet's Pod; ``"hostpath"``:
            hostPath folders ``<host_path_root>/<app>/<volume>`` (DirectoryOrCreate), and
            the only storage that allows camera files.
        host_path_root: absolute folder on the nodes for hostPath volumes.
        bundle_path: absolute path of the bundle folder on the nodes (default
            ``/opt/panorama-cli/bundles/<app.name>``).
        namespace: the objects' namespace.
        host_network: also publish serve's ports as hostPorts on ``app.listen_host``.

    Returns:
        ``<app>.yaml`` (ConfigMap ``<app>-params``, the claims, the workloads, the Services;
        YAML documents
        joined by ``---``, the same bytes for the same input) and, with secrets,
        ``<app>-secret.yaml`` (Secret ``<app>-secrets``, private).

    Raises:
        UsageError: neither or both of ``device_names`` / ``node_selector``, an unknown
            ``storage``, a relative path, a namespace that is not a DNS label, duplicate devices,
            camera files without ``storage="hostpath"``.
    """
    bundle_path = bundle_path or f"/opt/panorama-cli/bundles/{app.name}"
    _check(device_names, node_selector, storage, host_path_root, bundle_path, namespace)
    if app.files and storage != "hostpath":
        raise UsageError(
            f"camera file {app.files[0].path} needs --host-path-storage on kubernetes (a "
            "hostPath folder of the bundle on each box, which Pod Security restricted forbids)",
            hint="give the camera as an rtsp:// URL, or pass --host-path-storage",
        )
    host_ip = app.listen_host if host_network else None
    docs: list[Doc] = []
    if app.params:
        docs.append(_config_map(app, namespace))
    if node_selector is not None:
        if storage == "hostpath":
            persistent = {v: _host_path(host_path_root, app, v) for v in persistent_volumes(app)}
        else:
            sizes = claim_bytes(app)
            persistent = {
                v: {"emptyDir": {"sizeLimit": quantity(sizes[v]) if v in sizes else PVC_SIZE}}
                for v in persistent_volumes(app)
            }
        pod = pod_spec(app, persistent=persistent, node_selector=node_selector,
                       bundle_path=bundle_path, host_ip=host_ip,
                       serve_args=_allowed(app.name, namespace))  # fmt: skip
        docs.append(_workload(app, "DaemonSet", app.name, namespace, pod))
        docs.append(_service(app, app.name, namespace, headless=True))
    else:
        for device, name in zip(device_names, _workload_names(app, device_names), strict=True):
            if storage == "pvc":
                persistent = {}
                sizes = claim_bytes(app)
                for volume in persistent_volumes(app):
                    claim = f"{name}-{volume}"
                    size = quantity(sizes[volume]) if volume in sizes else PVC_SIZE
                    docs.append(_claim(app, claim, name, namespace, size))
                    persistent[volume] = {"persistentVolumeClaim": {"claimName": claim}}
            else:
                persistent = {
                    v: _host_path(host_path_root, app, v) for v in persistent_volumes(app)
                }
            pod = pod_spec(app, persistent=persistent, node_selector={HOSTNAME_LABEL: device},
                           bundle_path=bundle_path, host_ip=host_ip,
                           serve_args=_allowed(name, namespace))  # fmt: skip
            docs.append(_workload(app, "Deployment", name, namespace, pod))
            docs.append(_service(app, name, namespace, headless=False))
    secret_file = f"{app.name}-secret.yaml"
    files = f"-f {secret_file} -f {app.name}.yaml" if app.secrets else f"-f {app.name}.yaml"
    header = (
        f"# {app.name} {app.version} for Kubernetes, exported by panorama-cli.\n"
        f"# Copy the bundle folder to {bundle_path} on each node, then:\n"
        f"#   kubectl apply --server-side {files}\n"
    )
    out = [OutFile(f"{app.name}.yaml", _dump(docs, header))]
    if app.secrets:
        out.append(OutFile(secret_file, _dump([_secret(app, namespace)], ""), private=True))
    log.debug("kubernetes: %d objects for %s", len(docs) + bool(app.secrets), app.name)
    return out


def _check(
    device_names: Sequence[str],
    node_selector: Mapping[str, str] | None,
    storage: str,
    host_path_root: str,
    bundle_path: str,
    namespace: str,
) -> None:
    if isinstance(device_names, str):
        raise UsageError(
            f"device names must be a list, not the text {device_names!r}",
            hint="give each node name on its own",
        )
    if bool(device_names) == (node_selector is not None):
        which = "both" if device_names else "neither"
        raise UsageError(
            f"kubernetes export needs device names or a node selector ({which} given)",
            hint="name the nodes (one Deployment each) or give a node selector (one DaemonSet)",
        )
    if storage not in STORAGE_KINDS:
        raise UsageError(
            f"unknown kubernetes storage {storage!r}", hint=f"use one of {', '.join(STORAGE_KINDS)}"
        )
    for what, path in (("host path root", host_path_root), ("bundle path", bundle_path)):
        if not posixpath.isabs(path):
            raise UsageError(f"{what} {path!r} is not absolute", hint="give a path from /")
    if model.dns_label(namespace) != namespace:
        raise UsageError(
            f"namespace {namespace!r} is not a DNS label",
            hint="use lower case letters, digits and '-' (at most 63)",
        )
    if any(not name.strip() for name in device_names):
        raise UsageError("an empty device name", hint="give each Kubernetes node's name")
    if len(set(device_names)) != len(device_names):
        raise UsageError("a device is named twice", hint="name each node once")


def _workload_names(app: FleetApp, device_names: Sequence[str]) -> list[str]:
    names = [model.dns_label(f"{app.name}-{model.dns_label(d)}") for d in device_names]
    if len(set(names)) != len(names):
        raise UsageError(
            f"device names {', '.join(device_names)} give the same Deployment name twice",
            hint="names must differ in more than case, punctuation or past 63 characters",
        )
    return names


def _labels(app: FleetApp, instance: str | None = None) -> dict[str, str]:
    labels = {LABEL_NAME: app.name}
    if instance:
        labels[LABEL_INSTANCE] = instance
    labels[LABEL_VERSION] = app.version
    labels[LABEL_MANAGED_BY] = "panorama-cli"
    return labels


def _metadata(app: FleetApp, name: str, namespace: str, instance: str | None = None) -> Doc:
    return {"name": name, "namespace": namespace, "labels": _labels(app, instance)}


def _host_path(root: str, app: FleetApp, volume: str) -> Doc:
    path = posixpath.join(root.rstrip("/") or "/", app.name, volume)
    return {"hostPath": {"path": path, "type": "DirectoryOrCreate"}}


def _config_map(app: FleetApp, namespace: str) -> Doc:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(app, params_name(app), namespace),
        "data": dict(app.params),
    }


def _secret(app: FleetApp, namespace: str) -> Doc:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(app, secret_name(app), namespace),
        "type": "Opaque",
        "stringData": {s.key: s.value for s in app.secrets},
    }


def _claim(app: FleetApp, name: str, instance: str, namespace: str, size: str) -> Doc:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(app, name, namespace, instance),
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size}},
        },
    }


def _allowed(service: str, namespace: str) -> tuple[str, ...]:
    """serve's ``--allowed-host`` for the names the Service ``service`` gives it."""
    names = (service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
             f"{service}.{namespace}.svc.cluster.local")  # fmt: skip
    return tuple(arg for name in names for arg in ("--allowed-host", name))


def _service(app: FleetApp, name: str, namespace: str, *, headless: bool) -> Doc:
    """The Service of workload ``name``: ClusterIP (a Deployment) or headless (a DaemonSet),
    the export's ports to serve's."""
    ports = [
        {"name": port_name(inner), "port": outer, "targetPort": port_name(inner),
         "protocol": "TCP"}
        for inner, outer in app.serve.ports
    ]  # fmt: skip
    spec: Doc = {"type": "ClusterIP"}
    if headless:
        spec["clusterIP"] = "None"
    spec["selector"] = {LABEL_NAME: app.name, LABEL_INSTANCE: name}
    spec["ports"] = ports
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(app, name, namespace, name),
        "spec": spec,
    }


def _workload(app: FleetApp, kind: str, name: str, namespace: str, pod: Doc) -> Doc:
    selector = {LABEL_NAME: app.name, LABEL_INSTANCE: name}
    spec: Doc = {"replicas": 1} if kind == "Deployment" else {}
    spec["selector"] = {"matchLabels": selector}
    if kind == "Deployment":
        spec["strategy"] = {"type": "Recreate"}
    else:  # one Pod per node at a time (the old one frees its storage and hostPorts first)
        spec["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}
    spec["template"] = {"metadata": {"labels": _labels(app, name)}, "spec": pod}
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": _metadata(app, name, namespace, name),
        "spec": spec,
    }


def _dump(docs: Sequence[Doc], header: str) -> bytes:
    import yaml  # type: ignore[import-untyped]

    text = "---\n".join(
        yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=100) for doc in docs
    )
    return (header + text).encode()
