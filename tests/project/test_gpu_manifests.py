"""GPU manifests: a container implementation whose ``hardware_access`` requirement lists the GPU
as ``nvAccelerators`` (the official GPU samples' package.json, e.g. people_counter_opengpu)
passes validate, import-application and package-application's plan, as
``inferenceAccelerators`` (the official schema's key) does; a requirement with neither key is
one clear problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from panorama_cli.cloud.package_plan import plan
from panorama_cli.project.project import Project
from tests.project.test_real_apps import copy_app, validate, write
from tests.support import official
from tests.support.project_helpers import load, run

CODE = "123456789012-SAMPLE_CODE-1.0"
#: The requirement exactly as the official people_counter_opengpu sample writes it.
GPU = {"deviceType": "nvhost_gpu", "sharedResourcePolicy": {"policy": "allow_all"}}


def _with_requirement(root: Path, requirement: dict) -> Path:
    path = root / "packages" / CODE / "package.json"
    data = load(path)
    data["nodePackage"]["assets"] = [
        {
            "name": "code_asset",
            "implementations": [
                {
                    "type": "container",
                    "assetUri": "0d4ceaa1.tar.gz",
                    "descriptorUri": "065e00e2.json",
                    "requirements": [requirement],
                }
            ],
        }
    ]
    return write(path, data)


def _about_requirements(problems: list[dict]) -> list[dict]:
    return [p for p in problems if "/requirements" in p["pointer"]]


@pytest.mark.parametrize("key", ["nvAccelerators", "inferenceAccelerators"])
def test_a_gpu_package_validates_imports_and_plans(tmp_path, key):
    root = copy_app(tmp_path)
    path = _with_requirement(root, {"type": "hardware_access", key: [GPU]})
    _code, problems, _ = validate(root)
    assert _about_requirements(problems) == []
    project = Project(root)
    assert project.load_package(path.parent).accelerators() == ["nvhost_gpu"]
    result = run(root, "import-application", "--account-id", "210987654321")
    assert result.exit_code == 0, result.stderr
    imported = root / "packages" / "210987654321-SAMPLE_CODE-1.0" / "package.json"
    [impl] = load(imported)["nodePackage"]["assets"][0]["implementations"]
    assert impl["requirements"] == [{"type": "hardware_access", key: [GPU]}]
    for item in plan(project):  # package-application's local side
        assert not any("requirements" in p.pointer for p in item.problems), item.problems


def test_the_official_schema_knows_only_inference_accelerators(tmp_path):
    """Where schemas/nodePackage differs from the official ver_2021-01-01 (its description
    says so): the official schema requires inferenceAccelerators."""
    root = copy_app(tmp_path)
    nv = load(_with_requirement(root, {"type": "hardware_access", "nvAccelerators": [GPU]}))
    assert official.errors(official.PACKAGE, nv)
    inference = {"type": "hardware_access", "inferenceAccelerators": [GPU]}
    assert official.errors(official.PACKAGE, load(_with_requirement(root, inference))) == []


def test_a_hardware_access_requirement_without_accelerators_is_one_problem(tmp_path):
    root = copy_app(tmp_path)
    _with_requirement(root, {"type": "hardware_access"})
    code, problems, _ = validate(root)
    assert code == 1
    [problem] = _about_requirements(problems)
    assert problem["pointer"] == "/nodePackage/assets/0/implementations/0/requirements/0"
    assert problem["message"] == (
        '{"type": "hardware_access"} needs inferenceAccelerators or nvAccelerators'
    )
    _with_requirement(root, {"type": "hardware_access", "nvAccelerators": [{**GPU, "x": 1}]})
    [problem] = _about_requirements(validate(root)[1])
    assert problem["pointer"].endswith("/requirements/0/nvAccelerators/0")
    assert "'x' was unexpected" in problem["message"]
