"""package-application end to end: the Panorama test server and moto S3 on 127.0.0.1."""

from __future__ import annotations

import contextlib
import hashlib
import json
import types

import boto3
import pytest

from tests.support.cloud_project import ACCOUNT, make_app, package_folder
from tests.support.project_helpers import make_model_archive, run, snapshot

POLL = ("--poll-interval", "0.1")


def package_app(root, *args):
    return run(root, "package-application", *POLL, "--json", *args)


def ops(server, start=0):
    return [name for name, _ in server.calls[start:]]


def s3_keys(env) -> set[str]:
    s3 = boto3.client("s3", endpoint_url=env.endpoint_url_s3, region_name=env.region)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=env.bucket)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


@pytest.fixture
def cloud(panorama_env, aws_env):
    """panorama_env plus the moto endpoint for S3 checks."""
    return types.SimpleNamespace(
        endpoint_url=panorama_env.endpoint_url,
        endpoint_url_s3=aws_env.endpoint_url,
        bucket=panorama_env.bucket,
        region=panorama_env.region,
        server=panorama_env.server,
    )


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path, packages=2)


def by_name(result):
    assert result.exception is None, result.describe()
    return {p["name"]: p for p in result.json()["packages"]}


def test_first_upload_registers_every_package(app, cloud):
    result = package_app(app)
    assert result.exit_code == 0, result.describe()
    packages = by_name(result)
    assert set(packages) == {"model_0", "model_1"}
    for name, item in packages.items():
        manifest = (app / package_folder(int(name[-1])) / "package.json").read_bytes()
        assert item["patch"] == hashlib.sha256(manifest).hexdigest()
        assert item["status"] == "REGISTER_COMPLETED"
        assert item["uploaded_files"] == 3  # model archive, descriptor, package.json
        assert item["uploaded_bytes"] > 1024
    server = cloud.server
    assert ops(server).count("CreatePackage") == 2
    registers = [p for op, p in server.calls if op == "RegisterPackageVersion"]
    assert {r["PatchVersion"] for r in registers} == {p["patch"] for p in packages.values()}
    assert all(r["MarkLatest"] is True and r["OwnerAccount"] == ACCOUNT for r in registers)
    keys = s3_keys(cloud)
    for item in packages.values():
        assert any(k.endswith(f"/{item['version']}/{item['patch']}.json") for k in keys)
    assets = {p.name for p in (app / "assets").iterdir()}
    assert {k.rsplit("/", 1)[1] for k in keys if "/binaries/" in k} == assets
    assert "deploy --target panorama --device-id" in result.stderr


def test_rerun_with_nothing_changed_sends_nothing(app, cloud):
    assert package_app(app).exit_code == 0
    before = len(cloud.server.calls)
    result = package_app(app)
    assert result.exit_code == 0, result.describe()
    assert {p["status"] for p in by_name(result).values()} == {"UNCHANGED"}
    assert {p["uploaded_bytes"] for p in by_name(result).values()} == {0}
    assert set(ops(cloud.server, before)) == {"DescribePackage", "DescribePackageVersion"}


def test_one_changed_asset_uploads_only_that(app, cloud, tmp_path):
    first = by_name(package_app(app))
    archive = make_model_archive(tmp_path / "new.tar.gz", b"new weights")
    folder = package_folder(0)
    result = run(
        app, "add-raw-model", "--model-asset-name", "model_0_asset", "--model-local-path",
        str(archive), "--descriptor-path", f"{folder}/descriptor.json", "--packages-path", folder,
    )  # fmt: skip
    assert result.exit_code == 0, result.describe()
    before = len(cloud.server.calls)
    result = package_app(app)
    assert result.exit_code == 0, result.describe()
    packages = by_name(result)
    assert packages["model_1"]["status"] == "UNCHANGED"
    changed = packages["model_0"]
    assert changed["status"] == "REGISTER_COMPLETED"
    assert changed["uploaded_files"] == 2  # the new archive and package.json
    assert changed["skipped_files"] == 1  # the descriptor did not change
    assert changed["previous_patch"] == first["model_0"]["patch"]
    assert changed["deregistered_previous"] is True
    deregistered = [p for op, p in cloud.server.calls[before:] if op == "DeregisterPackageVersion"]
    assert [d["PatchVersion"] for d in deregistered] == [first["model_0"]["patch"]]


