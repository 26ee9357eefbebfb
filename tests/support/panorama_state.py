"""In-memory state of the Panorama test server (see :mod:`tests.support.panorama_server`).

:class:`PanoramaState` holds packages, package versions, devices and application instances and
implements each operation as ``handler(params) -> response dict``, with ``params`` already
validated against the shipped model and the response in the model's member names (timestamps
as ``datetime``). Errors are raised as :class:`ServiceError` with the model's error code.

How statuses move (each Describe is one "poll"):

* A registered patch is ``REGISTER_PENDING`` for the first ``pending_polls`` DescribePackageVersion
  calls that return it, then ``REGISTER_COMPLETED`` -- or ``FAILED`` (outcome "failed", or a
  missing upload when an object store is attached), or pending forever (outcome "pending").
* A created application instance is ``DEPLOYMENT_PENDING`` on its first observation (a
  DescribeApplicationInstance, or a ListApplicationInstances without NextToken that matches
  its device), ``DEPLOYMENT_IN_PROGRESS`` until ``deploy_polls`` observations have been made,
  then ``DEPLOYMENT_SUCCEEDED`` (health ``RUNNING``) or ``DEPLOYMENT_FAILED``. Removal moves the
  same way through ``REMOVAL_PENDING``/``REMOVAL_IN_PROGRESS`` to ``REMOVAL_SUCCEEDED``.

Emulation choices where the service's exact behaviour is not documented: the first patch of
a version becomes the latest patch even without MarkLatest; registering a patch that exists
and has not FAILED is a ConflictException; deregistering the latest patch without
UpdatedLatestPatchVersion makes the most recently registered remaining patch the latest;
ApplicationInstanceIdToReplace starts the old instance's removal at once; removed instances
stay listed (REMOVAL_SUCCEEDED) like deployed ones.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from tests.support.panorama_protocol import ServiceError

REGISTER_OUTCOMES = ("completed", "failed", "pending")
DEPLOY_OUTCOMES = ("succeeded", "failed", "pending")
DEFAULT_PAGE_SIZE = 25

#: ListApplicationInstances ``StatusFilter`` value -> the instance statuses it selects.
STATUS_FILTERS: dict[str, frozenset[str]] = {
    "DEPLOYMENT_SUCCEEDED": frozenset({"DEPLOYMENT_SUCCEEDED"}),
    "DEPLOYMENT_ERROR": frozenset({"DEPLOYMENT_ERROR"}),
    "DEPLOYMENT_FAILED": frozenset({"DEPLOYMENT_FAILED"}),
    "REMOVAL_SUCCEEDED": frozenset({"REMOVAL_SUCCEEDED"}),
    "REMOVAL_FAILED": frozenset({"REMOVAL_FAILED"}),
    "PROCESSING_DEPLOYMENT": frozenset(
        {"DEPLOYMENT_PENDING", "DEPLOYMENT_REQUESTED", "DEPLOYMENT_IN_PROGRESS"}
    ),
    "PROCESSING_REMOVAL": frozenset(
        {"REMOVAL_PENDING", "REMOVAL_REQUESTED", "REMOVAL_IN_PROGRESS"}
    ),
}
#: Members of the model's ``ApplicationInstance`` shape (ListApplicationInstances items).
INSTANCE_LIST_FIELDS = (
    "ApplicationInstanceId", "Arn", "CreatedTime", "DefaultRuntimeContextDevice",
    "DefaultRuntimeContextDeviceName", "Description", "HealthStatus", "Name",
    "RuntimeContextStates", "Status", "StatusDescription", "Tags",
)  # fmt: skip
_ID_ALPHABET = string.ascii_lowercase + string.digits


def not_found(kind: str, resource_id: str) -> ServiceError:
    """ResourceNotFoundException for ``kind`` (e.g. "package") ``resource_id``."""
    return ServiceError(
        "ResourceNotFoundException",
        f"{kind} {resource_id} not found",
        ResourceId=resource_id,
        ResourceType=kind,
    )


def new_id(prefix: str) -> str:
    """A Panorama-style id: ``<prefix>-`` and 26 random lowercase letters/digits."""
    return f"{prefix}-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(26))


def now() -> datetime:
    """The current UTC time (timestamps in responses)."""
    return datetime.now(timezone.utc)


def paginate(items: list[Any], max_results: int | None, token: str | None) -> tuple[list, dict]:
    """One page of ``items`` and ``{"NextToken": ...}`` when more remain (else ``{}``).

    Tokens are opaque (base64 of the offset); a token this server did not issue is a
    ValidationException. ``max_results`` 0/None means :data:`DEFAULT_PAGE_SIZE`.
    """
    start = 0
    if token is not None:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("o:"))
        except ValueError:
            raise ServiceError("ValidationException", "Invalid NextToken") from None
    size = max_results or DEFAULT_PAGE_SIZE
    page = items[start : start + size]
    if start + size < len(items):
        return page, {"NextToken": base64.urlsafe_b64encode(f"o:{start + size}".encode()).decode()}
    return page, {}


class ObjectStore(Protocol):
    """Read access to the package storage bucket (S3 in tests: moto)."""

    def get(self, bucket: str, key: str) -> bytes | None:
        """The object's bytes, or None if it does not exist."""

    def exists(self, bucket: str, key: str) -> bool:
        """Whether the object exists."""


