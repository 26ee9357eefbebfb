"""The Panorama test server, through real boto3 clients (make_session/make_client) over HTTP."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from typing import Any

import botocore.config
import botocore.exceptions
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from panorama_cli.cloud.aws.session import make_client, make_session, translate_client_error
from tests.support.panorama_fixtures import PanoramaEnv

PATCH_1, PATCH_2, PATCH_3 = "a" * 64, "b" * 64, "c" * 64


@pytest.fixture(autouse=True)
def no_emulator_bugs(panorama_server):
    """Every test also fails if the server hit an internal error (a 500 it did not mean)."""
    yield
    assert panorama_server.internal_errors == []


@pytest.fixture
def client(panorama_env: PanoramaEnv) -> Any:
    """A panorama client exactly as panorama-cli makes it (standard retries, env endpoint)."""
    return make_client(make_session(), "panorama")


@pytest.fixture
def s3(panorama_env: PanoramaEnv) -> Any:
    return make_client(make_session(), "s3")


def error_of(excinfo: pytest.ExceptionInfo) -> tuple[str, int, str]:
    """(Code, HTTP status, Message) of a ClientError."""
    response = excinfo.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


def upload_manifest(s3: Any, storage: dict[str, str], name: str, version: str, patch: str,
                    assets: list[dict[str, Any]] | None = None) -> None:  # fmt: skip
    """Put a package.json where Panorama reads it on registration."""
    manifest = {"nodePackage": {"name": name, "version": version, "assets": assets or []}}
    key = f"{storage['ManifestPrefixLocation']}/{version}/{patch}.json"
    s3.put_object(Bucket=storage["Bucket"], Key=key, Body=json.dumps(manifest).encode())


def create_and_register(client: Any, s3: Any, name: str, patches: list[str], **kw: Any) -> str:
    """Create package ``name`` and register ``patches`` of version 1.0; returns the id."""
    created = client.create_package(PackageName=name)
    for patch in patches:
        upload_manifest(s3, created["StorageLocation"], name, "1.0", patch)
        client.register_package_version(
            PackageId=created["PackageId"], PackageVersion="1.0", PatchVersion=patch, **kw
        )
    return created["PackageId"]


def status(client: Any, name: str, patch: str | None = None) -> dict[str, Any]:
    extra = {"PatchVersion": patch} if patch else {}
    return client.describe_package_version(
        PackageId=f"packageName/{name}", PackageVersion="1.0", **extra
    )


def signed_request(env: PanoramaEnv, method: str, path: str, body: bytes = b"",
                   sign: bool = True) -> tuple[int, dict[str, str], dict[str, Any]]:  # fmt: skip
    """Send a raw (optionally SigV4-signed) request; (status, headers, JSON body)."""
    request = AWSRequest(
        method=method, url=env.endpoint_url + path, data=body,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    if sign:
        SigV4Auth(Credentials("testing", "testing"), "panorama", env.region).add_auth(request)
    prepared = request.prepare()
    raw = urllib.request.Request(
        prepared.url, data=body or None, method=method, headers=dict(prepared.headers)
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(raw, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


# -- packages ------------------------------------------------------------------------------


def test_create_then_describe_by_id_and_by_package_name(client, panorama_env):
    created = client.create_package(PackageName="people_counter", Tags={"team": "cv"})
    package_id = created["PackageId"]
    assert re.fullmatch(r"package-[a-z0-9]{26}", package_id)
    account, region = panorama_env.account_id, panorama_env.region
    assert created["Arn"] == f"arn:aws:panorama:{region}:{account}:package/{package_id}"
    root = f"{account}/nodePackages/{package_id}"
    assert created["StorageLocation"] == {
        "Bucket": "panorama-test-storage",
        "RepoPrefixLocation": root,
        "GeneratedPrefixLocation": f"{root}/generated",
        "BinaryPrefixLocation": f"{root}/binaries",
        "ManifestPrefixLocation": f"{root}/manifests",
    }
    by_name = client.describe_package(PackageId="packageName/people_counter")
    by_id = client.describe_package(PackageId=package_id)
    for described in (by_name, by_id):
        assert described["PackageId"] == package_id
        assert described["PackageName"] == "people_counter"
        assert described["Tags"] == {"team": "cv"}
        assert described["StorageLocation"] == created["StorageLocation"]
        assert described["ReadAccessPrincipalArns"] == []
        assert isinstance(described["CreatedTime"], datetime)
        assert abs(described["CreatedTime"].timestamp() - time.time()) < 60


def test_same_name_twice_is_conflict_and_unknown_is_not_found(client):
    client.create_package(PackageName="dup")
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        client.create_package(PackageName="dup")
    assert error_of(excinfo) == ("ConflictException", 409, "Package with same name exists")
    with pytest.raises(client.exceptions.ResourceNotFoundException) as excinfo:
        client.describe_package(PackageId="packageName/missing")
    assert error_of(excinfo)[:2] == ("ResourceNotFoundException", 404)


def test_list_packages_paginates(client):
    for i in range(5):
        client.create_package(PackageName=f"pkg{i}")
    pages = list(client.get_paginator("list_packages").paginate(PaginationConfig={"PageSize": 2}))
    assert [len(page["Packages"]) for page in pages] == [2, 2, 1]
    names = [p["PackageName"] for page in pages for p in page["Packages"]]
    assert names == [f"pkg{i}" for i in range(5)]
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        client.list_packages(NextToken="not-a-token")
    assert error_of(excinfo)[:2] == ("ValidationException", 400)


# -- package versions ----------------------------------------------------------------------


def test_register_is_pending_then_completed(client, s3, panorama_env):
    package_id = create_and_register(client, s3, "pkg", [PATCH_1], MarkLatest=True)
    first = status(client, "pkg", PATCH_1)
    assert first["Status"] == "REGISTER_PENDING"
    second = status(client, "pkg")  # no PatchVersion: the latest patch
    assert second["Status"] == "REGISTER_COMPLETED"
    assert second["PatchVersion"] == PATCH_1 and second["IsLatestPatch"] is True
    assert second["PackageId"] == package_id and second["PackageName"] == "pkg"
    assert second["OwnerAccount"] == panorama_env.account_id
    assert second["PackageArn"].endswith(f":package/{package_id}")
    assert isinstance(second["RegisteredTime"], datetime)
    assert "StatusDescription" not in second


def test_failed_outcome_has_status_description(client, s3, panorama_server):
    panorama_server.set_register_outcome("pkg", "failed", "Descriptor is invalid")
    create_and_register(client, s3, "pkg", [PATCH_1], MarkLatest=True)
    assert status(client, "pkg")["Status"] == "REGISTER_PENDING"
    failed = status(client, "pkg")
    assert (failed["Status"], failed["StatusDescription"]) == ("FAILED", "Descriptor is invalid")
    # A FAILED patch may be registered again; it is pending anew.
    panorama_server.set_register_outcome("pkg", "completed")
    client.register_package_version(
        PackageId="packageName/pkg", PackageVersion="1.0", PatchVersion=PATCH_1, MarkLatest=True
    )
    assert [status(client, "pkg")["Status"] for _ in range(2)] == [
        "REGISTER_PENDING",
        "REGISTER_COMPLETED",
    ]


def test_pending_outcome_stays_pending_and_pending_polls_is_configurable(
    client, s3, panorama_server
):
    panorama_server.set_register_outcome("slow", "pending")
    create_and_register(client, s3, "slow", [PATCH_1], MarkLatest=True)
    assert {status(client, "slow")["Status"] for _ in range(6)} == {"REGISTER_PENDING"}
    panorama_server.state.pending_polls = 0
    create_and_register(client, s3, "quick", [PATCH_1], MarkLatest=True)
    assert status(client, "quick")["Status"] == "REGISTER_COMPLETED"


def test_registering_the_same_patch_twice_is_conflict(client, s3):
    package_id = create_and_register(client, s3, "pkg", [PATCH_1], MarkLatest=True)
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        client.register_package_version(
            PackageId=package_id, PackageVersion="1.0", PatchVersion=PATCH_1, MarkLatest=True
        )
    assert error_of(excinfo)[:2] == ("ConflictException", 409)


def test_mark_latest_moves_is_latest_patch(client, s3):
    create_and_register(client, s3, "pkg", [PATCH_1, PATCH_2], MarkLatest=True)
    assert status(client, "pkg", PATCH_1)["IsLatestPatch"] is False
    assert status(client, "pkg")["PatchVersion"] == PATCH_2
    create_and_register(client, s3, "other", [PATCH_1], MarkLatest=False)
    assert status(client, "other")["PatchVersion"] == PATCH_1  # first patch: latest anyway
    storage = client.describe_package(PackageId="packageName/pkg")["StorageLocation"]
    upload_manifest(s3, storage, "pkg", "1.0", PATCH_3)
    client.register_package_version(
        PackageId="packageName/pkg", PackageVersion="1.0", PatchVersion=PATCH_3, MarkLatest=False
    )
    assert status(client, "pkg")["PatchVersion"] == PATCH_2
    assert status(client, "pkg", PATCH_3)["IsLatestPatch"] is False


def test_deregister_removes_the_patch(client, s3):
    package_id = create_and_register(client, s3, "pkg", [PATCH_1, PATCH_2], MarkLatest=True)
    client.deregister_package_version(
        PackageId=package_id, PackageVersion="1.0", PatchVersion=PATCH_1
    )
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        status(client, "pkg", PATCH_1)
    assert status(client, "pkg")["PatchVersion"] == PATCH_2
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.deregister_package_version(
            PackageId=package_id, PackageVersion="1.0", PatchVersion=PATCH_1
        )
    client.deregister_package_version(
        PackageId=package_id, PackageVersion="1.0", PatchVersion=PATCH_2
    )
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        status(client, "pkg")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_package_version(PackageId=package_id, PackageVersion="2.0")


def test_registration_fails_when_uploads_are_missing(client, s3, panorama_env):
    created = client.create_package(PackageName="pkg")
    storage, package_id = created["StorageLocation"], created["PackageId"]
    panorama_env.server.state.pending_polls = 0

    def register(patch: str) -> dict[str, Any]:
        client.register_package_version(
            PackageId=package_id, PackageVersion="1.0", PatchVersion=patch, MarkLatest=True
        )
        return status(client, "pkg", patch)

    no_manifest = register(PATCH_1)
    assert no_manifest["Status"] == "FAILED"
    assert no_manifest["StatusDescription"].startswith("Manifest not found: s3://")
    asset = {"name": "code", "implementations": [
        {"type": "container", "assetUri": "abc.tar.gz", "descriptorUri": "def.json"}
    ]}  # fmt: skip
    camera = {"name": "cam", "implementations": [{"type": "system", "assetUri": "rtsp"}]}
    upload_manifest(s3, storage, "pkg", "1.0", PATCH_2, [asset, camera])
    s3.put_object(Bucket=storage["Bucket"], Key=f"{storage['BinaryPrefixLocation']}/abc.tar.gz")
    no_descriptor = register(PATCH_2)
    assert no_descriptor["Status"] == "FAILED"
    assert "descriptorUri def.json" in no_descriptor["StatusDescription"]
    upload_manifest(s3, storage, "pkg", "1.0", PATCH_3, [asset, camera])
    s3.put_object(Bucket=storage["Bucket"], Key=f"{storage['BinaryPrefixLocation']}/def.json")
    assert register(PATCH_3)["Status"] == "REGISTER_COMPLETED"


# -- request validation and auth -----------------------------------------------------------


def test_invalid_requests_are_validation_exceptions(panorama_env, panorama_server):
    config = botocore.config.Config(parameter_validation=False, retries={"mode": "standard"})
    unchecked = make_session().client("panorama", config=config)
    created = unchecked.create_package(PackageName="pkg")
    cases = [
        (unchecked.register_package_version,
         dict(PackageId=created["PackageId"], PackageVersion="1.0", PatchVersion=""),
         "PatchVersion"),
        (unchecked.describe_package_version,
         dict(PackageId=created["PackageId"], PackageVersion="one"), "pattern"),
        (unchecked.create_package, dict(PackageName="bad.name"), "pattern"),
        (unchecked.list_application_instances, dict(MaxResults=26), "less than or equal to 25"),
        (unchecked.list_application_instances, dict(StatusFilter="RUNNING"), "must be one of"),
    ]  # fmt: skip
    for method, params, expected in cases:
        with pytest.raises(botocore.exceptions.ClientError) as excinfo:
            method(**params)
        code, http_status, message = error_of(excinfo)
        assert (code, http_status) == ("ValidationException", 400), params
        assert expected in message, (params, message)
    assert panorama_server.calls_to("RegisterPackageVersion")[0]["PatchVersion"] == ""


def test_raw_request_is_validated_with_botocores_report(panorama_env):
    body = json.dumps({"PackageName": 5, "Colour": "red"}).encode()
    code, headers, payload = signed_request(panorama_env, "POST", "/packages", body)
    assert code == 400 and headers["x-amzn-ErrorType"] == "ValidationException"
    assert 'Unknown parameter in input: "Colour"' in payload["Message"]
    assert "Invalid type for parameter PackageName" in payload["message"]
    code, _, payload = signed_request(panorama_env, "POST", "/packages", b"{not json")
    assert (code, payload["Reason"]) == (400, "CANNOT_PARSE")
    code, _, payload = signed_request(panorama_env, "GET", "/no/such/operation")
    assert (code, payload["Reason"]) == (400, "UNKNOWN_OPERATION")


def test_request_without_sigv4_is_403(panorama_env, panorama_server):
    code, headers, payload = signed_request(panorama_env, "GET", "/packages", sign=False)
    assert code == 403
    assert headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert payload["message"] == "Missing Authentication Token"
    config = botocore.config.Config(signature_version=botocore.UNSIGNED)
    unsigned = make_session().client("panorama", config=config)
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        unsigned.list_packages()
    assert error_of(excinfo)[:2] == ("MissingAuthenticationTokenException", 403)
    assert panorama_server.calls == []  # rejected before it reached the service


def test_credentials_scoped_to_another_region_are_rejected(panorama_env):
    other = make_client(make_session(region="eu-west-1"), "panorama")
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        other.list_packages()
    assert error_of(excinfo)[:2] == ("InvalidSignatureException", 403)


def test_panorama_endpoint_variable_wins_over_aws_endpoint_url(panorama_env, aws_env):
    session = make_session()
    assert make_client(session, "panorama").meta.endpoint_url == panorama_env.endpoint_url
    assert make_client(session, "s3").meta.endpoint_url == aws_env.endpoint_url


# -- failure injection ---------------------------------------------------------------------


def test_injected_access_denied_then_normal_again(client, panorama_server):
    panorama_server.inject("DescribePackage", "AccessDeniedException")
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        client.describe_package(PackageId="packageName/pkg")
    code, http_status, message = error_of(excinfo)
    assert (code, http_status) == ("AccessDeniedException", 403)
    assert "not authorized to perform: panorama:DescribePackage" in message
    assert "access denied" in translate_client_error(excinfo.value).message
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_package(PackageId="packageName/pkg")


def test_throttle_once_is_retried_by_standard_mode(client, panorama_server):
    panorama_server.inject("ListPackages", "ThrottlingException", times=1)
    response = client.list_packages()
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert [name for name, _ in panorama_server.calls] == ["ListPackages", "ListPackages"]


def test_throttle_forever_surfaces_after_max_attempts(client, panorama_server, monkeypatch):
    panorama_server.inject("ListPackages", "ThrottlingException", times=None)
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        client.list_packages()
    assert error_of(excinfo) == ("ThrottlingException", 429, "Rate exceeded")
    assert len(panorama_server.calls_to("ListPackages")) == 3  # standard mode: 3 attempts


def test_injected_status_comes_from_the_model_or_the_caller(client, panorama_server):
    device = panorama_server.add_device()
    panorama_server.inject("CreateApplicationInstance", "ServiceQuotaExceededException")
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        client.create_application_instance(
            DefaultRuntimeContextDevice=device, ManifestPayload={"PayloadData": "{}"}
        )
    assert error_of(excinfo)[:2] == ("ServiceQuotaExceededException", 402)
    panorama_server.inject(
        "DescribeDevice", "ExpiredTokenException", message="The security token has expired"
    )
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        client.describe_device(DeviceId=device)
    assert error_of(excinfo) == ("ExpiredTokenException", 403, "The security token has expired")
    assert translate_client_error(excinfo.value).message == "AWS credentials have expired"
    panorama_server.inject("DescribeDevice", "Teapot", status=418, times=2)
    for _ in range(2):
        with pytest.raises(botocore.exceptions.ClientError) as excinfo:
            client.describe_device(DeviceId=device)
        assert error_of(excinfo)[:2] == ("Teapot", 418)
    assert client.describe_device(DeviceId=device)["DeviceId"] == device
    with pytest.raises(ValueError, match="unknown operation"):
        panorama_server.inject("DescribeNode")


def test_delay_slows_an_operation_and_reset_releases_it(panorama_env, panorama_server):
    panorama_server.delay("ListPackages", 0.3)
    client = make_client(make_session(), "panorama")
    started = time.monotonic()
    client.list_packages()
    assert time.monotonic() - started >= 0.3
    panorama_server.delay("ListPackages", 30)
    config = botocore.config.Config(read_timeout=0.5, retries={"total_max_attempts": 1})
    impatient = make_session().client("panorama", config=config)
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        impatient.list_packages()
    started = time.monotonic()
    panorama_server.reset()  # releases the request still held by the server
    client.list_packages()
    assert time.monotonic() - started < 5


# -- devices and application instances ----------------------------------------------------


def test_describe_device(client, panorama_server):
    device = panorama_server.add_device(name="lobby", Description="front door", Tags={"a": "b"})
    assert re.fullmatch(r"device-[a-z0-9]{26}", device)
    described = client.describe_device(DeviceId=device)
    assert described["Name"] == "lobby" and described["Description"] == "front door"
    assert described["DeviceConnectionStatus"] == "ONLINE" and described["Tags"] == {"a": "b"}
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_device(DeviceId="device-unknown")
    with pytest.raises(ValueError, match="Colour"):
        panorama_server.add_device(Colour="red")


def deploy(client: Any, device: str, name: str = "app", **kw: Any) -> str:
    graph = {"nodeGraph": {"envelopeVersion": "2021-01-01", "packages": [], "nodes": []}}
    return client.create_application_instance(
        Name=name, Description="my app", DefaultRuntimeContextDevice=device,
        ManifestPayload={"PayloadData": json.dumps(graph)}, Tags={"k": "v"}, **kw,
    )["ApplicationInstanceId"]  # fmt: skip


def test_deployment_progresses_to_succeeded(client, panorama_server, panorama_env):
    device = panorama_server.add_device(name="my_panorama")
    instance_id = deploy(client, device)
    assert re.fullmatch(r"applicationInstance-[a-z0-9]{26}", instance_id)
    seen = [client.describe_application_instance(ApplicationInstanceId=instance_id)
            for _ in range(4)]  # fmt: skip
    assert [d["Status"] for d in seen] == [
        "DEPLOYMENT_PENDING", "DEPLOYMENT_IN_PROGRESS", "DEPLOYMENT_SUCCEEDED",
        "DEPLOYMENT_SUCCEEDED",
    ]  # fmt: skip
    final = seen[-1]
    assert final["HealthStatus"] == "RUNNING"
    assert (final["Name"], final["Description"], final["Tags"]) == ("app", "my app", {"k": "v"})
    assert final["DefaultRuntimeContextDevice"] == device
    assert final["DefaultRuntimeContextDeviceName"] == "my_panorama"
    assert final["Arn"].startswith(f"arn:aws:panorama:{panorama_env.region}:")
    assert isinstance(final["CreatedTime"], datetime)
    sent = panorama_server.state.instances[instance_id].manifest
    assert json.loads(sent)["nodeGraph"]["envelopeVersion"] == "2021-01-01"


def test_list_calls_also_advance_the_deployment(client, panorama_server):
    device = panorama_server.add_device()
    deploy(client, device)
    deploy(client, device, name="app2")
    paginator = client.get_paginator("list_application_instances")
    statuses = []
    for _ in range(3):  # one listing of two pages is one observation
        pages = list(paginator.paginate(PaginationConfig={"PageSize": 1}))
        assert len(pages) == 2
        statuses.append({p["ApplicationInstances"][0]["Status"] for p in pages})
    assert statuses == [
        {"DEPLOYMENT_PENDING"}, {"DEPLOYMENT_IN_PROGRESS"}, {"DEPLOYMENT_SUCCEEDED"},
    ]  # fmt: skip


def test_failed_deploy_outcome(client, panorama_server):
    panorama_server.set_deploy_outcome("broken", "failed", "Camera stream unreachable")
    device = panorama_server.add_device()
    instance_id = deploy(client, device, name="broken")
    for _ in range(3):
        final = client.describe_application_instance(ApplicationInstanceId=instance_id)
    assert final["Status"] == "DEPLOYMENT_FAILED"
    assert final["StatusDescription"] == "Camera stream unreachable"
    failed = client.list_application_instances(StatusFilter="DEPLOYMENT_FAILED")
    assert [i["ApplicationInstanceId"] for i in failed["ApplicationInstances"]] == [instance_id]


def test_create_application_instance_rejects_bad_input(client, panorama_server):
    device = panorama_server.add_device()
    bad = [
        {"DefaultRuntimeContextDevice": device, "ManifestPayload": {"PayloadData": "{nope"}},
        # The model's pattern ^.+$ does not match line breaks: payloads must be one line.
        {"DefaultRuntimeContextDevice": device, "ManifestPayload": {"PayloadData": '{\n"a": 1}'}},
        {"DefaultRuntimeContextDevice": device,
         "ManifestPayload": {"PayloadData": json.dumps({"x": "y" * 51200})}},
        {"DefaultRuntimeContextDevice": device, "ManifestPayload": {"PayloadData": "{}"},
         "ManifestOverridesPayload": {"PayloadData": "not json"}},
        {"DefaultRuntimeContextDevice": "device-unknown", "ManifestPayload": {"PayloadData": "{}"}},
    ]  # fmt: skip
    for params in bad:
        with pytest.raises(botocore.exceptions.ClientError) as excinfo:
            client.create_application_instance(**params)
        assert error_of(excinfo)[:2] == ("ValidationException", 400)
    assert panorama_server.state.instances == {}


def test_remove_and_replace_application_instances(client, panorama_server):
    device = panorama_server.add_device()
    first = deploy(client, device)
    second = deploy(client, device, ApplicationInstanceIdToReplace=first)
    described = client.describe_application_instance(ApplicationInstanceId=second)
    assert described["ApplicationInstanceIdToReplace"] == first
    replaced = client.describe_application_instance(ApplicationInstanceId=first)
    assert replaced["Status"] == "REMOVAL_PENDING"
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        client.remove_application_instance(ApplicationInstanceId=first)
    assert error_of(excinfo)[:2] == ("ConflictException", 409)
    client.remove_application_instance(ApplicationInstanceId=second)

    def listed(status_filter: str) -> set[str]:
        page = client.list_application_instances(StatusFilter=status_filter)
        return {i["ApplicationInstanceId"] for i in page["ApplicationInstances"]}

    assert listed("PROCESSING_REMOVAL") == {first, second}  # IN_PROGRESS and PENDING
    assert listed("REMOVAL_SUCCEEDED") == {first}  # its 3rd look; second: IN_PROGRESS
    assert listed("REMOVAL_SUCCEEDED") == {first, second}
    assert listed("DEPLOYMENT_SUCCEEDED") == set()
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.remove_application_instance(ApplicationInstanceId="applicationInstance-nope")


def test_list_application_instances_paginates_and_filters(client, panorama_server):
    lobby, dock = panorama_server.add_device(name="lobby"), panorama_server.add_device(name="dock")
    ids = [
        panorama_server.add_application_instance(Name=f"app{i}", DefaultRuntimeContextDevice=lobby)
        for i in range(5)
    ]
    panorama_server.add_application_instance(
        Name="dock_app", DefaultRuntimeContextDevice=dock, Status="DEPLOYMENT_FAILED",
        HealthStatus="NOT_AVAILABLE",
    )  # fmt: skip
    paginator = client.get_paginator("list_application_instances")
    pages = list(paginator.paginate(DeviceId=lobby, PaginationConfig={"PageSize": 2}))
    assert [len(page["ApplicationInstances"]) for page in pages] == [2, 2, 1]
    assert [i["ApplicationInstanceId"] for p in pages for i in p["ApplicationInstances"]] == ids
    everything = paginator.paginate().build_full_result()["ApplicationInstances"]
    assert len(everything) == 6
    succeeded = client.list_application_instances(StatusFilter="DEPLOYMENT_SUCCEEDED")
    assert len(succeeded["ApplicationInstances"]) == 5
    failed = client.list_application_instances(StatusFilter="DEPLOYMENT_FAILED")
    assert [i["Name"] for i in failed["ApplicationInstances"]] == ["dock_app"]


def test_seeded_instance_for_autoidentity(client, panorama_server):
    device = panorama_server.add_device("device-0123456789abcdefghijklmn", name="my_panorama")
    created = datetime(2022, 2, 17, 16, 38, 5, 510000, tzinfo=timezone.utc)
    instance_id = panorama_server.add_application_instance(
        ApplicationInstanceId="applicationInstance-0123456789abcdefghijklmn",
        Name="sample_app", Description="Sample application description", Tags={"foo": "bar"},
        DefaultRuntimeContextDevice=device, CreatedTime=created,
    )  # fmt: skip
    listed = client.list_application_instances()["ApplicationInstances"]
    assert len(listed) == 1
    item = listed[0]
    assert (
        item["ApplicationInstanceId"]
        == instance_id
        == ("applicationInstance-0123456789abcdefghijklmn")
    )
    assert (item["Name"], item["Description"], item["Tags"]) == (
        "sample_app", "Sample application description", {"foo": "bar"},
    )  # fmt: skip
    assert (item["DefaultRuntimeContextDevice"], item["DefaultRuntimeContextDeviceName"]) == (
        device, "my_panorama",
    )  # fmt: skip
    assert (item["Status"], item["HealthStatus"]) == ("DEPLOYMENT_SUCCEEDED", "RUNNING")
    assert item["CreatedTime"] == created
    for _ in range(3):  # seeded instances never change
        described = client.describe_application_instance(ApplicationInstanceId=instance_id)
    assert described["Status"] == "DEPLOYMENT_SUCCEEDED"
    with pytest.raises(ValueError, match="Colour"):
        panorama_server.add_application_instance(Colour="red")


# -- observability and concurrency ----------------------------------------------------------


def test_calls_record_params_and_reset_clears_everything(client, panorama_server):
    client.create_package(PackageName="pkg", Tags={"a": "b"})
    client.describe_package(PackageId="packageName/pkg")
    assert panorama_server.calls == [
        ("CreatePackage", {"PackageName": "pkg", "Tags": {"a": "b"}}),
        ("DescribePackage", {"PackageId": "packageName/pkg"}),
    ]
    panorama_server.inject("ListPackages", times=None)
    panorama_server.reset()
    assert panorama_server.calls == []
    assert client.list_packages()["Packages"] == []  # state and injection are gone


def test_concurrent_clients(panorama_env, panorama_server):
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            client = make_client(make_session(), "panorama")
            for i in range(5):
                client.create_package(PackageName=f"t{n}_{i}")
                client.describe_package(PackageId=f"packageName/t{n}_{i}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    ids = {p.package_id for p in panorama_server.state.packages}
    assert len(ids) == 30
