"""A stateful AWS IoT Greengrass V2 test double: a real HTTP server on 127.0.0.1.

moto has no Greengrass V2, so the deploy tests talk to this one: a Starlette app served by
uvicorn in a daemon thread (a socket bound to 127.0.0.1:0), speaking REST-JSON exactly as
botocore's own ``greengrassv2`` model (2020-11-30) says. Routes are each operation's
``http.method`` + ``http.requestUri`` read from the model
(``botocore.session.get_session().get_service_model("greengrassv2")``); the request decoding,
validation and rendering helpers are :mod:`tests.support.panorama_protocol`'s, which work on
any REST-JSON model.

A request goes: SigV4 scope check (region and the ``greengrass`` signing name; 403 otherwise)
-> route -> params from the path, query string and JSON body -> recorded in :attr:`calls` ->
checks against the input shape (botocore's ParamValidator: required members, unknown
members, types recursively; plus ``max``/``pattern``/``enum``), blobs strictly base64-decoded,
the inline recipe a JSON object with ``RecipeFormatVersion``, ``ComponentName`` and
``ComponentVersion`` -> 400 ValidationException in the service's error shape (the
``x-amzn-ErrorType`` header, ``{"message": ...}``) when any fails -> the operation ->
the answer rendered from the output shape (unknown members there are a double bug: 500).

Emulated: CreateComponentVersion (ConflictException for an existing version; with
``s3_endpoint`` given, each ``s3://`` artifact must exist there and match its ``Digest``, or the
version is FAILED as the service marks it), DescribeComponent, ListComponentVersions (of a
component of the account, or of a public one: ARN account ``aws``, versions from
:attr:`GreengrassApi.public_components`, paged by :attr:`GreengrassApi.page_size`),
CreateDeployment (the components must exist and be DEPLOYABLE, or be a public component at one
of its versions; ``configurationUpdate.merge`` must be JSON), GetDeployment,
ListEffectiveDeployments and ListCoreDevices. Core devices are declared by the test
(:meth:`GreengrassApi.add_core_device`); how a deployment ends on each is scripted
(:meth:`GreengrassApi.script`): IN_PROGRESS for the first ``polls`` observations, then the
outcome (SUCCEEDED, or FAILED with a ``reason``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from botocore.model import OperationModel, ServiceModel

from tests.support.panorama_protocol import (
    Route,
    ServiceError,
    decode_blobs,
    decode_request,
    error_response,
    find_route,
    render,
    validate_params,
)

SIGNING_NAME = "greengrass"


@lru_cache(maxsize=1)
def service_model() -> ServiceModel:
    """botocore's greengrassv2 model (the one the client under test uses)."""
    import botocore.session

    return botocore.session.get_session().get_service_model("greengrassv2")


@dataclass
class Outcome:
    """How a deployment ends on a core device: ``polls`` IN_PROGRESS answers, then ``status``."""

    polls: int = 1
    status: str = "SUCCEEDED"
    reason: str = ""
    error_types: tuple[str, ...] = ()


@dataclass
class Deployment:
    deployment_id: str
    target_arn: str
    name: str
    components: dict[str, Any]
    created: datetime
    observed: dict[str, int] = field(default_factory=dict)  # device -> polls so far


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _invalid(message: str) -> ServiceError:
    return ServiceError("ValidationException", message, reason="FIELD_VALIDATION_FAILED")