@dataclass
class Patch:
    """One registered patch of a package version."""

    version: str
    patch: str
    owner_account: str
    registered: datetime
    upload_problem: str | None  # why the registration will FAIL (missing upload), if any
    is_latest: bool = False
    status: str = "REGISTER_PENDING"
    description: str | None = None
    polls: int = 0


@dataclass
class Package:
    """A node package (CreatePackage)."""

    package_id: str
    name: str
    arn: str
    created: datetime
    tags: dict[str, str]
    storage: dict[str, str]
    patches: list[Patch] = field(default_factory=list)


@dataclass
class Instance:
    """An application instance: ``fields`` are DescribeApplicationInstance response members."""

    fields: dict[str, Any]
    phase: str = "deploy"  # "deploy" or "remove"
    settled: bool = True  # no more status changes
    polls: int = 0
    manifest: str = ""
    overrides: str = ""


class PanoramaState:
    """Everything the test server remembers; not thread-safe (the server holds a lock).

    Args:
        region, account_id: used in ARNs and storage prefixes.
        bucket: ``StorageLocation.Bucket`` of every package.
        pending_polls: DescribePackageVersion answers that stay REGISTER_PENDING (>= 0).
        deploy_polls: Describe/List observations before a deployment/removal ends (>= 0).
    """

    def __init__(
        self, *, region: str, account_id: str, bucket: str, pending_polls: int, deploy_polls: int
    ) -> None:
        self.region, self.account_id, self.bucket = region, account_id, bucket
        self.pending_polls, self.deploy_polls = pending_polls, deploy_polls
        self.object_store: ObjectStore | None = None
        self.packages: list[Package] = []
        self.devices: dict[str, dict[str, Any]] = {}
        self.instances: dict[str, Instance] = {}
        self.register_outcomes: dict[str, tuple[str, str | None]] = {}
        self.deploy_outcomes: dict[str, tuple[str, str | None]] = {}

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        """Operation name -> handler."""
        return {
            "CreatePackage": self.create_package,
            "DescribePackage": self.describe_package,
            "ListPackages": self.list_packages,
            "RegisterPackageVersion": self.register_package_version,
            "DescribePackageVersion": self.describe_package_version,
            "DeregisterPackageVersion": self.deregister_package_version,
            "DescribeDevice": self.describe_device,
            "CreateApplicationInstance": self.create_application_instance,
            "DescribeApplicationInstance": self.describe_application_instance,
            "ListApplicationInstances": self.list_application_instances,
            "RemoveApplicationInstance": self.remove_application_instance,
        }

    def arn(self, kind: str, resource_id: str) -> str:
        """``arn:aws:panorama:<region>:<account>:<kind>/<id>``."""
        return f"arn:aws:panorama:{self.region}:{self.account_id}:{kind}/{resource_id}"

    # -- packages -------------------------------------------------------------------------

    def package(self, package_id: str) -> Package:
        """Look up by id or by ``packageName/<name>``; ResourceNotFoundException if unknown."""
        name = package_id.removeprefix("packageName/") if "/" in package_id else None
        for package in self.packages:
            if package.package_id == package_id or package.name == name:
                return package
        raise not_found("package", package_id)

    def create_package(self, p: dict[str, Any]) -> dict[str, Any]:
        existing = [pkg for pkg in self.packages if pkg.name == p["PackageName"]]
        if existing:
            raise ServiceError(
                "ConflictException",
                "Package with same name exists",
                ResourceId=existing[0].package_id,
                ResourceType="package",
            )
        package_id = new_id("package")
        root = f"{self.account_id}/nodePackages/{package_id}"
        storage = {
            "Bucket": self.bucket,
            "RepoPrefixLocation": root,
            "GeneratedPrefixLocation": f"{root}/generated",
            "BinaryPrefixLocation": f"{root}/binaries",
            "ManifestPrefixLocation": f"{root}/manifests",
        }
        package = Package(
            package_id, p["PackageName"], self.arn("package", package_id), now(),
            dict(p.get("Tags", {})), storage,
        )  # fmt: skip
        self.packages.append(package)
        return {"PackageId": package_id, "Arn": package.arn, "StorageLocation": dict(storage)}

    def describe_package(self, p: dict[str, Any]) -> dict[str, Any]:
        package = self.package(p["PackageId"])
        return {
            "PackageId": package.package_id,
            "PackageName": package.name,
            "Arn": package.arn,
            "StorageLocation": dict(package.storage),
            "CreatedTime": package.created,
            "Tags": dict(package.tags),
            "ReadAccessPrincipalArns": [],
            "WriteAccessPrincipalArns": [],
        }

    def list_packages(self, p: dict[str, Any]) -> dict[str, Any]:
        items = [
            {
                "PackageId": pkg.package_id, "PackageName": pkg.name, "Arn": pkg.arn,
                "CreatedTime": pkg.created, "Tags": dict(pkg.tags),
            }
            for pkg in self.packages
        ]  # fmt: skip
        page, more = paginate(items, p.get("MaxResults"), p.get("NextToken"))
        return {"Packages": page, **more}

    def register_package_version(self, p: dict[str, Any]) -> dict[str, Any]:
        package = self.package(p["PackageId"])
        version, patch_version = p["PackageVersion"], p["PatchVersion"]
        for old in list(package.patches):
            if (old.version, old.patch) == (version, patch_version):
                if old.status != "FAILED":
                    raise ServiceError(
                        "ConflictException",
                        f"Patch {patch_version} of version {version} is already registered "
                        f"({old.status})",
                        ResourceId=package.package_id,
                        ResourceType="package",
                    )
                package.patches.remove(old)
        problem = None
        if self.object_store is not None:
            problem = find_upload_problem(self.object_store, package, version, patch_version)
        patch = Patch(
            version, patch_version, p.get("OwnerAccount", self.account_id), now(), problem
        )
        same_version = [x for x in package.patches if x.version == version]
        if p.get("MarkLatest") or not any(x.is_latest for x in same_version):
            for other in same_version:
                other.is_latest = False
            patch.is_latest = True
        package.patches.append(patch)
        return {}

    def find_patch(self, package: Package, version: str, patch_version: str | None) -> Patch:
        """The patch (latest of ``version`` when ``patch_version`` is None) or not found."""
        for patch in package.patches:
            if patch.version == version and (
                patch.patch == patch_version or (patch_version is None and patch.is_latest)
            ):
                return patch
        raise not_found("package version", f"{package.package_id}/{version}/{patch_version}")

    def describe_package_version(self, p: dict[str, Any]) -> dict[str, Any]:
        package = self.package(p["PackageId"])
        patch = self.find_patch(package, p["PackageVersion"], p.get("PatchVersion"))
        self._advance_registration(package, patch)
        response = {
            "PackageId": package.package_id, "PackageArn": package.arn,
            "PackageName": package.name, "PackageVersion": patch.version,
            "PatchVersion": patch.patch, "IsLatestPatch": patch.is_latest,
            "Status": patch.status, "RegisteredTime": patch.registered,
            "OwnerAccount": patch.owner_account,
        }  # fmt: skip
        if patch.description:
            response["StatusDescription"] = patch.description
        return response

    def _advance_registration(self, package: Package, patch: Patch) -> None:
        if patch.status != "REGISTER_PENDING":
            return
        patch.polls += 1
        outcome, description = self.register_outcomes.get(package.name, ("completed", None))
        if patch.polls <= self.pending_polls or outcome == "pending":
            return
        if outcome == "failed" or patch.upload_problem:
            patch.status = "FAILED"
            patch.description = (description or patch.upload_problem or "Registration failed")[:255]
        else:
            patch.status = "REGISTER_COMPLETED"

    def deregister_package_version(self, p: dict[str, Any]) -> dict[str, Any]:
        package = self.package(p["PackageId"])
        patch = self.find_patch(package, p["PackageVersion"], p["PatchVersion"])
        package.patches.remove(patch)
        rest = [x for x in package.patches if x.version == patch.version]
        wanted = p.get("UpdatedLatestPatchVersion")
        if wanted is not None:
            new_latest = self.find_patch(package, patch.version, wanted)
        elif patch.is_latest and rest:
            new_latest = max(rest, key=lambda x: x.registered)
        else:
            return {}
        for other in rest:
            other.is_latest = other is new_latest
        return {}

    # -- devices and application instances ------------------------------------------------

    def add_device(self, device_id: str | None, name: str, fields: dict[str, Any]) -> str:
        """Add a device; ``fields`` override DescribeDevice response members. Returns its id."""
        device_id = device_id or new_id("device")
        self.devices[device_id] = {
            "DeviceId": device_id, "Name": name, "Arn": self.arn("device", device_id),
            "Brand": "AWS_PANORAMA", "Type": "PANORAMA_APPLIANCE", "CreatedTime": now(),
            "DeviceConnectionStatus": "ONLINE", "DeviceAggregatedStatus": "ONLINE",
            "ProvisioningStatus": "SUCCEEDED", "Tags": {}, **fields,
        }  # fmt: skip
        return device_id

    def describe_device(self, p: dict[str, Any]) -> dict[str, Any]:
        device = self.devices.get(p["DeviceId"])
        if device is None:
            raise not_found("device", p["DeviceId"])
        return dict(device)

    def add_application_instance(self, fields: dict[str, Any]) -> str:
        """Seed a settled instance (default DEPLOYMENT_SUCCEEDED/RUNNING). Returns its id."""
        instance_id = fields.get("ApplicationInstanceId") or new_id("applicationInstance")
        device = self.devices.get(fields.get("DefaultRuntimeContextDevice", ""), {})
        record = {
            "ApplicationInstanceId": instance_id,
            "Arn": self.arn("applicationInstance", instance_id),
            "Status": "DEPLOYMENT_SUCCEEDED", "HealthStatus": "RUNNING",
            "CreatedTime": now(), "LastUpdatedTime": now(), "Tags": {},
            **({"DefaultRuntimeContextDeviceName": device["Name"]} if device else {}),
            **fields,
        }  # fmt: skip
        self.instances[instance_id] = Instance(record)
        return instance_id

    def create_application_instance(self, p: dict[str, Any]) -> dict[str, Any]:
        manifest = p["ManifestPayload"].get("PayloadData", "")
        overrides = p.get("ManifestOverridesPayload", {}).get("PayloadData", "")
        for what, text in (("ManifestPayload", manifest), ("ManifestOverridesPayload", overrides)):
            if text:
                try:
                    json.loads(text)
                except ValueError as exc:
                    raise ServiceError(
                        "ValidationException", f"{what}.PayloadData is not valid JSON: {exc}",
                        Reason="FIELD_VALIDATION_FAILED",
                    ) from None  # fmt: skip
        device = self.devices.get(p["DefaultRuntimeContextDevice"])
        if device is None:
            raise not_found("device", p["DefaultRuntimeContextDevice"])
        replace = p.get("ApplicationInstanceIdToReplace")
        if replace is not None:
            self._start_removal(self.instance(replace))
        instance_id = new_id("applicationInstance")
        fields = {
            key: p[key]
            for key in ("Name", "Description", "RuntimeRoleArn", "ApplicationInstanceIdToReplace")
            if key in p
        }
        fields.update(
            ApplicationInstanceId=instance_id, Arn=self.arn("applicationInstance", instance_id),
            DefaultRuntimeContextDevice=device["DeviceId"],
            DefaultRuntimeContextDeviceName=device["Name"], Tags=dict(p.get("Tags", {})),
            CreatedTime=now(), LastUpdatedTime=now(), Status="DEPLOYMENT_PENDING",
            HealthStatus="NOT_AVAILABLE",
        )  # fmt: skip
        self.instances[instance_id] = Instance(
            fields, settled=False, manifest=manifest, overrides=overrides
        )
        return {"ApplicationInstanceId": instance_id}

    def instance(self, instance_id: str) -> Instance:
        """The instance or ResourceNotFoundException."""
        if instance_id not in self.instances:
            raise not_found("application instance", instance_id)
        return self.instances[instance_id]

    def _start_removal(self, instance: Instance) -> None:
        if instance.phase == "remove":
            raise ServiceError(
                "ConflictException",
                "Application instance is already being removed",
                ResourceId=instance.fields["ApplicationInstanceId"],
                ResourceType="applicationInstance",
            )
        instance.phase, instance.settled, instance.polls = "remove", False, 0
        instance.fields.pop("StatusDescription", None)
        instance.fields.update(Status="REMOVAL_PENDING", LastUpdatedTime=now())

    def _observe(self, instance: Instance) -> None:
        """One Describe/List observation: move the status along (see module docstring)."""
        if instance.settled:
            return
        instance.polls += 1
        prefix = "DEPLOYMENT" if instance.phase == "deploy" else "REMOVAL"
        outcome, description = ("succeeded", None)
        if instance.phase == "deploy":
            name = instance.fields.get("Name", "")
            outcome, description = self.deploy_outcomes.get(name, (outcome, None))
        fields = instance.fields
        if instance.polls <= self.deploy_polls or outcome == "pending":
            status = f"{prefix}_PENDING" if instance.polls == 1 else f"{prefix}_IN_PROGRESS"
        elif outcome == "failed":
            status, instance.settled = f"{prefix}_FAILED", True
            fields["StatusDescription"] = (description or "Deployment failed")[:255]
        else:
            status, instance.settled = f"{prefix}_SUCCEEDED", True
            fields["HealthStatus"] = "RUNNING" if instance.phase == "deploy" else "NOT_AVAILABLE"
        if fields["Status"] != status:
            fields.update(Status=status, LastUpdatedTime=now())

    def describe_application_instance(self, p: dict[str, Any]) -> dict[str, Any]:
        instance = self.instance(p["ApplicationInstanceId"])
        self._observe(instance)
        return dict(instance.fields)

    def list_application_instances(self, p: dict[str, Any]) -> dict[str, Any]:
        selected = []
        wanted = STATUS_FILTERS.get(p.get("StatusFilter", ""))
        for instance in self.instances.values():
            fields = instance.fields
            if p.get("DeviceId") not in (None, fields.get("DefaultRuntimeContextDevice")):
                continue
            if p.get("NextToken") is None:  # a new listing, not its next page
                self._observe(instance)
            if wanted is None or fields["Status"] in wanted:
                selected.append({k: fields[k] for k in INSTANCE_LIST_FIELDS if k in fields})
        page, more = paginate(selected, p.get("MaxResults"), p.get("NextToken"))
        return {"ApplicationInstances": page, **more}

    def remove_application_instance(self, p: dict[str, Any]) -> dict[str, Any]:
        self._start_removal(self.instance(p["ApplicationInstanceId"]))
        return {}


