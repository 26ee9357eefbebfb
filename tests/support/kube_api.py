"""A Kubernetes API server double on 127.0.0.1 for the deploy tests (no cluster runs here).

No API server (k3s, kind, kube-apiserver) can run on these machines, so the tests of
:mod:`panorama_cli.fleet.kube_deploy` talk to this one: a real HTTP server (starlette app served
by uvicorn in a daemon thread, a free port) speaking the parts of the Kubernetes REST API the
kubernetes Python client uses for server-side apply and a readiness wait:

* discovery: ``/version``, ``/api``, ``/apis``, ``/api/v1``, ``/apis/apps/v1`` (APIVersions,
  APIGroupList, APIResourceList for ConfigMap, Secret, PersistentVolumeClaim, Service, Deployment,
  DaemonSet), as a 1.30 server answers;
* ``PATCH`` of a namespaced object with ``Content-Type: application/apply-patch+yaml``: the
  ``fieldManager`` query parameter is required (422, as the real server), the body's kind,
  apiVersion, name and namespace must match the path (400), and the object must be valid
  against the official Kubernetes 1.30 schemas, strict (kubernetes-validate; 422 Invalid with a
  Status body otherwise). Stored with uid, resourceVersion, generation (bumped when the spec
  changes) and managedFields; a Secret's stringData becomes base64 data;
* ``GET`` of a stored object; a Deployment or DaemonSet gets a status that turns ready after
  :attr:`KubeApi.ready_after` GETs (0: at once, None: never; per object name in
  :attr:`KubeApi.ready_after_for`);
* Pods the test puts in :attr:`KubeApi.pods` (as a kubelet would report them: a crash loop
  with :meth:`KubeApi.crash_loop`): ``GET`` of the namespace's PodList filtered by
  ``labelSelector`` (``k=v`` terms), and ``GET .../pods/NAME/log`` (``container``,
  ``previous``, ``tailLines``) from :attr:`KubeApi.pod_logs`;
* a bearer token (401 without it); any other path: 404 Status.

Not emulated: controllers (Pods appear only when a test adds them), watches, other lists,
deletes, field ownership conflicts.

Usage::

    with KubeApi(ready_after=2) as api:
        config = api.write_kubeconfig(tmp_path / "kubeconfig")
        ...
        api.objects[("Deployment", "default", "people-counter-edge-1")]
"""

from __future__ import annotations

import base64
import copy
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

K8S_VERSION = "1.30"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
#: group version -> plural -> (kind, singular, short names)
RESOURCES: dict[str, dict[str, tuple[str, str, list[str]]]] = {
    "v1": {
        "configmaps": ("ConfigMap", "configmap", ["cm"]),
        "secrets": ("Secret", "secret", []),
        "persistentvolumeclaims": ("PersistentVolumeClaim", "persistentvolumeclaim", ["pvc"]),
        "services": ("Service", "service", ["svc"]),
        "pods": ("Pod", "pod", ["po"]),
    },
    "apps/v1": {
        "daemonsets": ("DaemonSet", "daemonset", ["ds"]),
        "deployments": ("Deployment", "deployment", ["deploy"]),
    },
}


@dataclass
class Call:
    """One request the double answered."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str
    status: int


def status(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> JSONResponse:
    """A meta/v1 Status failure response, as the API server sends."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return JSONResponse(body, status_code=code)