class GreengrassApi:
    """The double; see the module docstring. ``with GreengrassApi() as api: api.endpoint_url``.

    Args:
        region: the region requests must be signed for; also in ARNs.
        account_id: the account in component ARNs.
        s3_endpoint: a moto server URL: artifacts of new component versions are checked there.
    """

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        s3_endpoint: str | None = None,
    ) -> None:
        self.model = service_model()
        self.routes = [Route.of(self.model.operation_model(n)) for n in self.model.operation_names]
        self.region, self.account_id, self.s3_endpoint = region, account_id, s3_endpoint
        self._lock = threading.RLock()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self.reset()

    # -- test controls ----------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self.components: dict[tuple[str, str], dict[str, Any]] = {}
            self.deployments: dict[str, Deployment] = {}
            self.core_devices: dict[str, set[str]] = {}  # thing name -> thing group ARNs
            self.outcomes: dict[str, Outcome] = {}
            self.default_outcome = Outcome()
            self._calls: list[tuple[str, dict[str, Any]]] = []
            self.rejections: list[tuple[str, str]] = []  # (operation, message) answered 400
            self.internal_errors: list[str] = []
            #: public components (ARN account ``aws``) -> their versions
            self.public_components: dict[str, list[str]] = {
                "aws.greengrass.SecretManager": ["2.1.8", "2.1.10", "2.0.9", "2.2.6"],
                "aws.greengrass.DockerApplicationManager": ["2.0.11", "2.0.14"],
            }
            self.page_size = 100

    def add_core_device(self, thing_name: str, *groups: str) -> None:
        """A core device (``thing_name``), member of the thing group ARNs ``groups``."""
        with self._lock:
            self.core_devices.setdefault(thing_name, set()).update(groups)

    def script(self, thing_name: str, outcome: Outcome) -> None:
        """How deployments end on ``thing_name`` (others: :attr:`default_outcome`)."""
        with self._lock:
            self.outcomes[thing_name] = outcome

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]

    def component_arn(self, name: str, version: str) -> str:
        return (
            f"arn:aws:greengrass:{self.region}:{self.account_id}:components:"
            f"{name}:versions:{version}"
        )

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> GreengrassApi:
        import uvicorn
        from starlette.applications import Starlette
        from starlette.routing import Route as HttpRoute

        app = Starlette(
            routes=[
                HttpRoute(
                    "/{path:path}",
                    self._endpoint,
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                )
            ]
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve(sockets=[sock])),
            name="greengrass-api",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the Greengrass double did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> GreengrassApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    # -- HTTP -------------------------------------------------------------------------------

    async def _endpoint(self, request: Any) -> Any:
        from starlette.responses import Response

        body = await request.body()
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        status, headers, payload = self.handle(
            request.method,
            raw_path.decode("latin-1").split("?", 1)[0],
            request.url.query,
            request.headers,
            body,
        )
        return Response(payload, status_code=status, headers=headers, media_type="application/json")

    def handle(
        self, method: str, path: str, query: str, headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """One request -> (status, headers, body)."""
        operation: OperationModel | None = None
        try:
            self._authenticate(headers.get("authorization"))
            route, labels = find_route(self.routes, method, path)
            operation = route.operation
            params = decode_request(operation, labels, query, headers, body)
            with self._lock:
                self._calls.append((operation.name, params))
            params = self._validate(operation, params)
            with self._lock:
                handler = getattr(self, f"_op_{operation.name}", None)
                if handler is None:
                    raise _invalid(f"{operation.name} is not emulated")
                data = handler(params)
            out_headers, out_body = render(operation.output_shape, data)
        except ServiceError as exc:
            if exc.code == "ValidationException":
                with self._lock:
                    self.rejections.append((operation.name if operation else "?", exc.message))
            return error_response(self.model, operation, exc)
        except Exception as exc:  # a double bug: say so loudly
            with self._lock:
                self.internal_errors.append(f"{type(exc).__name__}: {exc}")
            return 500, {"x-amzn-ErrorType": "InternalServerException"}, b'{"message": "bug"}'
        status = int(operation.http.get("responseCode", 200))
        return status, out_headers, json.dumps(out_body).encode()

    def _authenticate(self, authorization: str | None) -> None:
        if not authorization or not authorization.startswith("AWS4-HMAC-SHA256 Credential="):
            raise ServiceError(
                "MissingAuthenticationTokenException", "Missing Authentication Token", status=403
            )
        scope = authorization.split("Credential=", 1)[1].split(",", 1)[0].split("/")
        if len(scope) != 5 or scope[2] != self.region or scope[3] != SIGNING_NAME:
            raise ServiceError(
                "InvalidSignatureException", f"bad credential scope {'/'.join(scope[1:])}"
            )

    def _validate(self, operation: OperationModel, params: dict[str, Any]) -> dict[str, Any]:
        shape = operation.input_shape
        params = decode_blobs(params, shape, "input")
        report = validate_params(params, shape)
        if report:
            raise _invalid(" ".join(report.split()))
        if operation.name == "CreateComponentVersion":
            if "inlineRecipe" not in params:
                raise _invalid("Either inlineRecipe or lambdaFunction is required")
            try:
                recipe = json.loads(params["inlineRecipe"])
            except ValueError as exc:
                raise _invalid(f"inlineRecipe is not valid JSON: {exc}") from None
            if not isinstance(recipe, dict):
                raise _invalid("inlineRecipe must be a JSON object")
            for key in ("RecipeFormatVersion", "ComponentName", "ComponentVersion"):
                if not isinstance(recipe.get(key), str) or not recipe[key]:
                    raise _invalid(f"The recipe is missing required field {key}")
            if recipe["RecipeFormatVersion"] != "2020-01-25":
                raise _invalid(f"Unsupported RecipeFormatVersion {recipe['RecipeFormatVersion']}")
            if ":" in recipe["ComponentName"]:
                raise _invalid("ComponentName must not contain ':'")
            params["inlineRecipe"] = recipe
        if operation.name == "CreateDeployment":
            for name, spec in (params.get("components") or {}).items():
                merge = (spec.get("configurationUpdate") or {}).get("merge")
                if merge is not None:
                    try:
                        json.loads(merge)
                    except ValueError:
                        raise _invalid(
                            f"components.{name}.configurationUpdate.merge is not JSON"
                        ) from None
        return params

    # -- operations (under the lock) --------------------------------------------------------

    def _op_CreateComponentVersion(self, params: dict[str, Any]) -> dict[str, Any]:
        recipe = params["inlineRecipe"]
        name, version = recipe["ComponentName"], recipe["ComponentVersion"]
        if (name, version) in self.components:
            raise ServiceError(
                "ConflictException",
                f"Component {name} version {version} already exists",
                resourceId=self.component_arn(name, version),
                resourceType="COMPONENT_VERSION",
            )
        errors = self._artifact_errors(recipe)
        status = (
            {"componentState": "FAILED", "message": "Failed to access artifacts", "errors": errors}
            if errors
            else {"componentState": "DEPLOYABLE", "message": "NONE", "errors": {}}
        )
        entry = {
            "arn": self.component_arn(name, version),
            "componentName": name,
            "componentVersion": version,
            "creationTimestamp": _now(),
            "status": status,
            "recipe": recipe,
        }
        self.components[(name, version)] = entry
        return {k: v for k, v in entry.items() if k != "recipe"}

    def _artifact_errors(self, recipe: dict[str, Any]) -> dict[str, str]:
        if not self.s3_endpoint:
            return {}
        import hashlib

        import boto3
        import botocore.exceptions

        s3 = boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        errors = {}
        for manifest in recipe.get("Manifests") or []:
            for artifact in manifest.get("Artifacts") or []:
                uri = str(artifact.get("Uri", ""))
                if not uri.startswith("s3://"):
                    continue
                bucket, _, key = uri[5:].partition("/")
                try:
                    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                except botocore.exceptions.ClientError as exc:
                    errors[uri] = f"cannot access the artifact: {exc}"
                    continue
                digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
                if artifact.get("Digest") and artifact["Digest"] != digest:
                    errors[uri] = "the artifact does not match its Digest"
        return errors

    def _component_for_arn(self, arn: str) -> dict[str, Any]:
        for entry in self.components.values():
            if entry["arn"] == arn:
                return entry
        raise ServiceError("ResourceNotFoundException", f"Component {arn} not found",
                           resourceId=arn, resourceType="COMPONENT_VERSION")  # fmt: skip

    def _op_DescribeComponent(self, params: dict[str, Any]) -> dict[str, Any]:
        entry = self._component_for_arn(params["arn"])
        platforms = [
            {"attributes": dict(m.get("Platform") or {})} for m in entry["recipe"]["Manifests"]
        ]
        return {
            "arn": entry["arn"],
            "componentName": entry["componentName"],
            "componentVersion": entry["componentVersion"],
            "creationTimestamp": entry["creationTimestamp"],
            "publisher": entry["recipe"].get("ComponentPublisher", ""),
            "description": entry["recipe"].get("ComponentDescription", ""),
            "status": entry["status"],
            "platforms": platforms,
            "tags": {},
        }

    def _op_ListComponentVersions(self, params: dict[str, Any]) -> dict[str, Any]:
        arn = params["arn"]
        parts = arn.split(":")
        if len(parts) != 7 or parts[3] != self.region:
            raise _invalid(f"arn {arn}: not a component ARN of {self.region}")
        owner, name = parts[4], parts[6]
        if owner == "aws":
            versions = list(self.public_components.get(name, []))
        else:
            versions = [v for (n, v) in self.components if n == name]
        if not versions:
            raise ServiceError("ResourceNotFoundException", f"Component {arn} not found",
                               resourceId=arn, resourceType="COMPONENT")  # fmt: skip
        start = int(params.get("nextToken") or 0)
        size = min(int(params.get("maxResults") or self.page_size), self.page_size)
        page = versions[start : start + size]
        out: dict[str, Any] = {
            "componentVersions": [
                {"componentName": name, "componentVersion": v, "arn": f"{arn}:versions:{v}"}
                for v in page
            ]
        }
        if start + size < len(versions):
            out["nextToken"] = str(start + size)
        return out

    def _op_CreateDeployment(self, params: dict[str, Any]) -> dict[str, Any]:
        for name, spec in (params.get("components") or {}).items():
            if spec["componentVersion"] in self.public_components.get(name, []):
                continue
            entry = self.components.get((name, spec["componentVersion"]))
            if entry is None:
                raise ServiceError(
                    "ResourceNotFoundException",
                    f"Component {name} version {spec['componentVersion']} not found",
                    resourceId=name,
                    resourceType="COMPONENT_VERSION",
                )
            if entry["status"]["componentState"] != "DEPLOYABLE":
                raise _invalid(f"Component {name} is not DEPLOYABLE")
        deployment_id = str(uuid.uuid4())
        self.deployments[deployment_id] = Deployment(
            deployment_id,
            params["targetArn"],
            params.get("deploymentName") or deployment_id,
            params.get("components") or {},
            _now(),
        )
        return {"deploymentId": deployment_id, "iotJobId": deployment_id}

    def _deployment(self, deployment_id: str) -> Deployment:
        if deployment_id not in self.deployments:
            raise ServiceError(
                "ResourceNotFoundException",
                f"Deployment {deployment_id} not found",
                resourceId=deployment_id,
                resourceType="DEPLOYMENT",
            )
        return self.deployments[deployment_id]

    def _devices_of(self, target_arn: str) -> list[str]:
        kind, _, name = target_arn.rsplit(":", 1)[-1].partition("/")
        if kind == "thing":
            return [name] if name in self.core_devices else []
        return sorted(d for d, groups in self.core_devices.items() if target_arn in groups)

    def _op_GetDeployment(self, params: dict[str, Any]) -> dict[str, Any]:
        deployment = self._deployment(params["deploymentId"])
        statuses = [self._device_status(deployment, d, advance=False)[0]
                    for d in self._devices_of(deployment.target_arn)]  # fmt: skip
        failed = any(s == "FAILED" for s in statuses)
        return {
            "targetArn": deployment.target_arn,
            "revisionId": "1",
            "deploymentId": deployment.deployment_id,
            "deploymentName": deployment.name,
            "deploymentStatus": "FAILED" if failed else "ACTIVE",
            "iotJobId": deployment.deployment_id,
            "components": deployment.components,
            "creationTimestamp": deployment.created,
            "isLatestForTarget": True,
            "tags": {},
        }

    def _device_status(
        self, deployment: Deployment, device: str, *, advance: bool
    ) -> tuple[str, Outcome]:
        outcome = self.outcomes.get(device, self.default_outcome)
        seen = deployment.observed.get(device, 0)
        if advance:
            deployment.observed[device] = seen + 1
        return ("IN_PROGRESS" if seen < outcome.polls else outcome.status), outcome

    def _op_ListEffectiveDeployments(self, params: dict[str, Any]) -> dict[str, Any]:
        device = params["coreDeviceThingName"]
        if device not in self.core_devices:
            raise ServiceError(
                "ResourceNotFoundException",
                f"Core device {device} not found",
                resourceId=device,
                resourceType="CORE_DEVICE",
            )
        entries = []
        for deployment in self.deployments.values():
            if device not in self._devices_of(deployment.target_arn):
                continue
            status, outcome = self._device_status(deployment, device, advance=True)
            entry: dict[str, Any] = {
                "deploymentId": deployment.deployment_id,
                "deploymentName": deployment.name,
                "targetArn": deployment.target_arn,
                "coreDeviceExecutionStatus": status,
                "creationTimestamp": deployment.created,
                "modifiedTimestamp": _now(),
            }
            if status != "IN_PROGRESS" and outcome.reason:
                entry["reason"] = outcome.reason
            if status != "IN_PROGRESS" and outcome.error_types:
                entry["statusDetails"] = {
                    "errorStack": ["DEPLOYMENT_FAILURE", *outcome.error_types],
                    "errorTypes": list(outcome.error_types),
                }
            entries.append(entry)
        return {"effectiveDeployments": entries}

    def _op_ListCoreDevices(self, params: dict[str, Any]) -> dict[str, Any]:
        group = params.get("thingGroupArn")
        names = sorted(
            d for d, groups in self.core_devices.items() if group is None or group in groups
        )
        return {
            "coreDevices": [
                {"coreDeviceThingName": n, "status": "HEALTHY", "lastStatusUpdateTimestamp": _now()}
                for n in names
            ]
        }
