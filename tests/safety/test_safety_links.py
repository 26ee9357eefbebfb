"""Issue 8, L1/L3/L4: nothing is read or written through a symlink that may lead out of the
project, and the KVS credentials file defaults to a private folder."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import boto3

from tests.support.cloud_project import make_app, package_folder
from tests.support.project_helpers import run, snapshot


def test_package_application_never_uploads_through_a_symlink(tmp_path: Path, panorama_env, aws_env):
    """L1: an asset that is a symlink (to a file outside the project) is not sent."""
    app = make_app(tmp_path, packages=1)
    data = json.loads((app / package_folder(0) / "package.json").read_text())
    uri = data["nodePackage"]["assets"][0]["implementations"][0]["assetUri"]
    secret = tmp_path / "outside-secret.bin"
    shutil.copyfile(app / "assets" / uri, secret)  # same bytes, so the hash check passes
    (app / "assets" / uri).unlink()
    (app / "assets" / uri).symlink_to(secret)

    result = run(app, "package-application", "--poll-interval", "0.1", "--json")

    assert result.exit_code == 1, result.describe()
    assert "symlink" in result.stdout + result.stderr
    s3 = boto3.client("s3", endpoint_url=aws_env.endpoint_url, region_name=aws_env.region)
    listed = s3.list_objects_v2(Bucket=panorama_env.bucket).get("Contents", [])
    assert not [o["Key"] for o in listed if o["Key"].endswith(uri)]


def test_update_backpack_refuses_a_symlinked_src(tmp_path: Path) -> None:
    """L3: src/ linked to a folder outside the project: --force writes nothing there."""
    account = "123456789012"
    assert run(tmp_path, "init-project", "--name", "p", "--account-id", account).exit_code == 0
    root = tmp_path / "p"
    assert run(root, "create-package", "--name", "code").exit_code == 0
    package = root / "packages" / f"{account}-code-1.0"
    outside = tmp_path / "outside-src"
    shutil.move(package / "src", outside)
    (package / "src").symlink_to(outside)
    before, outside_before = snapshot(root), snapshot(outside)

    result = run(root, "update-backpack", "--package-path", str(package), "--force")

    assert result.exit_code == 1, result.describe()
    assert "symlink" in result.stderr
    assert snapshot(outside) == outside_before and snapshot(root) == before


def test_kvs_credentials_default_to_a_private_folder(aws_env) -> None:
    """L4: no fixed /tmp/credentials.txt: a new 0700 folder, the file 0600."""
    from backpack.kvs_credentials_file import KVSFileCredentialsHandler

    handler = KVSFileCredentialsHandler(duration=900)
    path = handler.credentials_path
    try:
        assert path != Path("/tmp/credentials.txt")
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert handler.sink_properties() == {"credential-path": str(path)}
        other = KVSFileCredentialsHandler(duration=900)
        assert other.credentials_path.parent != path.parent
        shutil.rmtree(other.credentials_path.parent)
    finally:
        shutil.rmtree(path.parent)
