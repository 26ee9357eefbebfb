"""``deploy --target kubernetes``: server-side apply of the exported manifests, then a wait
until every Deployment and DaemonSet is ready.

Talks to the cluster with the kubernetes Python client (the kube config's current or named
context, ``KUBECONFIG`` honoured): the dynamic client's discovery, then one server-side apply
(``PATCH`` with ``application/apply-patch+yaml``, field manager ``panorama-cli``, conflicts
forced) per object, as ``kubectl apply --server-side --force-conflicts`` does
(https://kubernetes.io/docs/reference/using-api/server-side-apply/).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from panorama_cli.errors import UserError
from panorama_cli.fleet.applied import Applied

log = logging.getLogger(__name__)

FIELD_MANAGER = "panorama-cli"
#: Seconds one API request may take (connect and read).
REQUEST_TIMEOUT_S = 30.0
WORKLOADS = ("Deployment", "DaemonSet")


def deploy(
    manifests: Sequence[Path],
    *,
    context: str | None = None,
    namespace: str | None = None,
    timeout_s: float = 300.0,
    poll_s: float = 2.0,
    notify: Callable[[str], None] | None = None,
    kubeconfig: str | Path | None = None,
    wait: bool = True,
    applied: Applied | None = None,
) -> dict[str, Any]:
    """Apply ``manifests`` to the cluster and wait for the workloads to be ready.

    Args:
        manifests: YAML files of Kubernetes objects (several documents each), applied in order
            (the Secret's file first, so the Pods find it).
        context: the kube config context (default: its current context).
        namespace: the namespace of every namespaced object (default: each object's own, else
            the context's, else ``default``).
        timeout_s: seconds to wait for readiness after the last apply.
        poll_s: seconds between two readiness checks.
        notify: called with one line of progress per step.
        kubeconfig: the kube config file(s) (default: ``KUBECONFIG``, else ``~/.kube/config``).
        wait: wait for readiness (False: apply only; ``ready`` is then empty).
        applied: where each applied object is recorded (for the line a Ctrl-C prints).

    Returns:
        ``{"applied": ["Kind/name", ...], "ready": ["Deployment/name", ...], "seconds": s}``.
        A Deployment is ready when ``status.observedGeneration >= metadata.generation`` and
        all ``spec.replicas`` are updated and ready; a DaemonSet when every one of
        ``status.desiredNumberScheduled`` Pods is updated and ready.

    Raises:
        UserError: an unreadable manifest, no kube config or an unknown context, an API server
            that does not answer, an object the server rejects, a workload not ready in time.
    """
    say = notify or (lambda line: log.info("%s", line))
    steps = applied if applied is not None else Applied()
    start = time.monotonic()
    docs = _load(manifests)
    api_client, default_namespace, server = _client(kubeconfig, context)
    from kubernetes import dynamic

    labels: list[str] = []
    workloads: list[tuple[Any, str, str, str]] = []
    with api_client, tempfile.TemporaryDirectory(prefix="panorama-kube-") as cache:
        _ping(api_client, server)
        try:
            cache_file = os.path.join(cache, "api.json")
            client = dynamic.DynamicClient(api_client, cache_file=cache_file)  # type: ignore[no-untyped-call]
        except Exception as error:  # discovery: connection errors and API errors
            raise _request_error(error, server, "discovering its API") from error
        for doc in docs:
            kind, name = str(doc.get("kind")), str(doc.get("metadata", {}).get("name"))
            label = f"{kind}/{name}"
            resource = _resource(client, doc, label, server)
            ns = None
            if resource.namespaced:
                ns = namespace or doc["metadata"].get("namespace") or default_namespace
                doc["metadata"]["namespace"] = ns
            steps.begin(f"applying {label}")
            if not steps.undo:
                steps.undo = _delete_command(manifests, context, namespace)
            try:
                resource.server_side_apply(body=doc, name=name, namespace=ns,
                                           field_manager=FIELD_MANAGER, force_conflicts=True,
                                           _request_timeout=REQUEST_TIMEOUT_S)  # fmt: skip
            except Exception as error:
                raise _request_error(error, server, f"applying {label}") from error
            labels.append(label)
            steps.finish(label)
            steps.goes_on = "the cluster goes on rolling them out"
            say(f"applied {label}")
            if kind in WORKLOADS:
                workloads.append((resource, kind, name, ns or ""))
        watch = (client, api_client)
        ready = _wait(workloads, timeout_s, poll_s, say, server, watch) if wait else []
    seconds = round(time.monotonic() - start, 3)
    return {"applied": labels, "ready": ready, "seconds": seconds}


def _delete_command(manifests: Sequence[Path], context: str | None, namespace: str | None) -> str:
    """``kubectl delete -f ...`` of the manifests (for the line a Ctrl-C prints)."""
    words = ["kubectl"]
    if context:
        words += ["--context", context]
    if namespace:
        words += ["-n", namespace]
    words += ["delete"] + [f"-f {path}" for path in manifests]
    return " ".join(words) + " (PersistentVolumeClaims too: their storage goes with them)"


def _load(manifests: Sequence[Path]) -> list[dict[str, Any]]:
    import yaml  # type: ignore[import-untyped]

    docs: list[dict[str, Any]] = []
    for path in manifests:
        try:
            found = [d for d in yaml.safe_load_all(Path(path).read_text()) if d is not None]
        except OSError as error:
            raise UserError(f"cannot read {path}: {error.strerror}") from error
        except yaml.YAMLError as error:
            where = getattr(error, "problem_mark", None)
            line = f" line {where.line + 1}" if where is not None else ""
            raise UserError(f"{path}{line}: not valid YAML", hint="export it again") from error
        for doc in found:
            if not isinstance(doc, dict) or not doc.get("kind") or not doc.get("apiVersion"):
                raise UserError(f"{path}: a document is not a Kubernetes object (kind, apiVersion)")
            if not isinstance(doc.get("metadata"), dict) or not doc["metadata"].get("name"):
                raise UserError(f"{path}: {doc['kind']} without metadata.name")
        docs += found
    return docs


def _client(kubeconfig: str | Path | None, context: str | None) -> tuple[Any, str, str]:
    """(ApiClient, the context's namespace, the server URL) from the kube config."""
    from kubernetes import client, config

    files = str(kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config")
    configuration = client.Configuration()
    try:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=files,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
        contexts, active = config.list_kube_config_contexts(files)  # type: ignore[no-untyped-call]
    except config.ConfigException as error:
        if context and f"name {context} " in str(error):
            raise UserError(
                f"no context {context!r} in the kube config {files}",
                hint="list them with: kubectl config get-contexts",
            ) from error
        message = " ".join(str(error).split())
        raise UserError(
            f"kube config {files}: {message}",
            hint="set KUBECONFIG or write ~/.kube/config (kubectl config view)",
        ) from error
    chosen = next((c for c in contexts if c.get("name") == context), active) if context else active
    default_namespace = (chosen or {}).get("context", {}).get("namespace") or "default"
    return client.ApiClient(configuration), default_namespace, str(configuration.host)


def _ping(api_client: Any, server: str) -> None:
    """GET /version with a timeout: one clear error for a server that does not answer."""
    from kubernetes import client

    try:
        client.VersionApi(api_client).get_code(_request_timeout=REQUEST_TIMEOUT_S)
    except Exception as error:
        raise _request_error(error, server, "asking its version") from error


def _resource(client: Any, doc: dict[str, Any], label: str, server: str) -> Any:
    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    try:
        return client.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
    except ResourceNotFoundError as error:
        raise UserError(
            f"{label}: the API server {server} serves no {doc['apiVersion']} {doc['kind']}",
            hint="check the cluster's Kubernetes version",
        ) from error
    except Exception as error:
        raise _request_error(error, server, f"finding {label}'s API") from error


def _request_error(error: Exception, server: str, doing: str) -> UserError:
    """One line for a failed request: the server's own message, or why it did not answer."""
    import urllib3
    from kubernetes.client.exceptions import ApiException

    if isinstance(error, ApiException):
        message = error.reason or ""
        try:
            body = json.loads(error.body or "{}")
            message = body.get("message") or message
        except (ValueError, AttributeError):
            pass
        hints = {401: "check the kube config's credentials", 403: "ask for the RBAC permission"}
        message = " ".join(message.split())
        return UserError(
            f"{doing}: the API server {server} answered {error.status}: {message}",
            hint=hints.get(error.status or 0, "fix the manifest or export again"),
        )
    if isinstance(error, urllib3.exceptions.HTTPError):
        reason = getattr(error, "reason", None) or error
        text = re.sub(r"^\w+\(host=[^)]*\):\s*", "", " ".join(str(reason).split()))
        return UserError(
            f"the Kubernetes API server {server} does not answer ({doing}): {text}",
            hint="check that the cluster runs and the kube config's server and context",
        )
    return UserError(f"{doing} at {server}: {' '.join(str(error).split())}")


def _wait(
    workloads: list[tuple[Any, str, str, str]],
    timeout_s: float,
    poll_s: float,
    say: Callable[[str], None],
    server: str,
    watch: tuple[Any, Any] | None = None,
) -> list[str]:
    """Poll the workloads until each is ready; the labels of the ready ones, in apply order.

    Args:
        watch: (dynamic client, ApiClient): each poll also reads a waiting workload's Pods
            and ends the wait at a container in trouble (:mod:`.kube_pods`).

    Raises:
        UserError: a workload not ready in time, a container that crash-loops or cannot
            start (its name, exit code and last log lines), an API error.
    """
    deadline = time.monotonic() + timeout_s
    ready: list[str] = []
    pending = list(workloads)
    while True:
        waiting = []
        for resource, kind, name, ns in pending:
            label = f"{kind}/{name}"
            try:
                obj = resource.get(name=name, namespace=ns or None,
                                   _request_timeout=REQUEST_TIMEOUT_S).to_dict()  # fmt: skip
            except Exception as error:
                raise _request_error(error, server, f"reading {label}") from error
            why = _not_ready(kind, obj)
            if why is not None and watch is not None:
                _raise_trouble(watch, obj, label, ns, server)
            if why is None:
                ready.append(label)
                say(f"ready {label}")
            else:
                waiting.append((resource, kind, name, ns, why))
        if not waiting:
            return ready
        if time.monotonic() >= deadline:
            _, kind, name, ns, why = waiting[0]
            others = f" (and {len(waiting) - 1} more)" if len(waiting) > 1 else ""
            raise UserError(
                f"{kind}/{name} not ready after {timeout_s:g} s{others}: {why}",
                hint=f"kubectl describe pods -n {ns} -l app.kubernetes.io/instance={name}",
            )
        pending = [w[:4] for w in waiting]
        time.sleep(max(0.0, min(poll_s, deadline - time.monotonic())))


def _raise_trouble(
    watch: tuple[Any, Any], obj: dict[str, Any], label: str, ns: str, server: str
) -> None:
    """Raise :class:`UserError` when a container of the workload's Pods is in trouble."""
    from panorama_cli.fleet.kube_pods import workload_trouble

    try:
        trouble = workload_trouble(*watch, obj)
    except Exception as error:
        raise _request_error(error, server, f"reading the Pods of {label}") from error
    if trouble is not None:
        instance = obj.get("metadata", {}).get("name", "")
        raise UserError(
            f"{label} does not start: {trouble}",
            hint=f"kubectl describe pods -n {ns} -l app.kubernetes.io/instance={instance}; "
            "kubectl logs --previous POD -c CONTAINER",
        )


def _not_ready(kind: str, obj: dict[str, Any]) -> str | None:
    """None when ``obj`` (a Deployment or DaemonSet) is ready, else why not (one line)."""
    status = obj.get("status") or {}
    generation = obj.get("metadata", {}).get("generation") or 0
    if (status.get("observedGeneration") or 0) < generation:
        return "the controller has not seen the new version yet"
    if kind == "Deployment":
        want = obj.get("spec", {}).get("replicas", 1)
        counts = [status.get(k) or 0 for k in ("updatedReplicas", "readyReplicas", "replicas")]
        done = counts[0] >= want and counts[1] >= want and counts[2] <= counts[0]
    else:
        want = status.get("desiredNumberScheduled") or 0
        counts = [status.get(k) or 0 for k in ("updatedNumberScheduled", "numberReady")]
        done = counts[0] >= want and counts[1] >= want
    if done:
        return None
    conditions = ", ".join(
        f"{c.get('type')} {c.get('reason') or c.get('status')}"
        + (f" ({' '.join(str(c['message']).split())})" if c.get("message") else "")
        for c in status.get("conditions") or []
    )
    line = f"{counts[1]}/{want} ready, {counts[0]}/{want} updated"
    return f"{line}; {conditions}" if conditions else line
