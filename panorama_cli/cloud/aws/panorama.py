"""AWS Panorama API calls (service ``panorama``, API version 2019-07-24).

Every Panorama call of panorama-cli goes through this module. The client comes from
:func:`panorama_cli.cloud.aws.session.make_client` on a session from
:func:`~panorama_cli.cloud.aws.session.make_session`, which adds the service model shipped in
``backpack/data`` (botocore >= 1.44 no longer has it). ``AWS_ENDPOINT_URL_PANORAMA`` /
``AWS_ENDPOINT_URL`` redirect the calls, botocore's standard retry mode retries throttling.

Only ``ResourceNotFoundException`` means "does not exist" (``None`` is returned); every other
error -- AccessDenied, an expired token, throttling that outlasted the retries, a validation
error -- is raised as the :class:`~panorama_cli.errors.UserError` that
:func:`~panorama_cli.cloud.aws.session.translate_client_error` makes of it. Upstream panorama-cli
read every DescribePackage failure as "not found" and then failed on CreatePackage with
"ConflictException ... Package with same name exists".
"""

from __future__ import annotations

import logging
from typing import Any

from panorama_cli.cloud.aws.session import make_client, translate_client_error

log = logging.getLogger(__name__)

NOT_FOUND = "ResourceNotFoundException"

#: PackageVersionStatus values (the model's enum).
REGISTER_PENDING = "REGISTER_PENDING"
REGISTER_COMPLETED = "REGISTER_COMPLETED"
REGISTER_FAILED = "FAILED"

#: ApplicationInstanceStatus values after which a deployment no longer changes by itself.
DEPLOYMENT_ENDED = frozenset(
    {
        "DEPLOYMENT_SUCCEEDED",
        "DEPLOYMENT_FAILED",
        "DEPLOYMENT_ERROR",
        "REMOVAL_SUCCEEDED",
        "REMOVAL_FAILED",
    }
)
#: ApplicationInstanceStatus values that mean the deployment failed.
DEPLOYMENT_FAILURES = frozenset({"DEPLOYMENT_FAILED", "DEPLOYMENT_ERROR"})


def client(session: Any) -> Any:
    """A ``panorama`` client for ``session``.

    See :func:`~panorama_cli.cloud.aws.session.make_client`.

    Raises:
        UserError: no region, or a bad endpoint configuration.
    """
    return make_client(session, "panorama")


def _call(operation: Any, **params: Any) -> dict[str, Any]:
    """Call a client method; AWS errors become :class:`UserError`."""
    import botocore.exceptions

    try:
        return _call_raw(operation, **params)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise translate_client_error(exc) from exc


def _call_or_none(operation: Any, **params: Any) -> dict[str, Any] | None:
    """Like :func:`_call`, but ``ResourceNotFoundException`` gives ``None``."""
    import botocore.exceptions

    try:
        return _call_raw(operation, **params)
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == NOT_FOUND:
            return None
        raise translate_client_error(exc) from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise translate_client_error(exc) from exc


def _call_raw(operation: Any, **params: Any) -> dict[str, Any]:
    log.debug("Panorama %s %s", getattr(operation, "__name__", operation), sorted(params))
    response: dict[str, Any] = operation(**params)
    response.pop("ResponseMetadata", None)
    return response


def describe_package(panorama: Any, package_name: str) -> dict[str, Any] | None:
    """DescribePackage by name (``PackageId="packageName/<name>"``).

    Returns:
        The DescribePackage response (PackageId, PackageName, Arn, StorageLocation, ...),
        or ``None`` when the service answers ResourceNotFoundException.

    Raises:
        UserError: any other error.
    """
    return _call_or_none(panorama.describe_package, PackageId=f"packageName/{package_name}")


def create_package(panorama: Any, package_name: str) -> dict[str, Any]:
    """CreatePackage; returns PackageId, PackageArn and StorageLocation.

    Raises:
        UserError: any error, e.g. ConflictException when the name exists.
    """
    return _call(panorama.create_package, PackageName=package_name)


def describe_package_version(
    panorama: Any, package_id: str, version: str, patch: str | None = None
) -> dict[str, Any] | None:
    """DescribePackageVersion of ``patch``, or of the latest patch when ``patch`` is None.

    Returns:
        The response (Status, StatusDescription, IsLatestPatch, PatchVersion, ...), or
        ``None`` when the version or patch does not exist.

    Raises:
        UserError: any error other than ResourceNotFoundException.
    """
    params: dict[str, Any] = {"PackageId": package_id, "PackageVersion": version}
    if patch is not None:
        params["PatchVersion"] = patch
    return _call_or_none(panorama.describe_package_version, **params)


def _patch_params(
    package_id: str, version: str, patch: str, owner_account: str | None
) -> dict[str, Any]:
    """The parameters that name one patch version (and its owner account, if given)."""
    params: dict[str, Any] = {
        "PackageId": package_id,
        "PackageVersion": version,
        "PatchVersion": patch,
    }
    if owner_account:
        params["OwnerAccount"] = owner_account
    return params


def register_package_version(
    panorama: Any, package_id: str, version: str, patch: str, owner_account: str | None
) -> None:
    """RegisterPackageVersion with ``MarkLatest=True``.

    Args:
        owner_account: the package's account id (12 digits), or None to let the service use
            the caller's account.

    Raises:
        UserError: any error.
    """
    params = _patch_params(package_id, version, patch, owner_account)
    _call(panorama.register_package_version, **params, MarkLatest=True)


def deregister_package_version(
    panorama: Any, package_id: str, version: str, patch: str, owner_account: str | None
) -> None:
    """DeregisterPackageVersion of one patch.

    Raises:
        UserError: any error (callers treat this call as best effort).
    """
    _call(
        panorama.deregister_package_version,
        **_patch_params(package_id, version, patch, owner_account),
    )


def create_application_instance(panorama: Any, **params: Any) -> str:
    """CreateApplicationInstance; returns the ApplicationInstanceId.

    Args:
        params: the operation's parameters (Name, Description, ManifestPayload,
            ManifestOverridesPayload, DefaultRuntimeContextDevice, RuntimeRoleArn, ...).

    Raises:
        UserError: any error.
    """
    return str(_call(panorama.create_application_instance, **params)["ApplicationInstanceId"])


def describe_application_instance(panorama: Any, instance_id: str) -> dict[str, Any]:
    """DescribeApplicationInstance.

    Raises:
        UserError: any error; ResourceNotFoundException says the id is unknown.
    """
    found = _call_or_none(panorama.describe_application_instance, ApplicationInstanceId=instance_id)
    if found is None:
        from panorama_cli.errors import UserError

        raise UserError(
            f"no application instance {instance_id}",
            hint="list them with `panorama-cli status`",
        )
    return found


def list_application_instances(panorama: Any, device_id: str | None = None) -> list[dict[str, Any]]:
    """ListApplicationInstances, all pages (the shipped paginators-1.json).

    Raises:
        UserError: any error.
    """
    import botocore.exceptions

    params: dict[str, Any] = {}
    if device_id:
        params["DeviceId"] = device_id
    try:
        pages = panorama.get_paginator("list_application_instances").paginate(
            **params,
            PaginationConfig={"PageSize": 25},  # MaxSize25 in the model
        )
        return [item for page in pages for item in page.get("ApplicationInstances", [])]
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise translate_client_error(exc) from exc
