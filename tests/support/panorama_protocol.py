"""REST-JSON for the Panorama test server, driven by the shipped service model.

Everything protocol-level comes from ``backpack/data/panorama/2019-07-24/service-2.json`` through
botocore's own classes (``botocore.model.ServiceModel``, ``botocore.validate.ParamValidator``):

* :class:`Route`: an operation's ``http.method`` + ``http.requestUri``; ``{Label}`` matches one
  percent-decoded path segment (botocore sends ``packageName/x`` as ``packageName%2Fx``),
  ``{Label+}`` the rest of the path.
* :func:`decode_request`: members with ``location`` "uri", "querystring" (``locationName``),
  "header", and the JSON body for the others.
* :func:`validate_params`: ParamValidator (types, required, ``min``) plus what the service
  also enforces (``max``, ``pattern``, ``enum``).
* :func:`render`: a response per the output shape (JSON body, timestamps as epoch seconds,
  "header" members as headers). :func:`error_response`: the error shape's ``httpStatusCode``,
  ``x-amzn-ErrorType: <Code>`` and a ``{"Message", "message", ...}`` body, which botocore
  turns into ``ClientError`` with that Code.
* :func:`authenticate`: a SigV4 ``Authorization`` header scoped to the region and service.

Not handled: request/response ``payload`` members, event streams, XML (none in this model).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, unquote

from botocore.model import OperationModel, ServiceModel, Shape
from botocore.validate import ParamValidator

from backpack.service_model import API_VERSION, DATA_PATH, SERVICE_NAME


class ServiceError(Exception):
    """An error answer: ``code`` (e.g. "ConflictException"), message, optional HTTP status.

    ``fields`` are extra members of the error shape (ResourceId, ResourceType, Reason, ...).
    ``status=None`` means: the status the model gives the error shape (see
    :func:`error_response`).
    """

    def __init__(self, code: str, message: str, *, status: int | None = None, **fields: Any):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status, self.fields = code, message, status, fields


#: HTTP status of error codes that are not error shapes in the model; others default to 400.
EXTRA_ERROR_STATUS = {
    "ThrottlingException": 429, "TooManyRequestsException": 429, "ExpiredTokenException": 403,
    "UnrecognizedClientException": 403, "InvalidSignatureException": 403,
    "MissingAuthenticationTokenException": 403, "IncompleteSignatureException": 403,
    "ServiceUnavailableException": 503,
}  # fmt: skip
_CREDENTIAL = re.compile(r"^AWS4-HMAC-SHA256 Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")


@lru_cache(maxsize=1)
def load_service_model() -> ServiceModel:
    """The shipped panorama model as a ``botocore.model.ServiceModel``."""
    path = DATA_PATH / SERVICE_NAME / API_VERSION / "service-2.json"
    return ServiceModel(json.loads(path.read_text(encoding="utf-8")), service_name=SERVICE_NAME)


@dataclass(frozen=True)
class Route:
    """One operation's ``http.method`` and ``http.requestUri`` split into path segments."""

    operation: OperationModel
    method: str
    segments: tuple[str, ...]

    @classmethod
    def of(cls, operation: OperationModel) -> Route:
        path = operation.http["requestUri"].split("?", 1)[0]
        return cls(operation, operation.http["method"], tuple(path.removeprefix("/").split("/")))

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """URI label values (percent-decoded) if ``method`` and raw ``path`` match, else None."""
        parts = path.removeprefix("/").split("/")  # "/a/" -> ["a", ""]: an empty label
        if method != self.method:
            return None
        greedy = self.segments[-1].endswith("+}")
        if len(parts) != len(self.segments) and not (greedy and len(parts) >= len(self.segments)):
            return None
        labels = {}
        for i, template in enumerate(self.segments):
            if template.endswith("+}"):
                labels[template[1:-2]] = unquote("/".join(parts[i:]))
            elif template.startswith("{"):
                labels[template[1:-1]] = unquote(parts[i])
            elif template != parts[i]:
                return None
        return labels


