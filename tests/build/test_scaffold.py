"""init-project, create-package, add-panorama-package: files, graph edits, errors."""

import json

import pytest

from tests.support import official
from tests.support.project_helpers import load, run, snapshot

ACCOUNT = "111122223333"


@pytest.fixture
def project(tmp_path):
    assert run(tmp_path, "init-project", "--name", "demo", "--account-id", ACCOUNT).exit_code == 0
    return tmp_path / "demo"


def graph(project):
    return load(project / "graphs" / "demo" / "graph.json")


def test_init_project_layout_and_graph(tmp_path):
    result = run(tmp_path, "init-project", "--name", "demo")
    assert result.exit_code == 0, result.stderr
    root = tmp_path / "demo"
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["assets", "graphs", "packages"]
    text = (root / "graphs" / "demo" / "graph.json").read_text()
    assert json.loads(text) == {
        "nodeGraph": {"envelopeVersion": "2021-01-01", "packages": [], "nodes": [], "edges": []}
    }
    assert text.startswith('{\n    "nodeGraph": {\n        "envelopeVersion"') and text.endswith(
        "}\n"
    )
    assert "create-package" in result.stderr  # names the next command


def test_init_project_refuses_existing_and_bad_names(tmp_path):
    (tmp_path / "demo").mkdir()
    result = run(tmp_path, "init-project", "--name", "demo")
    assert result.exit_code == 1 and "already exists" in result.stderr
    for bad in ("../evil", "a/b", "a;b", "$(x)", ""):
        result = run(tmp_path, "init-project", "--name", bad)
        assert result.exit_code != 0
        assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_create_container_package(project):
    result = run(project / "graphs", "create-package", "--name", "people_counter")
    assert result.exit_code == 0, result.stderr
    folder = project / "packages" / f"{ACCOUNT}-people_counter-1.0"
    assert sorted(p.name for p in folder.iterdir()) == [
        "Dockerfile",
        "descriptor.json",
        "package.json",
        "src",
    ]
    assert (folder / "src" / "app.py").is_file()
    descriptor = load(folder / "descriptor.json")
    assert descriptor == {
        "runtimeDescriptor": {
            "envelopeVersion": "2021-01-01",
            "entry": {"path": "python3", "name": "/panorama/app.py"},
        }
    }
    assert official.errors(official.DESCRIPTOR, descriptor) == []
    package = load(folder / "package.json")["nodePackage"]
    assert list(package) == [
        "envelopeVersion",
        "name",
        "version",
        "description",
        "assets",
        "interfaces",
    ]
    assert (package["name"], package["version"]) == ("people_counter", "1.0")
    dockerfile = (folder / "Dockerfile").read_text().splitlines()
    code = [line for line in dockerfile if line and not line.startswith("#")]
    assert code[:2] == [
        "ARG BASE_IMAGE=public.ecr.aws/panorama/panorama-application",
        "FROM ${BASE_IMAGE}",
    ]
    assert graph(project)["nodeGraph"]["packages"] == [
        {"name": f"{ACCOUNT}::people_counter", "version": "1.0"}
    ]
    compile((folder / "src" / "app.py").read_text(), "app.py", "exec")


def test_create_model_package_and_legacy_switch(project):
    assert (
        run(
            project, "create-package", "-model", "--name", "call_node", "--version", "2.1"
        ).exit_code
        == 0
    )
    folder = project / "packages" / f"{ACCOUNT}-call_node-2.1"
    assert load(folder / "descriptor.json")["mlModelDescriptor"]["framework"] == ""
    assert not (folder / "Dockerfile").exists()
    assert {"name": f"{ACCOUNT}::call_node", "version": "2.1"} in graph(project)["nodeGraph"][
        "packages"
    ]


@pytest.mark.parametrize("flag", [("--type", "Camera"), ("-camera",)])
def test_create_camera_package(project, flag):
    assert run(project, "create-package", *flag, "--name", "cam").exit_code == 0
    package = load(project / "packages" / f"{ACCOUNT}-cam-1.0" / "package.json")
    assert official.errors(official.PACKAGE, package) == []
    body = package["nodePackage"]
    assert body["assets"][0]["implementations"] == [
        {"type": "system", "assetUri": "source/video/camera/rtsp/source_rtsp"}
    ]
    interface = body["interfaces"][0]
    assert interface["name"] == "rtsp_interface" and interface["category"] == "media_source"
    assert [(p["name"], p["type"]) for p in interface["inputs"]] == [
        ("username", "string"),
        ("password", "string"),
        ("streamUrl", "string"),
    ]
    assert [(p["name"], p["type"]) for p in interface["outputs"]] == [("video_out", "media")]
    assert {"name": "cam", "interface": f"{ACCOUNT}::cam.rtsp_interface"} in graph(project)[
        "nodeGraph"
    ]["nodes"]


