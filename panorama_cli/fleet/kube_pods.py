"""What the cluster says about a workload's Pods while ``deploy --target kubernetes --wait``
waits: a container that crash-loops or whose image cannot be pulled or started.

Read through the Kubernetes API (the dynamic client's core/v1 Pods, listed with the workload's
``spec.selector.matchLabels``; the container's previous log through ``CoreV1Api``): each
container's ``containerStatuses`` entry (``restartCount``, ``state.waiting.reason`` and
``message``, ``lastState.terminated`` ``exitCode`` and ``reason``).

A container is in trouble when it

* waits with a reason the kubelet does not get out of by itself (:data:`STUCK`: the image
  cannot be pulled, the container cannot be created or started), or
* crash-loops: waiting in ``CrashLoopBackOff`` after :data:`RESTARTS` restarts (a node
  container may exit a few times while serve, in the same Pod, makes its control socket).

Log lines are the app's output (hostile text): cleaned and cut as :mod:`.compose_watch` does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from panorama_cli.fleet.compose_watch import LOG_LINES, clean_line

log = logging.getLogger(__name__)

#: A container restarted this many times and waiting in CrashLoopBackOff crash-loops.
RESTARTS = 3
#: Waiting reasons that end the wait at once (the kubelet retries them, to no avail).
STUCK = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
#: Seconds one API request may take.
REQUEST_TIMEOUT_S = 30.0


def selector(workload: Mapping[str, Any]) -> str:
    """The label selector of a Deployment's or DaemonSet's Pods (``k=v,k2=v2``; "" when it
    has no ``matchLabels``)."""
    labels = (workload.get("spec") or {}).get("selector", {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def container_trouble(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(container name, one line)`` for the Pod's first container in trouble, else None.

    The line: ``container code-node of Pod P crash-loops (4 restarts, last exit code 1
    (Error))`` or ``container serve of Pod P cannot start: ImagePullBackOff (Back-off pulling
    image "x")``.
    """
    name = str((pod.get("metadata") or {}).get("name", "?"))
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for status in statuses:
        waiting = (status.get("state") or {}).get("waiting") or {}
        reason = str(waiting.get("reason") or "")
        message = clean_line(" ".join(str(waiting.get("message") or "").split()))
        container = str(status.get("name", "?"))
        restarts = int(status.get("restartCount") or 0)
        if reason in STUCK:
            why = f"{reason} ({message})" if message else reason
            return container, f"container {container} of Pod {name} cannot start: {why}"
        if reason == "CrashLoopBackOff" and restarts >= RESTARTS:
            last = (status.get("lastState") or {}).get("terminated") or {}
            code = last.get("exitCode")
            ended = f", last exit code {code}" if code is not None else ""
            if last.get("reason"):
                ended += f" ({clean_line(str(last['reason']))})"
            return container, (
                f"container {container} of Pod {name} crash-loops ({restarts} restarts{ended})"
            )
    return None


def previous_log(api_client: Any, namespace: str, pod: str, container: str) -> tuple[str, ...]:
    """The last :data:`LOG_LINES` lines the container's previous run wrote (cleaned); () when
    the API has none."""
    from kubernetes import client

    try:
        text = client.CoreV1Api(api_client).read_namespaced_pod_log(
            pod, namespace, container=container, previous=True, tail_lines=50,
            _request_timeout=REQUEST_TIMEOUT_S,
        )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - no previous run, no permission: no lines
        log.debug("log of %s/%s: %s", pod, container, exc)
        return ()
    lines = [clean_line(x) for x in str(text or "").splitlines()]
    return tuple(x for x in lines if x.strip())[-LOG_LINES:]


def workload_trouble(dynamic: Any, api_client: Any, workload: Mapping[str, Any]) -> str | None:
    """The first container in trouble among ``workload``'s Pods as a paragraph (the line of
    :func:`container_trouble` and its previous run's last log lines), else None.

    Raises:
        Exception: the API's errors (the caller turns them into one line).
    """
    found = selector(workload)
    if not found:
        return None
    namespace = str((workload.get("metadata") or {}).get("namespace") or "default")
    pods = dynamic.resources.get(api_version="v1", kind="Pod")
    listed = pods.get(namespace=namespace, label_selector=found,
                      _request_timeout=REQUEST_TIMEOUT_S).to_dict()  # fmt: skip
    for pod in listed.get("items") or []:
        trouble = container_trouble(pod)
        if trouble is None:
            continue
        container, line = trouble
        lines = previous_log(api_client, namespace, str(pod["metadata"]["name"]), container)
        if not lines:
            return line
        return line + "; its last log lines:\n" + "\n".join(f"  {x}" for x in lines)
    return None
