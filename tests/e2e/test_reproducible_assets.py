"""Container assets are reproducible and a rebuild that changes nothing costs nothing.

Real Docker engine, the tests' local base image, the real CLI: the same image exported twice
gives the same asset bytes (sha256); a rebuild with the same image id skips the export and
leaves package.json untouched (bytes and mtime); a code change gives a new asset and the
superseded image is removed (no dangling images).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import docker
import pytest

from tests.support.cli_runner import run_cli

pytestmark = pytest.mark.docker
ACCOUNT = "123456789012"


@pytest.fixture
def project(tmp_path, base_image_amd64, monkeypatch):
    monkeypatch.setenv("PANORAMA_CLI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PANORAMA_ACCOUNT_ID", ACCOUNT)
    assert run_cli(["init-project", "--name", "app"], cwd=tmp_path).exit_code == 0
    root = tmp_path / "app"
    made = run_cli(["create-package", "--name", "code", "--no-backpack"], cwd=root)
    assert made.exit_code == 0, made.describe()
    app = root / "packages" / f"{ACCOUNT}-code-1.0" / "src" / "app.py"
    app.write_text(app.read_text() + f"\n# {secrets.token_hex(8)}\n")  # an image of its own
    return root


def build(root: Path, base: str) -> dict:
    result = run_cli(
        ["build-container", "--container-asset-name", "code", "--package-path",
         f"packages/{ACCOUNT}-code-1.0", "--platform", "linux/amd64", "--base-image", base,
         "--json"],
        cwd=root,
    )  # fmt: skip
    assert result.exit_code == 0, result.describe()
    data: dict = json.loads(result.stdout)
    data["stderr"] = result.stderr
    return data


def test_rebuild_with_nothing_changed_skips_the_export(project, base_image_amd64, docker_client):
    package_json = project / "packages" / f"{ACCOUNT}-code-1.0" / "package.json"
    first = build(project, base_image_amd64)
    assert first["unchanged"] is False
    before = (package_json.read_bytes(), package_json.stat().st_mtime_ns)
    assets = sorted(p.name for p in (project / "assets").iterdir())
    second = build(project, base_image_amd64)
    assert second["unchanged"] is True and "is current" in second["stderr"]
    assert "export code" not in second["stderr"]
    assert second["assetUri"] == first["assetUri"]
    assert (package_json.read_bytes(), package_json.stat().st_mtime_ns) == before
    assert sorted(p.name for p in (project / "assets").iterdir()) == assets
    # the same image exported again (a new container, later) gives the same bytes
    image = docker_client.images.get(first["image"]).id
    exported = run_cli(
        ["export-container", "--container-asset-name", "code", "--container-image-uri", image,
         "--package-path", f"packages/{ACCOUNT}-code-1.0", "--json"],
        cwd=project,
    )  # fmt: skip
    assert exported.exit_code == 0, exported.describe()
    assert json.loads(exported.stdout)["assetUri"] == first["assetUri"]


def test_code_change_gives_a_new_asset_and_removes_the_superseded_image(
    project, base_image_amd64, docker_client
):
    first = build(project, base_image_amd64)
    old_id = docker_client.images.get(first["image"]).id
    app = project / "packages" / f"{ACCOUNT}-code-1.0" / "src" / "app.py"
    app.write_text(app.read_text() + "\n# changed\n")
    second = build(project, base_image_amd64)
    assert second["unchanged"] is False and second["assetUri"] != first["assetUri"]
    assert not (project / "assets" / first["assetUri"]).exists()  # superseded asset removed
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(old_id)
    assert docker_client.images.get(second["image"]).id != old_id