def find_route(routes: list[Route], method: str, path: str) -> tuple[Route, dict[str, str]]:
    """The route for ``method`` and raw ``path`` and its URI label values.

    Raises:
        ServiceError: ValidationException (Reason UNKNOWN_OPERATION) when none matches.
    """
    for route in routes:
        labels = route.match(method, path)
        if labels is not None:
            return route, labels
    raise ServiceError(
        "ValidationException", f"No operation for {method} {path}", Reason="UNKNOWN_OPERATION"
    )


def _from_text(text: str, shape: Shape) -> Any:
    """A uri/querystring/header string as the shape's type (left as is if it does not parse,
    so that the validator reports it)."""
    try:
        if shape.type_name in ("integer", "long"):
            return int(text)
        if shape.type_name in ("float", "double"):
            return float(text)
    except ValueError:
        return text
    if shape.type_name == "boolean" and text in ("true", "false"):
        return text == "true"
    return text


def decode_request(
    operation: OperationModel, labels: dict[str, str], query: str, headers: Any, body: bytes
) -> dict[str, Any]:
    """Build the operation's params dict from the HTTP request (see module docstring).

    Raises:
        ServiceError: ValidationException (Reason CANNOT_PARSE) if the body is not a JSON object.
    """
    shape = operation.input_shape
    params: dict[str, Any] = {}
    if body.strip():
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise ServiceError(
                "ValidationException", f"Malformed JSON body: {exc}", Reason="CANNOT_PARSE"
            ) from None
        if not isinstance(document, dict):
            raise ServiceError(
                "ValidationException", "The JSON body must be an object", Reason="CANNOT_PARSE"
            )
        by_wire_name = {m.serialization.get("name", n): n for n, m in shape.members.items()}
        params = {by_wire_name.get(key, key): value for key, value in document.items()}
    query_values = parse_qs(query, keep_blank_values=True)
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if location == "uri" and wire in labels:
            params[name] = _from_text(labels[wire], member)
        elif location == "querystring" and wire in query_values:
            values = query_values[wire]
            if member.type_name == "list":
                params[name] = [_from_text(v, member.member) for v in values]
            else:
                params[name] = _from_text(values[0], member)
        elif location == "header" and headers.get(wire) is not None:
            params[name] = _from_text(headers[wire], member)
    return params


def constraint_problems(value: Any, shape: Shape, path: str) -> list[str]:
    """Constraints botocore does not check client-side (``max``, ``pattern``, ``enum``)."""
    meta, kind, problems = shape.metadata, shape.type_name, []
    too_big = "max" in meta and not isinstance(value, bool)
    if kind == "structure" and isinstance(value, dict):
        for key, item in value.items():
            if key in shape.members:
                problems += constraint_problems(item, shape.members[key], f"{path}.{key}")
    elif kind == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            problems += constraint_problems(item, shape.member, f"{path}[{i}]")
        too_big = too_big and len(value) > meta["max"]
    elif kind == "map" and isinstance(value, dict):
        for key, item in value.items():
            problems += constraint_problems(key, shape.key, f"{path} key")
            problems += constraint_problems(item, shape.value, f"{path}.{key}")
        too_big = too_big and len(value) > meta["max"]
    elif kind == "string" and isinstance(value, str):
        too_big = too_big and len(value) > meta["max"]
        if shape.enum and value not in shape.enum:
            problems.append(f"Value at '{path}' must be one of: {', '.join(shape.enum)}")
        if "pattern" in meta and not re.search(meta["pattern"], value):
            problems.append(
                f"Value at '{path}' failed to satisfy constraint: Member must satisfy "
                f"regular expression pattern: {meta['pattern']}"
            )
    elif kind in ("integer", "long") and isinstance(value, int):
        too_big = too_big and value > meta["max"]
    else:
        too_big = False
    if too_big:
        problems.append(
            f"Value at '{path}' failed to satisfy constraint: Member must have "
            f"{'a value' if kind in ('integer', 'long') else 'length'} less than or equal "
            f"to {meta['max']}"
        )
    return problems


def validate_params(params: dict[str, Any], shape: Shape) -> str | None:
    """botocore's ParamValidator report plus :func:`constraint_problems`, or None if valid."""
    report = ParamValidator().validate(params, shape)
    lines = report.generate_report().splitlines() if report.has_errors() else []
    lines += constraint_problems(params, shape, "input")
    return "\n".join(lines) or None