def test_missing_asset_fails_its_package_only(app, cloud):
    manifest = json.loads((app / package_folder(0) / "package.json").read_text())
    uri = manifest["nodePackage"]["assets"][0]["implementations"][0]["assetUri"]
    (app / "assets" / uri).unlink()
    result = package_app(app)
    assert result.exit_code == 1, result.describe()
    packages = by_name(result)
    assert packages["model_0"]["status"] == "NOT_SENT"
    assert uri in packages["model_0"]["message"]
    assert packages["model_1"]["status"] == "REGISTER_COMPLETED"
    registered = [p["PackageId"] for op, p in cloud.server.calls if op == "RegisterPackageVersion"]
    assert len(registered) == 1
    assert "1 of 2 package(s) not registered" in result.stderr


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("AccessDeniedException", "access denied by AWS (DescribePackage)"),
        ("ExpiredTokenException", "AWS credentials have expired"),
        ("InternalServerException", "DescribePackage failed: InternalServerException"),
    ],
)
def test_describe_errors_other_than_not_found_surface(app, cloud, code, expected):
    cloud.server.inject("DescribePackage", code=code, times=None)
    result = run(app, "package-application", *POLL)
    assert result.exit_code == 1, result.describe()
    assert expected in result.stderr
    assert "CreatePackage" not in ops(cloud.server)
    assert "Traceback" not in result.stderr


def test_throttling_is_retried(app, cloud):
    cloud.server.inject("DescribePackage", code="ThrottlingException", times=2)
    result = package_app(app)
    assert result.exit_code == 0, result.describe()
    assert ops(cloud.server).count("DescribePackage") == 4  # 2 throttled + 1 per package


def test_failed_registration_is_reported(app, cloud):
    cloud.server.set_register_outcome("model_1", "failed", description="Invalid descriptor")
    result = package_app(app)
    assert result.exit_code == 1, result.describe()
    packages = by_name(result)
    assert packages["model_1"]["status"] == "FAILED"
    assert packages["model_1"]["message"] == "Invalid descriptor"
    assert packages["model_0"]["status"] == "REGISTER_COMPLETED"
    assert "Invalid descriptor" in result.stderr


def test_pending_registration_times_out_or_is_left_with_no_wait(app, cloud):
    cloud.server.set_register_outcome("model_0", "pending")
    result = package_app(app, "--timeout", "0.5")
    assert result.exit_code == 1, result.describe()
    assert by_name(result)["model_0"]["status"] == "TIMED_OUT"
    result = package_app(app, "--no-wait")
    assert result.exit_code == 0, result.describe()
    # Already REGISTER_PENDING: left alone, as a second run must not register twice.
    assert {p["status"] for p in by_name(result).values()} == {"UNCHANGED"}


def test_no_wait_does_not_poll(app, cloud):
    result = package_app(app, "--no-wait")
    assert result.exit_code == 0, result.describe()
    assert {p["status"] for p in by_name(result).values()} == {"REGISTER_PENDING"}
    registered_at = ops(cloud.server).index("RegisterPackageVersion")
    assert "DescribePackageVersion" not in ops(cloud.server, registered_at)


def test_packages_path_sends_a_subset(app, cloud):
    result = package_app(app, "--packages-path", package_folder(1))
    assert result.exit_code == 0, result.describe()
    assert set(by_name(result)) == {"model_1"}
    created = [p["PackageName"] for op, p in cloud.server.calls if op == "CreatePackage"]
    assert created == ["model_1"]


def test_graph_naming_a_missing_version_fails_before_any_call(app, cloud):
    graph_path = next((app / "graphs").glob("*/graph.json"))
    graph = json.loads(graph_path.read_text())
    graph["nodeGraph"]["packages"][0]["version"] = "2.0"
    graph_path.write_text(json.dumps(graph, indent=4))
    before = snapshot(app)
    result = run(app, "package-application")
    assert result.exit_code == 1, result.describe()
    assert "graph.json" in result.stderr and "nothing was sent" in result.stderr
    assert cloud.server.calls == []
    assert snapshot(app) == before


def test_no_credentials_is_one_line(app, cloud, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = run(app, "package-application")
    assert result.exit_code == 1
    assert "no AWS credentials found" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2  # the error line and its hint


def test_ctrl_c_during_upload_then_rerun_completes(tmp_path, cloud, monkeypatch):
    root = make_app(tmp_path, packages=2, payload_size=40 * 1024 * 1024)
    import panorama_cli.console as console

    @contextlib.contextmanager
    def interrupting(_description):
        sent = {"bytes": 0}

        def add(_label, _size):
            def advance(n):
                sent["bytes"] += n
                if sent["bytes"] > 8 * 1024 * 1024:
                    raise KeyboardInterrupt

            return advance

        yield add

    original = console.transfers
    monkeypatch.setattr(console, "transfers", interrupting)
    result = run(root, "package-application", *POLL)
    assert result.exit_code == 130, result.describe()
    # says what may have been sent and how to resume, never "nothing was changed"
    assert "requests may already have been sent" in result.stderr
    assert "re-run package-application" in result.stderr
    assert "nothing was changed" not in result.stderr
    assert "RegisterPackageVersion" not in ops(cloud.server)
    s3 = boto3.client("s3", endpoint_url=cloud.endpoint_url_s3, region_name=cloud.region)
    assert s3.list_multipart_uploads(Bucket=cloud.bucket).get("Uploads", []) == []
    monkeypatch.setattr(console, "transfers", original)
    result = package_app(root)
    assert result.exit_code == 0, result.describe()
    assert {p["status"] for p in by_name(result).values()} == {"REGISTER_COMPLETED"}
