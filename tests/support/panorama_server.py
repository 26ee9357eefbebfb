"""A stateful AWS Panorama test server on 127.0.0.1, speaking REST-JSON from the shipped model.

No maintained emulator (moto, LocalStack) has Panorama's package operations and botocore no
longer ships the model, so the tests run this server: ``http.server.ThreadingHTTPServer`` on
127.0.0.1 and a free port, in a daemon thread, no dependency beyond botocore.

A request goes: SigV4 scope check (no ``Authorization`` header: 403
MissingAuthenticationTokenException) -> route from the model -> params from path, query,
headers and JSON body -> recorded in :attr:`PanoramaServer.calls` -> optional delay ->
injected error, if any -> validation against the model (400 ValidationException with the
report) -> :class:`~tests.support.panorama_state.PanoramaState` -> response validated against
the output shape (a mismatch is an emulator bug: 500, kept in ``internal_errors``).
Protocol details: :mod:`tests.support.panorama_protocol`; state and status rules:
:mod:`tests.support.panorama_state`.

Emulated: the 11 operations of the shipped model (packages, package versions, devices,
application instances), with statuses that advance as a client polls. Not emulated: signature
verification (any key works), IAM policies (use :meth:`PanoramaServer.inject`), nodes and
other operations the model does not ship.

Usage (the pytest fixtures in ``panorama_fixtures`` do this for you)::

    with PanoramaServer(bucket="b") as server:
        os.environ["AWS_ENDPOINT_URL_PANORAMA"] = server.endpoint_url
        server.inject("DescribePackage", "AccessDeniedException")
"""

from __future__ import annotations

import copy
import json
import threading
import traceback
import uuid
from dataclasses import dataclass
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from botocore.model import OperationModel

from tests.support.panorama_protocol import (
    Route,
    ServiceError,
    authenticate,
    decode_request,
    error_response,
    find_route,
    load_service_model,
    render,
    validate_params,
)
from tests.support.panorama_state import DEPLOY_OUTCOMES, REGISTER_OUTCOMES, PanoramaState

Answer = tuple[int, dict[str, str], bytes]  # HTTP status, headers, body


@dataclass
class Injection:
    """A pending injected error (``remaining=None``: forever)."""

    code: str
    status: int | None
    message: str | None
    remaining: int | None


