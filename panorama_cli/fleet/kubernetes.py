"""Kubernetes export of a :class:`.model.FleetApp` (a pure function: no I/O, no cluster).

:func:`render` gives ``<app>.yaml`` (apply it with ``kubectl apply --server-side -f`` or
``panorama-cli deploy --target kubernetes``) and, when the app has camera credentials,
``<app>-secret.yaml`` (a Secret, written 0600, never merged into ``<app>.yaml``).

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
    params_name,
    persistent_volumes,
    pod_spec,
    secret_name,
)
from panorama_cli.fleet.model import FleetApp, OutFile

log = logging.getLogger(__name__)

STORAGE_KINDS = ("pvc", "hostpath")
#: Size each PersistentVolumeClaim requests (a node's storage, its logs, serve's state).
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
) -> list[OutFile]:
    """The Kubernetes manifests of ``app``.

    One Pod runs serve and every business-logic node container (they share the control socket
    and ``/dev/shm``), either as one Deployment per device (``device_names``: Kubernetes node
    names; replicas 1, strategy Recreate, pinned with ``nodeSelector:
    {kubernetes.io/hostname: NAME}``) or as one DaemonSet over ``node_selector`` (labels ->
    values; ``{}``: every node). The camera files of the bundle are hostPath volumes: copy the
    bundle folder to ``bundle_path`` on each node before applying.

    Args:
        app: the application.
        device_names: Kubernetes node names, one Deployment ``<app>-<node as a DNS label>``
            each. Exactly one of ``device_names`` and ``node_selector`` is given.
        node_selector: node labels the DaemonSet ``<app>`` runs on.
        storage: ``"pvc"``: a PersistentVolumeClaim (ReadWriteOnce, :data:`PVC_SIZE`) per
            volume per Deployment; ``"hostpath"``: hostPath folders
            ``<host_path_root>/<app>/<volume>`` (DirectoryOrCreate). A DaemonSet always uses
            hostPath (its Pods cannot have their own claims).
        host_path_root: absolute folder on the nodes for hostPath volumes.
        bundle_path: absolute path of the bundle folder on the nodes (default
            ``/opt/panorama-cli/bundles/<app.name>``).
        namespace: the objects' namespace.

    Returns:
        ``<app>.yaml`` (ConfigMap ``<app>-params``, the claims, the workloads; YAML documents
        joined by ``---``, the same bytes for the same input) and, with secrets,
        ``<app>-secret.yaml`` (Secret ``<app>-cameras``, private).

    Raises:
        UsageError: neither or both of ``device_names`` / ``node_selector``, an unknown
            ``storage``, a relative path, a namespace that is not a DNS label, duplicate devices.
    """
    bundle_path = bundle_path or f"/opt/panorama-cli/bundles/{app.name}"
    _check(device_names, node_selector, storage, host_path_root, bundle_path, namespace)
    docs: list[Doc] = []
    if app.params:
        docs.append(_config_map(app, namespace))
    if node_selector is not None:
        persistent = {v: _host_path(host_path_root, app, v) for v in persistent_volumes(app)}
        pod = pod_spec(app, persistent=persistent, node_selector=node_selector,
                       bundle_path=bundle_path)  # fmt: skip
        docs.append(_workload(app, "DaemonSet", app.name, namespace, pod))
    else:
        for device, name in zip(device_names, _workload_names(app, device_names), strict=True):
            if storage == "pvc":
                persistent = {}
                for volume in persistent_volumes(app):
                    claim = f"{name}-{volume}"
                    docs.append(_claim(app, claim, name, namespace))
                    persistent[volume] = {"persistentVolumeClaim": {"claimName": claim}}
            else:
                persistent = {
                    v: _host_path(host_path_root, app, v) for v in persistent_volumes(app)
                }
            pod = pod_spec(app, persistent=persistent, node_selector={HOSTNAME_LABEL: device},
                           bundle_path=bundle_path)  # fmt: skip
            docs.append(_workload(app, "Deployment", name, namespace, pod))
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


def _claim(app: FleetApp, name: str, instance: str, namespace: str) -> Doc:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(app, name, namespace, instance),
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": PVC_SIZE}},
        },
    }


def _workload(app: FleetApp, kind: str, name: str, namespace: str, pod: Doc) -> Doc:
    selector = {LABEL_NAME: app.name, LABEL_INSTANCE: name}
    spec: Doc = {"replicas": 1} if kind == "Deployment" else {}
    spec["selector"] = {"matchLabels": selector}
    if kind == "Deployment":
        spec["strategy"] = {"type": "Recreate"}
    else:  # one Pod per node at a time: the old one frees the host ports first
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