class KubeApi:
    """The API server double; a context manager that starts and stops it.

    Args:
        ready_after: GETs of a workload before it reports ready (0: the first; None: never).
        nodes: how many nodes a DaemonSet's selector matches.
        token: the bearer token the kube config must carry.
    """

    def __init__(self, *, ready_after: int | None = 0, nodes: int = 2, token: str = "test-token"):
        self.ready_after = ready_after
        self.ready_after_for: dict[str, int | None] = {}
        self.nodes = nodes
        self.token = token
        #: (kind, namespace, name) -> the stored object (without status)
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.calls: list[Call] = []
        self.gets: dict[tuple[str, str, str], int] = {}
        #: (namespace, name) -> a Pod as the API returns it (metadata.labels, status)
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        #: (namespace, pod, container) -> the log of its previous run (``previous=true``)
        self.pod_logs: dict[tuple[str, str, str], str] = {}
        self._lock = threading.Lock()
        self._version = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> KubeApi:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(self._app(), log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the Kubernetes API double did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)

    def write_kubeconfig(
        self,
        path: Path,
        *,
        context: str = "double",
        namespace: str | None = None,
        server: str | None = None,
    ) -> Path:
        """A kube config file with one context ``context`` pointing at this server."""
        ctx: dict[str, Any] = {"cluster": "double", "user": "tester"}
        if namespace:
            ctx["namespace"] = namespace
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "double", "cluster": {"server": server or self.url}}],
            "users": [{"name": "tester", "user": {"token": self.token}}],
            "contexts": [{"name": context, "context": ctx}],
            "current-context": context,
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def crash_loop(
        self,
        workload: dict[str, Any],
        container: str,
        *,
        restarts: int = 4,
        exit_code: int = 1,
        log: str = "",
        waiting: str = "CrashLoopBackOff",
        message: str = "back-off 40s restarting failed container",
    ) -> str:
        """Add a Pod of ``workload`` (a stored Deployment or DaemonSet: its namespace, selector
        and containers) whose ``container`` waits in ``waiting`` after ``restarts`` restarts
        (last exit ``exit_code``, previous log ``log``), the others running; the Pod's name."""
        meta, spec = workload["metadata"], workload["spec"]
        name = f"{meta['name']}-5d9c7b-x2k4p"
        statuses = []
        for item in spec["template"]["spec"]["containers"]:
            status: dict[str, Any] = {"name": item["name"], "image": item["image"], "ready": False,
                                      "restartCount": 0, "started": True,
                                      "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}  # fmt: skip
            if item["name"] == container:
                status.update(restartCount=restarts, started=False, state={
                    "waiting": {"reason": waiting, "message": message}
                }, lastState={"terminated": {
                    "exitCode": exit_code, "reason": "Error",
                    "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:01Z",
                }})  # fmt: skip
            statuses.append(status)
        self.pods[(meta["namespace"], name)] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "uid": str(uuid.uuid4()),
                "labels": dict(spec["template"]["metadata"]["labels"]),
            },
            "spec": spec["template"]["spec"],
            "status": {"phase": "Running", "containerStatuses": statuses},
        }
        self.pod_logs[(meta["namespace"], name, container)] = log
        return name

    # --- the HTTP app ------------------------------------------------------------------------

    def _app(self) -> Starlette:
        routes = [
            Route("/version", self._version_info),
            Route("/api", self._api),
            Route("/apis", self._apis),
            Route("/api/{version}", self._resource_list),
            Route("/apis/{group}/{version}", self._resource_list),
            Route("/api/v1/namespaces/{namespace}/pods", self._pod_list),
            Route("/api/v1/namespaces/{namespace}/pods/{name}/log", self._pod_log),
            Route("/api/{version}/namespaces/{namespace}/{plural}/{name}", self._object, methods=["GET", "PATCH"]),
            Route("/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}", self._object, methods=["GET", "PATCH"]),
        ]  # fmt: skip

        async def record_and_authorize(request: Request, call_next: Any) -> Response:
            if request.headers.get("authorization") != f"Bearer {self.token}":
                response: Response = status(401, "Unauthorized", "Unauthorized")
            else:
                response = await call_next(request)
            self.calls.append(
                Call(
                    request.method,
                    request.url.path,
                    dict(request.query_params),
                    request.headers.get("content-type", ""),
                    response.status_code,
                )
            )
            return response

        async def not_found(request: Request, exc: Exception) -> Response:
            return status(404, "NotFound", "the server could not find the requested resource")

        return Starlette(
            routes=routes,
            middleware=[Middleware(BaseHTTPMiddleware, dispatch=record_and_authorize)],
            exception_handlers={404: not_found},
        )

    async def _version_info(self, request: Request) -> Response:
        major, minor = K8S_VERSION.split(".")
        return JSONResponse(
            {
                "major": major,
                "minor": minor,
                "gitVersion": f"v{K8S_VERSION}.0",
                "gitCommit": "0" * 40,
                "gitTreeState": "clean",
                "buildDate": "2024-04-17T00:00:00Z",
                "goVersion": "go1.22.2",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        )

    async def _api(self, request: Request) -> Response:
        return JSONResponse(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}
                ],
            }
        )

    async def _apis(self, request: Request) -> Response:
        version = {"groupVersion": "apps/v1", "version": "v1"}
        return JSONResponse(
            {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [{"name": "apps", "versions": [version], "preferredVersion": version}],
            }
        )

    async def _resource_list(self, request: Request) -> Response:
        group_version = _group_version(request)
        if group_version not in RESOURCES:
            return status(404, "NotFound", "the server could not find the requested resource")
        resources = []
        for plural, (kind, singular, short) in RESOURCES[group_version].items():
            entry: dict[str, Any] = {"name": plural, "singularName": singular, "namespaced": True,
                                     "kind": kind, "verbs": VERBS}  # fmt: skip
            if short:
                entry["shortNames"] = short
            resources.append(entry)
            if group_version == "apps/v1":
                resources.append({"name": f"{plural}/status", "singularName": "", "namespaced": True,
                                  "kind": kind, "verbs": ["get", "patch", "update"]})  # fmt: skip
        return JSONResponse(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": group_version,
                "resources": resources,
            }
        )

    async def _pod_list(self, request: Request) -> Response:
        namespace = request.path_params["namespace"]
        wanted = request.query_params.get("labelSelector", "")
        terms = [t.split("=", 1) for t in wanted.split(",") if t]
        with self._lock:
            items = [
                copy.deepcopy(pod) for (ns, _), pod in sorted(self.pods.items())
                if ns == namespace and all(pod["metadata"]["labels"].get(k) == v for k, v in terms)
            ]  # fmt: skip
        return JSONResponse({"kind": "PodList", "apiVersion": "v1",
                             "metadata": {"resourceVersion": str(self._version)}, "items": items})  # fmt: skip

    async def _pod_log(self, request: Request) -> Response:
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        container = request.query_params.get("container", "")
        if (namespace, name) not in self.pods:
            return status(404, "NotFound", f'pods "{name}" not found')
        if request.query_params.get("previous") != "true":
            return status(400, "BadRequest", "only previous=true logs are kept here")
        text = self.pod_logs.get((namespace, name, container))
        if text is None:
            return status(400, "BadRequest", f'previous terminated container "{container}" in pod "{name}" not found')  # fmt: skip
        tail = int(request.query_params.get("tailLines", "0") or 0)
        lines = text.splitlines(keepends=True)
        return Response("".join(lines[-tail:] if tail else lines), media_type="text/plain")

    async def _object(self, request: Request) -> Response:
        group_version = _group_version(request)
        plural = request.path_params["plural"]
        if plural not in RESOURCES.get(group_version, {}):
            return status(404, "NotFound", "the server could not find the requested resource")
        kind = RESOURCES[group_version][plural][0]
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        key = (kind, namespace, name)
        if request.method == "GET":
            with self._lock:
                stored = self.objects.get(key)
                if stored is None:
                    group = request.path_params.get("group")
                    what = f"{plural}.{group}" if group else plural
                    return status(
                        404,
                        "NotFound",
                        f'{what} "{name}" not found',
                        {"name": name, "kind": plural},
                    )
                self.gets[key] = self.gets.get(key, 0) + 1
                return JSONResponse(self._with_status(kind, stored, self.gets[key]))
        return await self._apply(request, group_version, kind, key)

    async def _apply(
        self, request: Request, group_version: str, kind: str, key: tuple[str, str, str]
    ) -> Response:
        _, namespace, name = key
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type != APPLY_CONTENT_TYPE:
            return status(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format: {content_type}",
            )
        if not request.query_params.get("fieldManager"):
            return status(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch')  # fmt: skip
        try:
            body = yaml.safe_load(await request.body())
        except yaml.YAMLError as error:
            return status(400, "BadRequest", f"error decoding YAML: {error}")
        if not isinstance(body, dict):
            return status(400, "BadRequest", "the body is not an object")
        meta = body.get("metadata") or {}
        if body.get("apiVersion") != group_version or body.get("kind") != kind:
            return status(400, "BadRequest", f"the API version/kind in the body ({body.get('apiVersion')} {body.get('kind')}) does not match the path ({group_version} {kind})")  # fmt: skip
        if meta.get("name") != name:
            return status(
                400, "BadRequest", "the name of the object does not match the name on the URL"
            )
        if meta.get("namespace", namespace) != namespace:
            return status(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request")  # fmt: skip
        try:
            kubernetes_validate.validate(body, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(p) for p in error.path) or "<root>"
            return status(422, "Invalid", f'{kind} "{name}" is invalid: {where}: {error.message}',
                          {"name": name, "kind": kind, "causes": [{"field": where, "message": error.message}]})  # fmt: skip
        with self._lock:
            old = self.objects.get(key)
            obj = self._store(kind, key, body, old, request.query_params["fieldManager"])
        return JSONResponse(obj, status_code=200 if old else 201)

    def _store(
        self,
        kind: str,
        key: tuple[str, str, str],
        body: dict[str, Any],
        old: dict[str, Any] | None,
        manager: str,
    ) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        obj.pop("status", None)
        if kind == "Secret" and "stringData" in obj:
            data = obj.setdefault("data", {})
            for item, value in obj.pop("stringData").items():
                data[item] = base64.b64encode(str(value).encode()).decode()
        meta = obj.setdefault("metadata", {})
        meta["namespace"] = key[1]
        self._version += 1
        old_meta = (old or {}).get("metadata", {})
        meta["uid"] = old_meta.get("uid") or str(uuid.uuid4())
        meta["resourceVersion"] = str(self._version)
        meta["creationTimestamp"] = old_meta.get("creationTimestamp") or "2026-01-01T00:00:00Z"
        if kind in ("Deployment", "DaemonSet"):
            generation = old_meta.get("generation", 0)
            if old is None or old.get("spec") != obj.get("spec"):
                generation += 1
            meta["generation"] = generation
        meta["managedFields"] = [{"manager": manager, "operation": "Apply", "apiVersion": obj["apiVersion"],
                                  "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {}}]  # fmt: skip
        self.objects[key] = obj
        return copy.deepcopy(obj)

    def _with_status(self, kind: str, stored: dict[str, Any], gets: int) -> dict[str, Any]:
        obj = copy.deepcopy(stored)
        if kind not in ("Deployment", "DaemonSet"):
            return obj
        name = obj["metadata"]["name"]
        after = self.ready_after_for.get(name, self.ready_after)
        ready = after is not None and gets > after
        generation = obj["metadata"].get("generation", 1)
        if kind == "Deployment":
            want = obj["spec"].get("replicas", 1)
            obj["status"] = {
                "observedGeneration": generation,
                "replicas": want,
                "updatedReplicas": want,
            }
            if ready:
                obj["status"].update(readyReplicas=want, availableReplicas=want, conditions=[
                    _condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."),
                    _condition("Progressing", "True", "NewReplicaSetAvailable", f'ReplicaSet "{name}-5d9c7b" has successfully progressed.'),
                ])  # fmt: skip
            else:
                obj["status"].update(unavailableReplicas=want, conditions=[
                    _condition("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability."),
                    _condition("Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{name}-5d9c7b" is progressing.'),
                ])  # fmt: skip
        else:
            count = self.nodes if ready else 0
            obj["status"] = {
                "observedGeneration": generation,
                "desiredNumberScheduled": self.nodes,
                "currentNumberScheduled": self.nodes,
                "updatedNumberScheduled": self.nodes,
                "numberMisscheduled": 0,
                "numberReady": count,
                "numberAvailable": count,
            }
            if not ready:
                obj["status"]["numberUnavailable"] = self.nodes
        return obj


def _group_version(request: Request) -> str:
    group = request.path_params.get("group")
    version = request.path_params["version"]
    return f"{group}/{version}" if group else version


def _condition(kind: str, state: str, reason: str, message: str) -> dict[str, str]:
    return {"type": kind, "status": state, "reason": reason, "message": message,
            "lastUpdateTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}  # fmt: skip
