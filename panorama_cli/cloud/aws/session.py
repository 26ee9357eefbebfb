"""AWS sessions and clients, and translation of AWS SDK errors into :class:`UserError`.

Every AWS call in panorama-cli goes through :func:`make_session` and :func:`make_client`,
so credentials, region, endpoint overrides and retries behave the same everywhere.

Endpoint overrides are left to botocore (>= 1.31), which already reads, in this order:
``AWS_ENDPOINT_URL_<SERVICE>`` (e.g. ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL_STS``),
``AWS_ENDPOINT_URL``, then ``endpoint_url`` in the profile's ``services`` section and in
the profile itself; ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`` turns all of them off.
tests/cloud/test_aws.py checks that this still holds.

boto3/botocore are imported inside the functions: importing this module must stay cheap.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from panorama_cli import __version__
from panorama_cli.errors import UserError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import boto3

log = logging.getLogger(__name__)

_CONFIGURE_HINT = (
    "run `aws configure` (or `aws sso login --profile NAME` and set AWS_PROFILE), "
    "or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
)
_REGION_HINT = (
    "set AWS_REGION (e.g. export AWS_REGION=us-west-2) or `region` in your AWS profile "
    "(`aws configure set region us-west-2`)"
)
_ACCESS_DENIED_HINT = (
    "use credentials allowed to do this (AWS_PROFILE=...) or ask your AWS administrator "
    "to grant the permission named above"
)


def make_session(profile: str | None = None, region: str | None = None) -> boto3.Session:
    """Create a boto3 session using the standard AWS credential chain.

    Args:
        profile: named profile from ``~/.aws/config`` / ``~/.aws/credentials``; ``None``
            means ``AWS_PROFILE`` if set, else the default profile.
        region: AWS region name such as ``"us-west-2"``; ``None`` means ``AWS_REGION`` if
            set (it wins over ``AWS_DEFAULT_REGION``, as in the AWS CLI v2; botocore itself
            ignores ``AWS_REGION``), else ``AWS_DEFAULT_REGION``, else the profile's
            ``region``. A missing region is only reported when a client is created.

    Returns:
        A ``boto3.Session`` that also knows the ``panorama`` service (the model shipped in
        ``backpack/data``, see :mod:`backpack.service_model`). Credentials are resolved
        lazily, on the first request.

    Raises:
        UserError: the named profile does not exist.
    """
    import boto3
    import botocore.exceptions

    if region is None:
        region = os.environ.get("AWS_REGION") or None
    log.debug("AWS session: profile %s, region %s", profile or "(default)", region or "(default)")
    try:
        session = boto3.Session(profile_name=profile, region_name=region)
    except botocore.exceptions.BotoCoreError as exc:
        raise translate_client_error(exc) from exc
    # botocore >= 1.44 no longer ships `panorama`: append backpack's copy of the model to
    # this session's loader search paths (a user's ~/.aws/models or AWS_DATA_PATH still win).
    from backpack.service_model import add_to_session

    return add_to_session(session)


def make_client(session: boto3.Session, service: str) -> Any:
    """Create a botocore client for ``service`` with panorama-cli's client settings.

    Settings: ``retries={"mode": "standard"}`` (``AWS_MAX_ATTEMPTS`` still sets the number
    of attempts), and a ``panorama-cli/<version>`` user-agent suffix. The endpoint comes
    from botocore's own lookup (``AWS_ENDPOINT_URL_<SERVICE>``, ``AWS_ENDPOINT_URL``,
    shared config), see the module docstring.

    Args:
        session: from :func:`make_session`.
        service: boto3 service name, e.g. ``"s3"`` or ``"sts"``.

    Returns:
        A low-level boto3 client (``botocore.client.BaseClient``).

    Raises:
        UserError: no region is configured, or the client cannot be created from the
            configuration (e.g. an invalid endpoint URL).
    """
    import botocore.config
    import botocore.exceptions

    config = botocore.config.Config(
        retries={"mode": "standard"},
        user_agent_extra=f"panorama-cli/{__version__}",
    )
    try:
        return session.client(service, config=config)
    except (botocore.exceptions.BotoCoreError, ValueError) as exc:
        raise translate_client_error(exc) from exc


def translate_client_error(exc: BaseException) -> UserError:
    """Turn an AWS SDK exception into a one-line :class:`UserError` with a fix.

    Known causes get a specific message and hint: missing/partial credentials
    (``NoCredentialsError``, ``PartialCredentialsError``), unknown profile
    (``ProfileNotFound``), expired SSO login, expired session tokens
    (``ExpiredToken``/``ExpiredTokenException``/``RequestExpired``), unknown keys
    (``InvalidClientTokenId``/``UnrecognizedClientException``/``InvalidAccessKeyId``),
    wrong secret key (``SignatureDoesNotMatch``), access denied (``AccessDenied``,
    ``AccessDeniedException``, HTTP 403), ``NoRegionError`` and connection failures
    (``EndpointConnectionError``, timeouts, proxy and TLS errors). Any other service error is
    shown as ``<Operation> failed: <Code>: <Message>`` exactly as the service sent it.

    Args:
        exc: usually a ``botocore.exceptions.ClientError`` or ``BotoCoreError``; any other
            exception is shown as ``<type>: <text>``.

    Returns:
        The ``UserError`` to raise (``raise translate_client_error(e) from e``); this
        function never raises it itself.
    """
    import botocore.exceptions as bx

    if isinstance(exc, bx.ClientError):
        return _translate_service_error(exc)
    if isinstance(exc, bx.NoCredentialsError):
        return UserError("no AWS credentials found", hint=_CONFIGURE_HINT)
    if isinstance(exc, bx.PartialCredentialsError):
        return UserError(f"incomplete AWS credentials: {exc}", hint=_CONFIGURE_HINT)
    if isinstance(exc, bx.ProfileNotFound):
        profile = exc.kwargs.get("profile", "")
        return UserError(
            f"AWS profile '{profile}' not found",
            hint="list profiles with `aws configure list-profiles`, or unset AWS_PROFILE",
        )
    if isinstance(exc, bx.SSOError | bx.TokenRetrievalError | bx.SSOTokenLoadError):
        return UserError(
            "AWS SSO login has expired or is missing",
            hint="run `aws sso login` (with --profile NAME for a named profile)",
        )
    if isinstance(exc, bx.NoRegionError):
        return UserError("no AWS region configured", hint=_REGION_HINT)
    if isinstance(exc, bx.InvalidRegionError):
        return UserError(
            f"invalid AWS region name {exc.kwargs.get('region_name', '')!r}",
            hint="use a region name such as us-west-2 (--region, AWS_REGION or your profile)",
        )
    if isinstance(exc, bx.SSLError):
        url = exc.kwargs.get("endpoint_url", "the AWS endpoint")
        return UserError(
            f"TLS certificate check failed for {url}",
            hint="behind a TLS-inspecting proxy, set AWS_CA_BUNDLE to its CA certificate file",
        )
    if isinstance(exc, bx.ProxyConnectionError):
        return UserError(
            f"cannot connect to proxy {exc.kwargs.get('proxy_url', '')}".rstrip(),
            hint="check HTTPS_PROXY / HTTP_PROXY / NO_PROXY",
        )
    if isinstance(exc, bx.ConnectionError):  # incl. EndpointConnectionError, connect timeout
        url = exc.kwargs.get("endpoint_url", "")
        return UserError(
            f"cannot connect to AWS endpoint {url}".rstrip(),
            hint="check your network/proxy and the region; if AWS_ENDPOINT_URL or "
            "AWS_ENDPOINT_URL_<SERVICE> is set, check that it is right",
        )
    if isinstance(exc, bx.HTTPClientError):
        return UserError(
            f"connection to AWS failed: {exc}",
            hint="check your network/proxy and try again",
        )
    if isinstance(exc, bx.BotoCoreError):
        return UserError(str(exc))
    return UserError(f"{type(exc).__name__}: {exc}")


def _translate_service_error(exc: Any) -> UserError:
    """Translate a ``botocore.exceptions.ClientError`` (an error response from AWS)."""
    error = exc.response.get("Error", {}) or {}
    code = str(error.get("Code", "") or "")
    message = str(error.get("Message", "") or "").strip()
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    operation = getattr(exc, "operation_name", None) or "AWS request"

    if code in {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}:
        return UserError(
            "AWS credentials have expired",
            hint="refresh them (`aws sso login`, or get new temporary credentials) and try again",
        )
    if code in {"InvalidClientTokenId", "UnrecognizedClientException", "InvalidAccessKeyId"}:
        return UserError(
            "AWS does not recognise the access key in use",
            hint="check AWS_ACCESS_KEY_ID / AWS_PROFILE, or run `aws configure`; "
            "the key may have been deleted or belong to another partition",
        )
    if code == "SignatureDoesNotMatch":
        return UserError(
            "AWS rejected the request signature (wrong secret access key?)",
            hint="check AWS_SECRET_ACCESS_KEY / your profile's aws_secret_access_key, "
            "and that your clock is correct",
        )
    if code in {"AccessDenied", "AccessDeniedException", "403", "Forbidden"} or (
        status == 403 and not code
    ):
        detail = f": {message}" if message and message != "Forbidden" else ""
        return UserError(f"access denied by AWS ({operation}){detail}", hint=_ACCESS_DENIED_HINT)

    text = f"{operation} failed: {code}" if code else f"{operation} failed (HTTP {status})"
    if message:
        text += f": {message}"
    return UserError(" ".join(text.split()))