def find_upload_problem(
    store: ObjectStore, package: Package, version: str, patch: str
) -> str | None:
    """Why registering ``patch`` would fail for lack of uploads, or None if all is there.

    Checks what Panorama reads on registration: the manifest
    ``<ManifestPrefixLocation>/<version>/<patch>.json`` (its nodePackage name and version must
    match) and every non-system assetUri/descriptorUri it names under BinaryPrefixLocation.
    """
    bucket, storage = package.storage["Bucket"], package.storage
    manifest_key = f"{storage['ManifestPrefixLocation']}/{version}/{patch}.json"
    data = store.get(bucket, manifest_key)
    if data is None:
        return f"Manifest not found: s3://{bucket}/{manifest_key}"
    try:
        node_package = json.loads(data)["nodePackage"]
    except (ValueError, KeyError, TypeError):
        return f"Manifest s3://{bucket}/{manifest_key} is not a package.json"
    if node_package.get("name") != package.name or node_package.get("version") != version:
        return (
            f"Manifest names {node_package.get('name')} {node_package.get('version')}, "
            f"registered {package.name} {version}"
        )
    for asset in node_package.get("assets", []):
        for impl in asset.get("implementations", []):
            if impl.get("type") == "system":
                continue
            for key in ("assetUri", "descriptorUri"):
                uri = impl.get(key)
                if uri and not store.exists(bucket, f"{storage['BinaryPrefixLocation']}/{uri}"):
                    return f"Asset {asset.get('name')} {key} {uri} not found in package storage"
    return None
