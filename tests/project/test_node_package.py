"""The Package model: name/version from the folder, kind, runtime entry, model descriptor and
archive, asset files; reading never changes the manifest."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from panorama_cli.project.node_kinds import NodeKind
from panorama_cli.project.node_package import ModelDescriptor, ModelInput, Package, RuntimeEntry
from panorama_cli.project.project import Project
from tests.support.paths import APPS
from tests.support.shared import require

ACCOUNT = "111122223333"


def write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4) + "\n")
    return path


def package(root: Path, folder: str, body: dict, descriptor: dict | None = None) -> Package:
    path = root / "packages" / folder
    write(path / "package.json", {"nodePackage": {"envelopeVersion": "2021-01-01", **body}})
    if descriptor is not None:
        write(path / "descriptor.json", descriptor)
    return Project(root).load_package(path)


def one_package(
    root: Path, name: str, interfaces: list[dict], descriptor: dict | None = None
) -> Package:
    """Package ``name`` version 1.0 of ACCOUNT (folder and package.json agree)."""
    return package(
        root,
        f"{ACCOUNT}-{name}-1.0",
        {"name": name, "version": "1.0", "interfaces": interfaces},
        descriptor,
    )


def test_official_sample_packages(tmp_path):
    require(APPS / "aws-panorama-sample")
    root = tmp_path / "app"
    shutil.copytree(APPS / "aws-panorama-sample", root)
    project = Project(root)
    code = project.load_package(project.packages_dir / "123456789012-SAMPLE_CODE-1.0")
    model = project.load_package(project.packages_dir / "123456789012-SQUEEZENET_PYTORCH-1.0")
    assert code.kind == NodeKind.BUSINESS_LOGIC and model.kind == NodeKind.MODEL
    assert code.runtime_entry == RuntimeEntry("python3", "/panorama/application.py")
    assert code.model_descriptor is None and model.runtime_entry is None
    assert model.model_descriptor == ModelDescriptor(
        "PYTORCH", (ModelInput("data", (1, 3, 224, 224)),), "FP16"
    )
    digest = "fd1aef48acc3350a5c2673adacffab06af54c3f14da6fe4a8be24cac687a386e"
    assert model.model_asset() == (project.assets_dir / f"{digest}.tar.gz", digest)
    assert model.asset_uris() == [
        f"{digest}.tar.gz",
        "82b31405c50044128c67380afc768ec84c507394b9f9dfac031aad15ad9ad71d.json",
    ]
    assert code.model_asset() is None and code.asset_uris() == []


def test_descriptor_from_assets_when_the_folder_has_none(tmp_path):
    """An imported model package may hold only package.json: its descriptorUri is read."""
    descriptor = {
        "mlModelDescriptor": {
            "envelopeVersion": "2021-01-01",
            "framework": "ONNX",
            "inputs": [{"name": "images", "shape": [1, 3, 416, 416]}],
        }
    }
    raw = json.dumps(descriptor).encode()
    digest = hashlib.sha256(raw).hexdigest()
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / f"{digest}.json").write_bytes(raw)
    impl = {"type": "model", "assetUri": "a.tar.gz", "descriptorUri": f"{digest}.json"}
    found = package(
        tmp_path,
        f"{ACCOUNT}-yolox-1.0",
        {
            "name": "yolox",
            "version": "1.0",
            "assets": [{"name": "m", "implementations": [impl]}],
            "interfaces": [{"name": "i", "category": "ml_model", "asset": "m"}],
        },
    )
    assert found.kind == NodeKind.MODEL
    assert found.model_descriptor == ModelDescriptor(
        "ONNX", (ModelInput("images", (1, 3, 416, 416)),)
    )


def test_kind_from_the_interface_category_and_a_bash_entry(tmp_path):
    camera = one_package(tmp_path, "cam", [{"name": "c", "category": "media_source"}])
    assert camera.kind == NodeKind.CAMERA and camera.runtime_entry is None
    runtime = {
        "runtimeDescriptor": {
            "envelopeVersion": "2021-01-01",
            "entry": {"path": "bash", "name": "/panorama/run.sh"},
        }
    }
    logic = one_package(tmp_path, "logic", [{"name": "l", "category": "business_logic"}], runtime)
    assert logic.runtime_entry == RuntimeEntry("bash", "/panorama/run.sh")
    unknown = one_package(tmp_path, "x", [])
    assert unknown.kind == NodeKind.UNKNOWN


def test_reading_never_changes_the_manifest_and_writers_are_explicit(tmp_path):
    found = one_package(tmp_path, "cam", [{"name": "c", "category": "media_source"}])
    before = json.dumps(found.data)
    assert found.assets() == [] and found.asset("x") is None and found.interface("nope") is None
    assert found.kind and found.model_asset() is None and found.asset_uris() == []
    assert json.dumps(found.data) == before and "assets" not in found.body
    found.add_asset({"name": "a", "implementations": []})
    found.add_interface({"name": "i2", "category": "media_source"})
    assert found.asset("a") is not None and found.interface("i2") is not None


def test_name_and_version_from_the_folder_when_package_json_omits_them(tmp_path):
    found = package(
        tmp_path,
        f"{ACCOUNT}-CAMERA_A-1.0",
        {"interfaces": [{"name": "c", "category": "media_source"}]},
    )
    assert (found.name, found.version, found.account) == ("CAMERA_A", "1.0", ACCOUNT)
    assert found.names_from_folder
    odd = package(tmp_path, "camera", {"interfaces": [{"name": "c", "category": "media_source"}]})
    assert (odd.name, odd.version, odd.account) == ("", "", None)
    named = package(tmp_path, "x-y-z", {"name": "n", "version": "2.0", "interfaces": []})
    assert (named.name, named.version, named.account, named.names_from_folder) == (
        "n",
        "2.0",
        None,
        False,
    )