def test_create_datasink_package(project):
    assert run(project, "create-package", "--type", "datasink", "--name", "screen").exit_code == 0
    body = load(project / "packages" / f"{ACCOUNT}-screen-1.0" / "package.json")["nodePackage"]
    assert body["assets"][0]["implementations"][0]["assetUri"] == "sink/video/hdmi/sink_hdmi"
    assert body["interfaces"][0]["name"] == "sink_interface"
    assert body["interfaces"][0]["category"] == "media_sink"
    nodes = graph(project)["nodeGraph"]["nodes"]
    assert nodes == [{"name": "screen", "interface": f"{ACCOUNT}::screen.sink_interface"}]
    assert official.errors(official.GRAPH, graph(project)) == []


def test_create_package_refusals_change_nothing(project):
    assert run(project, "create-package", "--name", "pc").exit_code == 0
    before = snapshot(project)
    cases = [
        ("--name", "pc"),  # exists
        ("--name", "../escape"),
        ("--name", "a b"),
        ("--name", "x", "--version", "1"),
        ("--name", "x", "--version", "1.0/.."),
        ("--name", "x", "--account-id", "../../etc"),
    ]
    for args in cases:
        result = run(project, "create-package", *args)
        assert result.exit_code != 0, args
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) <= 3, result.stderr
    assert snapshot(project) == before


def test_create_package_refuses_invalid_graph(project):
    path = project / "graphs" / "demo" / "graph.json"
    path.write_text(
        '{"nodeGraph": {"envelopeVersion": "2021-01-01", "packages": [], "nodes": [],}}'
    )
    before = snapshot(project)
    result = run(project, "create-package", "--name", "pc")
    assert result.exit_code == 1
    assert "graph.json:1:" in result.stderr and "malformed JSON" in result.stderr
    path.write_text(
        json.dumps({"nodeGraph": {"envelopeVersion": "2020-01-01", "packages": [], "nodes": []}})
    )
    before = snapshot(project)
    result = run(project, "create-package", "--name", "pc")
    assert result.exit_code == 1 and "/nodeGraph/envelopeVersion" in result.stderr
    assert snapshot(project) == before


def test_add_panorama_packages(project):
    assert (
        run(project, "add-panorama-package", "--type", "camera", "--name", "front").exit_code == 0
    )
    assert run(project, "add-panorama-package", "--type", "camera", "--name", "back").exit_code == 0
    assert (
        run(project, "add-panorama-package", "--type", "data_sink", "--name", "hdmi").exit_code == 0
    )
    before = snapshot(project)
    assert (
        run(project, "add-panorama-package", "--type", "camera", "--name", "front").exit_code == 0
    )
    assert snapshot(project) == before  # no duplicates
    body = graph(project)["nodeGraph"]
    assert body["packages"] == [
        {"name": "panorama::abstract_rtsp_media_source", "version": "1.0"},
        {"name": "panorama::hdmi_data_sink", "version": "1.0"},
    ]
    assert body["nodes"][0] == {
        "name": "front",
        "interface": "panorama::abstract_rtsp_media_source.rtsp_v1_interface",
        "overridable": True,
        "launch": "onAppStart",
        "decorator": {
            "title": "Camera front",
            "description": "Default description for camera front",
        },
    }
    assert body["nodes"][2] == {
        "name": "hdmi",
        "interface": "panorama::hdmi_data_sink.hdmi0",
        "overridable": False,
        "launch": "onAppStart",
    }
    assert official.errors(official.GRAPH, graph(project)) == []
    result = run(project, "add-panorama-package", "--type", "data_sink", "--name", "front")
    assert result.exit_code == 1 and "already has a node" in result.stderr


def test_account_id_resolution(tmp_path, monkeypatch):
    assert run(tmp_path, "init-project", "--name", "p").exit_code == 0
    project = tmp_path / "p"
    monkeypatch.delenv("PANORAMA_ACCOUNT_ID", raising=False)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    result = run(project, "create-package", "--name", "a")
    assert result.exit_code == 1 and "credentials" in result.stderr.lower()
    assert not any((project / "packages").iterdir())
    monkeypatch.setenv("PANORAMA_ACCOUNT_ID", "222233334444")
    assert run(project, "create-package", "--name", "a").exit_code == 0
    monkeypatch.delenv("PANORAMA_ACCOUNT_ID")
    assert run(project, "create-package", "--name", "b").exit_code == 0  # from graph.json
    assert (project / "packages" / "222233334444-b-1.0").is_dir()
    assert (
        run(project, "create-package", "--name", "c", "--account-id", "999999999999").exit_code == 0
    )
    assert (project / "packages" / "999999999999-c-1.0").is_dir()


def test_outside_a_project(tmp_path):
    result = run(tmp_path, "validate")
    assert result.exit_code == 1 and "not inside a Panorama project" in result.stderr