def serialize(value: Any, shape: Shape, path: str = "") -> Any:
    """``value`` as REST-JSON (timestamps -> epoch seconds); unknown members raise ValueError."""
    if shape.type_name == "structure":
        unknown = set(value) - set(shape.members)
        if unknown:
            raise ValueError(f"{path or shape.name}: not in the model: {sorted(unknown)}")
        return {
            shape.members[k].serialization.get("name", k): serialize(v, shape.members[k], k)
            for k, v in value.items()
            if v is not None
        }
    if shape.type_name == "list":
        return [serialize(v, shape.member, path) for v in value]
    if shape.type_name == "map":
        return {k: serialize(v, shape.value, path) for k, v in value.items()}
    if shape.type_name == "timestamp" and isinstance(value, datetime):
        return value.timestamp()
    return value


def render(shape: Shape | None, data: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """Split a response into (headers from "header" members, JSON body of the rest)."""
    if shape is None:
        return {}, {}
    headers, body = {}, {}
    for key, value in data.items():
        member = shape.members.get(key)
        if member is not None and member.serialization.get("location") == "header":
            headers[member.serialization.get("name", key)] = str(value)
        else:
            body[key] = value
    return headers, serialize(body, shape)


def error_response(
    model: ServiceModel, operation: OperationModel | None, exc: ServiceError
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) for an error.

    Status: ``exc.status``, else the error shape's ``error.httpStatusCode``, else
    :data:`EXTRA_ERROR_STATUS`, else 400. A ResourceNotFoundException from an operation whose
    model does not list it (CreateApplicationInstance, RegisterPackageVersion) is sent as a
    ValidationException, the error such operations declare for bad references.
    """
    code, fields = exc.code, dict(exc.fields)
    if operation is not None and code == "ResourceNotFoundException":
        if code not in {shape.name for shape in operation.error_shapes}:
            code, fields = "ValidationException", {"Reason": "OTHER"}
    shape = model.shape_for(code) if code in model.shape_names else None
    status = exc.status
    if status is None:
        status = (
            shape.metadata["error"]["httpStatusCode"]
            if shape is not None
            else EXTRA_ERROR_STATUS.get(code, 400)
        )
    try:
        headers, body = render(shape, {"Message": exc.message, **fields})
    except ValueError:  # fields the error shape does not have
        headers, body = {}, {"Message": exc.message}
    body["message"] = exc.message
    return status, {"x-amzn-ErrorType": code, **headers}, json.dumps(body).encode()


def authenticate(authorization: str | None, region: str) -> None:
    """Check that a request carries a SigV4 header scoped to ``region`` and panorama.

    The signature itself is not verified (any access key works).

    Raises:
        ServiceError: 403 MissingAuthenticationTokenException (no header),
            IncompleteSignatureException (not SigV4), InvalidSignatureException (scope).
    """
    if not authorization:
        raise ServiceError(
            "MissingAuthenticationTokenException", "Missing Authentication Token", status=403
        )
    match = _CREDENTIAL.match(authorization)
    if match is None:
        raise ServiceError(
            "IncompleteSignatureException", "Authorization header is not SigV4", status=403
        )
    scope_region, service = match.groups()
    if scope_region != region:
        raise ServiceError(
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region, not '{scope_region}'.",
        )
    if service != SERVICE_NAME:
        raise ServiceError(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{SERVICE_NAME}'.",
        )


def decode_blobs(value: Any, shape: Shape, path: str) -> Any:
    """Blob members (base64 on the wire) as bytes; a bad base64 raises ServiceError."""
    if shape.type_name == "blob":
        if not isinstance(value, str):
            return value  # the validator reports the type
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ServiceError(
                "ValidationException", f"{path}: not valid base64", reason="CANNOT_PARSE"
            ) from None
    if shape.type_name == "structure" and isinstance(value, dict):
        return {
            k: decode_blobs(v, shape.members[k], f"{path}.{k}") if k in shape.members else v
            for k, v in value.items()
        }
    if shape.type_name == "list" and isinstance(value, list):
        return [decode_blobs(v, shape.member, f"{path}[{i}]") for i, v in enumerate(value)]
    if shape.type_name == "map" and isinstance(value, dict):
        return {k: decode_blobs(v, shape.value, f"{path}.{k}") for k, v in value.items()}
    return value
