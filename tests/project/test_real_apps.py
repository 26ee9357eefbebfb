"""What real applications showed (issue 9 §2), on copies of the official sample apps:
package.json without name/version, override templates, ``deployment_overrides/``,
``nvAccelerators``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from panorama_cli.cloud.deployment import DeployRequest, check_request
from panorama_cli.errors import UserError
from panorama_cli.project.project import Project
from tests.support.paths import APPS
from tests.support.project_helpers import load, run
from tests.support.shared import require

SAMPLE = "aws-panorama-sample"
#: What validate reports on the sample as given (it has no built container): see test_validation.
AS_GIVEN = [
    "/nodePackage/assets/0/implementations/0/assetUri",
    "/nodePackage/interfaces/0/asset",
]


def copy_app(tmp_path: Path, name: str = SAMPLE) -> Path:
    require(APPS / name)
    root = tmp_path / name
    shutil.copytree(APPS / name, root)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4) + "\n")
    return path


def validate(root: Path) -> tuple[int, list[dict], str]:
    result = run(root, "validate", "--json")
    return result.exit_code, json.loads(result.stdout)["problems"], result.stderr


def errors_and_warnings(problems: list[dict]) -> list[dict]:
    return [p for p in problems if p["severity"] != "note"]


def drop_name_and_version(folder: Path) -> None:
    data = load(folder / "package.json")
    del data["nodePackage"]["name"], data["nodePackage"]["version"]
    write(folder / "package.json", data)


def test_package_json_without_name_and_version(tmp_path):
    root = copy_app(tmp_path)
    for folder in (root / "packages").iterdir():
        drop_name_and_version(folder)
    _code, problems, _ = validate(root)
    assert sorted(p["pointer"] for p in problems) == AS_GIVEN  # no false error
    result = run(root, "import-application", "--account-id", "210987654321")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in (root / "packages").iterdir()) == [
        "210987654321-SAMPLE_CODE-1.0",
        "210987654321-SQUEEZENET_PYTORCH-1.0",
    ]
    _code, problems, _ = validate(root)
    assert sorted(p["pointer"] for p in problems) == AS_GIVEN


def test_account_camera_package_without_name_is_a_local_camera(tmp_path):
    """A camera package kept in packages/, named only by the override file (not graph.json)."""
    root = copy_app(tmp_path)
    folder = root / "packages" / "123456789012-MY_CAMERA-1.0"
    interface = {"name": "MY_CAMERA", "category": "media_source"}
    interface["outputs"] = [{"name": "video_out", "type": "media"}]
    body = {"envelopeVersion": "2021-01-01", "interfaces": [interface]}
    write(folder / "package.json", {"nodePackage": body})
    _code, problems, _ = validate(root)
    assert sorted(p["pointer"] for p in problems) == AS_GIVEN  # not even "not listed"
    from panorama_cli.project.appgraph import AppGraph, NodeKind

    project = Project(root)
    graph = AppGraph.load(project, [project.graph_path.parent / "override.json"])
    camera = graph.node("camera_node_override")
    assert camera.is_local and camera.kind == NodeKind.CAMERA
    assert camera.package_folder == folder and camera.resolved
    assert [e.consumer for e in graph.edges_from("camera_node_override")] == ["code_node.video_in"]
    folder.joinpath("package.json").unlink()
    folder.rmdir()
    other = root / "packages" / "123456789012-OTHER-1.0"
    write(other / "package.json", {"nodePackage": body})
    _code, problems, _ = validate(root)
    warnings = [
        p for p in problems if p["severity"] == "warning" and "not built" not in p["message"]
    ]
    assert [p["message"] for p in warnings] == [
        "package OTHER is not listed in graphs/my-app/graph.json"
    ]


def test_nameless_package_in_an_unparsable_folder_is_one_clear_error(tmp_path):
    root = copy_app(tmp_path)
    folder = root / "packages" / "123456789012-SAMPLE_CODE-1.0"
    drop_name_and_version(folder)
    folder.rename(folder.with_name("code"))
    code, problems, _ = validate(root)
    assert code == 1
    mine = [p for p in problems if p["file"] == "packages/code/package.json"]
    assert [p["message"] for p in mine] == [
        "package.json has no name, and the folder is not named <account>-<name>-<version>"
    ]
    result = run(root, "import-application", "--account-id", "210987654321")
    assert result.exit_code == 1 and "packages/code/package.json: no name/version" in result.stderr
    assert not (root / "packages" / "210987654321--").exists()


TEMPLATE = '{"nodeGraphOverrides": {"nodes": [{"name": "cam", "value": "{camera_url}"}]}, {x}}'


def test_override_templates_are_skipped_with_one_note(tmp_path):
    root = copy_app(tmp_path)
    graph_dir = root / "graphs" / "my-app"
    (graph_dir / "override-template.json").write_text(TEMPLATE)
    code, problems, stderr = validate(root)
    notes = [p for p in problems if p["severity"] == "note"]
    assert [(n["file"], n["message"]) for n in notes] == [
        (
            "graphs/my-app/override-template.json",
            "skipped, a template with {placeholders}, not JSON",
        )
    ]
    assert sorted(p["pointer"] for p in errors_and_warnings(problems)) == AS_GIVEN
    result = run(root, "import-application", "--account-id", "210987654321")
    assert result.exit_code == 0, result.stderr
    assert (graph_dir / "override-template.json").read_text() == TEMPLATE
    assert "210987654321::MY_CAMERA" in (graph_dir / "override.json").read_text()
    output = (result.stdout + result.stderr).splitlines()
    lines = [line for line in output if "override-template.json" in line]
    assert len(lines) == 1 and "no account id, nothing else checked" in lines[0]


def test_deployment_overrides_folder_is_checked_and_deployable(tmp_path):
    root = copy_app(tmp_path)
    graph_dir = root / "graphs" / "my-app"
    site = root / "deployment_overrides" / "site1.json"
    site.parent.mkdir()
    shutil.move(graph_dir / "override.json", site)
    override = load(site)
    override["nodeGraphOverrides"]["nodeOverrides"][0]["replace"] = "no_such_node"
    write(site, override)
    code, problems, _ = validate(root)
    assert code == 1
    assert [p["pointer"] for p in problems if p["file"] == "deployment_overrides/site1.json"] == [
        "/nodeGraphOverrides/nodeOverrides/0/replace"
    ]
    project = Project(root)
    request = DeployRequest("device-1", "app", override_path=Path("site1.json"))
    with pytest.raises(UserError, match=r"deployment_overrides/site1.json#/nodeGraphOverrides"):
        check_request(project, request)
    override["nodeGraphOverrides"]["nodeOverrides"][0]["replace"] = "region"
    write(site, override)
    _graph, overrides_text = check_request(project, request)
    assert overrides_text is not None and "MY_CAMERA" in overrides_text
    with pytest.raises(UserError, match=r"override file nope.json not found .*site1.json"):
        check_request(project, DeployRequest("device-1", "app", override_path=Path("nope.json")))


@pytest.mark.parametrize("where", ["package", "implementation"])
def test_misplaced_nv_accelerators_has_a_specific_message(tmp_path, where):
    root = copy_app(tmp_path)
    path = root / "packages" / "123456789012-SAMPLE_CODE-1.0" / "package.json"
    data = load(path)
    body = data["nodePackage"]
    if where == "package":
        body["nvAccelerators"] = [{"type": "nvidia"}]
        pointer = "/nodePackage/nvAccelerators"
    else:
        body["assets"] = [
            {
                "name": "code_asset",
                "implementations": [
                    {
                        "type": "container",
                        "assetUri": "a.tar.gz",
                        "descriptorUri": "b.json",
                        "nvAccelerators": True,
                    }
                ],
            }
        ]
        pointer = "/nodePackage/assets/0/implementations/0/nvAccelerators"
    write(path, data)
    code, problems, _ = validate(root)
    assert code == 1
    (found,) = [p for p in problems if "nvAccelerators" in p["message"]]
    assert found["pointer"] == pointer
    assert "belongs in a hardware_access requirement" in found["message"]
    assert "GPU" in found["message"] and '"type": "hardware_access"' in found["hint"]