class PanoramaServer:
    """The Panorama test server; see the module docstring. Start with ``start()`` or ``with``.

    Args:
        bucket: ``StorageLocation.Bucket`` of created packages.
        region: the region requests must be signed for (others: 403), also used in ARNs.
        account_id: the account in ARNs and storage prefixes (moto's account by default).
        pending_polls: DescribePackageVersion answers that say REGISTER_PENDING first (>= 0).
        deploy_polls: Describe/List observations before a deployment/removal ends (>= 0).

    ``state`` (a :class:`PanoramaState`) is public for inspection, e.g.
    ``server.state.instances[id].manifest`` is the ManifestPayload text a deploy sent; hold
    no references across :meth:`reset`. ``state.pending_polls``/``deploy_polls`` may be
    changed by a test; reset() restores the constructor values.
    """

    def __init__(
        self,
        *,
        bucket: str = "panorama-test-storage",
        region: str = "us-east-1",
        account_id: str = "123456789012",
        pending_polls: int = 1,
        deploy_polls: int = 2,
    ) -> None:
        self.model = load_service_model()
        self.routes = [Route.of(self.model.operation_model(n)) for n in self.model.operation_names]
        self.region, self.account_id, self.bucket = region, account_id, bucket
        self._settings = dict(
            region=region, account_id=account_id, bucket=bucket,
            pending_polls=pending_polls, deploy_polls=deploy_polls,
        )  # fmt: skip
        self._lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None
        self._wake = threading.Event()
        self.reset()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> PanoramaServer:
        """Listen on 127.0.0.1 (free port) in a daemon thread; returns self."""
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        httpd.daemon_threads = True
        httpd.app = self  # type: ignore[attr-defined]
        threading.Thread(target=httpd.serve_forever, name="panorama-server", daemon=True).start()
        self._httpd = httpd
        return self

    def stop(self) -> None:
        """Stop listening and release delayed requests."""
        self._wake.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> PanoramaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>`` (after :meth:`start`)."""
        if self._httpd is None:
            raise RuntimeError("PanoramaServer is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def reset(self) -> None:
        """Forget state, outcomes, upload checks, injections, delays, calls, internal errors.

        Requests being delayed are released at once.
        """
        with self._lock:
            self.state = PanoramaState(**self._settings)
            self._injections: dict[str, Injection] = {}
            self._delays: dict[str, float] = {}
            self._calls: list[tuple[str, dict[str, Any]]] = []
            self.internal_errors: list[str] = []
            self._wake.set()
            self._wake = threading.Event()

    # -- test controls --------------------------------------------------------------------

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        """(operation name, params) of every authenticated, routed request, in order; a copy.

        Includes requests answered with an injected error or a ValidationException, so a
        retried throttle shows up twice.
        """
        with self._lock:
            return list(self._calls)

    def calls_to(self, operation: str) -> list[dict[str, Any]]:
        """Params of the calls to ``operation`` (e.g. "RegisterPackageVersion"), in order."""
        return [params for name, params in self.calls if name == operation]

    def inject(
        self,
        operation: str,
        code: str = "AccessDeniedException",
        *,
        status: int | None = None,
        message: str | None = None,
        times: int | None = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``operation`` (None: all) with error ``code``.

        Status: ``status``, else the model's ``httpStatusCode`` for that error shape, else
        429 for ThrottlingException / 403 for the auth codes in
        ``panorama_protocol.EXTRA_ERROR_STATUS``, else 400. The default message looks like
        AWS's (an IAM "is not authorized to perform" line, "Rate exceeded"). Replaces an
        earlier injection for the same operation. botocore's standard retry mode retries
        ThrottlingException and 5xx (InternalServerException) up to 3 attempts in all.
        """
        self._check_operation(operation)
        with self._lock:
            self._injections[operation] = Injection(code, status, message, times)

    def delay(self, operation: str, seconds: float) -> None:
        """Hold each ``operation`` request ``seconds`` before answering (0: no delay)."""
        self._check_operation(operation)
        with self._lock:
            self._delays[operation] = seconds

    def set_register_outcome(
        self, package_name: str, outcome: str, description: str | None = None
    ) -> None:
        """How registrations of ``package_name`` end: "completed", "failed" (Status FAILED,
        StatusDescription ``description``) or "pending" (REGISTER_PENDING forever).
        Applies to patches still pending and to later registrations."""
        if outcome not in REGISTER_OUTCOMES:
            raise ValueError(f"outcome must be one of {REGISTER_OUTCOMES}, not {outcome!r}")
        with self._lock:
            self.state.register_outcomes[package_name] = (outcome, description)

    def set_deploy_outcome(self, name: str, outcome: str, description: str | None = None) -> None:
        """How deployments of instances named ``name`` end: "succeeded", "failed"
        (DEPLOYMENT_FAILED, StatusDescription ``description``) or "pending" (in progress
        forever). Applies to running deployments and to later ones."""
        if outcome not in DEPLOY_OUTCOMES:
            raise ValueError(f"outcome must be one of {DEPLOY_OUTCOMES}, not {outcome!r}")
        with self._lock:
            self.state.deploy_outcomes[name] = (outcome, description)

    def add_device(
        self, device_id: str | None = None, name: str = "my_panorama", **fields: Any
    ) -> str:
        """Add a provisioned, ONLINE device; returns its id (default ``device-`` + 26 chars).

        ``fields``: other DescribeDevice response members (Description, Tags, Type, ...).
        """
        self._check_fields(fields, "DescribeDeviceResponse")
        with self._lock:
            return self.state.add_device(device_id, name, fields)

    def add_application_instance(self, **fields: Any) -> str:
        """Seed an application instance whose status never changes; returns its id.

        ``fields``: DescribeApplicationInstance members (ApplicationInstanceId, Name,
        Description, Tags, DefaultRuntimeContextDevice, Status, HealthStatus, CreatedTime as
        a datetime, ...). Defaults: a new ``applicationInstance-`` id, DEPLOYMENT_SUCCEEDED,
        RUNNING, DefaultRuntimeContextDeviceName from the device if it was added.
        """
        self._check_fields(fields, "DescribeApplicationInstanceResponse")
        with self._lock:
            return self.state.add_application_instance(fields)

    def check_uploads(self, s3_endpoint_url: str | None) -> None:
        """From now on, a registration FAILS if its manifest or assets are missing from the
        bucket at ``s3_endpoint_url`` (None: no check, the default after reset()). See
        ``panorama_state.find_upload_problem``."""
        store = None if s3_endpoint_url is None else _s3_store(s3_endpoint_url, self.region)
        with self._lock:
            self.state.object_store = store

    def _check_operation(self, operation: str) -> None:
        if operation not in self.model.operation_names:
            raise ValueError(
                f"unknown operation {operation!r}; one of {self.model.operation_names}"
            )

    def _check_fields(self, fields: dict[str, Any], shape_name: str) -> None:
        unknown = set(fields) - set(self.model.shape_for(shape_name).members)
        if unknown:
            raise ValueError(f"not members of {shape_name}: {sorted(unknown)}")

    # -- request handling -----------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> Answer:
        """Answer one HTTP request (``headers``: case-insensitive mapping)."""
        operation = None
        try:
            authenticate(headers.get("Authorization"), self.region)
            url = urlsplit(raw_path)
            route, labels = find_route(self.routes, method, url.path)
            operation = route.operation
            params = decode_request(operation, labels, url.query, headers, body)
            with self._lock:
                self._calls.append((operation.name, copy.deepcopy(params)))
                seconds, wake = self._delays.get(operation.name, 0), self._wake
            if seconds:
                wake.wait(seconds)
            self._raise_injected(operation.name)
            problems = validate_params(params, operation.input_shape)
            if problems:
                raise ServiceError(
                    "ValidationException", problems, Reason="FIELD_VALIDATION_FAILED"
                )
            with self._lock:
                result = self.state.handlers()[operation.name](params)
            return self._response(operation, result)
        except ServiceError as exc:
            return error_response(self.model, operation, exc)
        except Exception:  # an emulator bug: answer 500, keep the traceback for the test
            with self._lock:
                self.internal_errors.append(traceback.format_exc())
            error = ServiceError("InternalServerException", "Panorama test server bug")
            return error_response(self.model, operation, error)

    def _raise_injected(self, operation: str) -> None:
        with self._lock:
            injection = self._injections.get(operation)
            if injection is None:
                return
            if injection.remaining is not None:
                injection.remaining -= 1
                if injection.remaining <= 0:
                    del self._injections[operation]
        default_messages = {
            "AccessDeniedException": f"User: arn:aws:iam::{self.account_id}:user/test is not "
            f"authorized to perform: panorama:{operation}",
            "ThrottlingException": "Rate exceeded",
        }
        message = injection.message or default_messages.get(injection.code, injection.code)
        raise ServiceError(injection.code, message, status=injection.status)

    def _response(self, operation: OperationModel, result: dict[str, Any]) -> Answer:
        shape = operation.output_shape
        if shape is not None:
            problems = validate_params(result, shape)
            if problems:
                raise ValueError(f"{operation.name} response does not match the model:\n{problems}")
        headers, body = render(shape, result)
        return operation.http.get("responseCode", 200), headers, json.dumps(body).encode()


class S3ObjectStore:
    """``panorama_state.ObjectStore`` over an S3 endpoint (moto), with fake credentials."""

    def __init__(self, endpoint_url: str, region: str) -> None:
        import boto3

        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
        )
        self._s3 = session.client("s3", endpoint_url=endpoint_url)

    def get(self, bucket: str, key: str) -> bytes | None:
        """The object's bytes, or None if there is no such key."""
        try:
            return self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except self._s3.exceptions.NoSuchKey:
            return None

    def exists(self, bucket: str, key: str) -> bool:
        """Whether the object exists (HeadObject)."""
        import botocore.exceptions

        try:
            self._s3.head_object(Bucket=bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise
        return True


@lru_cache(maxsize=4)
def _s3_store(endpoint_url: str, region: str) -> S3ObjectStore:
    return S3ObjectStore(endpoint_url, region)  # one client per endpoint: clients are slow to make


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 front end: read the body, ask :meth:`PanoramaServer.handle`, write the answer."""

    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        app: PanoramaServer = self.server.app  # type: ignore[attr-defined]
        status, headers, payload = app.handle(self.command, self.path, self.headers, body)
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (read timeout)
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the per-request log on stderr."""
