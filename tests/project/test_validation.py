"""validate: schema checks, semantic graph checks, located messages, exit codes."""

import json
import shutil

import pytest

from tests.support import official
from tests.support.paths import APPS
from tests.support.project_helpers import load, run
from tests.support.shared import require

ACCOUNT = "111122223333"


def write(path, data):
    path.write_text(json.dumps(data, indent=4) + "\n")


@pytest.fixture
def app(tmp_path):
    """A valid project: camera -> code (container, float32 + string params) -> hdmi; a model."""
    assert run(tmp_path, "init-project", "--name", "app", "--account-id", ACCOUNT).exit_code == 0
    root = tmp_path / "app"
    assert run(root, "create-package", "--name", "code").exit_code == 0
    folder = root / "packages" / f"{ACCOUNT}-code-1.0"
    descriptor = (folder / "descriptor.json").read_bytes()
    import hashlib

    digest = hashlib.sha256(descriptor).hexdigest()
    (root / "assets" / f"{digest}.json").write_bytes(descriptor)
    fake = b"not really a container"
    fake_digest = hashlib.sha256(fake).hexdigest()
    (root / "assets" / f"{fake_digest}.tar.gz").write_bytes(fake)
    package = load(folder / "package.json")
    package["nodePackage"]["assets"] = [
        {
            "name": "code_asset",
            "implementations": [
                {
                    "type": "container",
                    "assetUri": f"{fake_digest}.tar.gz",
                    "descriptorUri": f"{digest}.json",
                }
            ],
        }
    ]
    package["nodePackage"]["interfaces"] = [
        {
            "name": "interface",
            "category": "business_logic",
            "asset": "code_asset",
            "inputs": [
                {"name": "video_in", "type": "media"},
                {"name": "threshold", "type": "float32"},
                {"name": "region", "type": "string"},
            ],
            "outputs": [{"name": "video_out", "type": "media"}],
            "network": {"inboundPorts": [{"port": 80}]},
        }
    ]
    write(folder / "package.json", package)
    assert run(root, "add-panorama-package", "--type", "camera", "--name", "cam").exit_code == 0
    assert run(root, "add-panorama-package", "--type", "data_sink", "--name", "out").exit_code == 0
    graph_path = root / "graphs" / "app" / "graph.json"
    graph = load(graph_path)
    body = graph["nodeGraph"]
    body["nodes"] += [
        {"name": "code_node", "interface": f"{ACCOUNT}::code.interface"},
        {"name": "threshold", "interface": "float32", "value": 20.0},
        {"name": "region", "interface": "string", "value": "us-east-1"},
    ]
    body["edges"] = [
        {"producer": "cam.video_out", "consumer": "code_node.video_in"},
        {"producer": "code_node.video_out", "consumer": "out.video_in"},
        {"producer": "threshold", "consumer": "code_node.threshold"},
        {"producer": "region", "consumer": "code_node.region"},
    ]
    body["networkRoutingRules"] = [{"node": "code_node", "containerPort": 80, "hostPort": 8080}]
    write(graph_path, graph)
    result = run(root, "validate")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert official.errors(official.GRAPH, load(graph_path)) == []
    return root


def problems(root):
    result = run(root, "validate", "--json")
    data = json.loads(result.stdout)
    assert result.exit_code == (1 if not data["valid"] else 0)
    return data["problems"]


def edit_graph(root, change):
    path = root / "graphs" / "app" / "graph.json"
    graph = load(path)
    change(graph["nodeGraph"])
    write(path, graph)


def package_path(root):
    return root / "packages" / f"{ACCOUNT}-code-1.0" / "package.json"


def edit_package(root, change):
    data = load(package_path(root))
    change(data["nodePackage"])
    write(package_path(root), data)


def only(found):
    assert len(found) == 1, found
    return found[0]


def test_valid_project_json_output(app):
    data = json.loads(run(app, "validate", "--json").stdout)
    assert data == {"valid": True, "root": str(app), "problems": []}


def test_type_mismatch(app):
    edit_graph(app, lambda g: g["edges"][2].update(consumer="code_node.region"))
    p = only(problems(app))
    assert (
        p["pointer"] == "/nodeGraph/edges/2" and "float32 output to a string input" in p["message"]
    )


def test_producer_must_be_output(app):
    edit_graph(app, lambda g: g["edges"][0].update(producer="code_node.video_in"))
    found = problems(app)
    assert any(
        p["pointer"] == "/nodeGraph/edges/0/producer" and "is an input" in p["message"]
        for p in found
    ), found


def test_unknown_node_and_port(app):
    def change(g):
        g["edges"][0]["producer"] = "nocam.video_out"
        g["edges"][1]["consumer"] = "out.video_inn"

    edit_graph(app, change)
    found = problems(app)
    assert [p["pointer"] for p in found] == [
        "/nodeGraph/edges/0/producer",
        "/nodeGraph/edges/1/consumer",
    ]
    assert "'nocam' does not exist" in found[0]["message"]
    assert "video_inn" in found[1]["message"] and "video_in" in found[1]["message"]


def test_interface_not_defined_and_package_not_listed(app):
    def change(g):
        g["nodes"][2]["interface"] = f"{ACCOUNT}::code.nope"
        g["nodes"][0]["interface"] = "panorama::other_camera.rtsp"

    edit_graph(app, change)
    found = problems(app)
    pointers = {p["pointer"]: p["message"] for p in found}
    assert "defines no interface 'nope'" in pointers["/nodeGraph/nodes/2/interface"]
    assert "does not list" in pointers["/nodeGraph/nodes/0/interface"]


def test_version_mismatch_and_folder_name(app):
    edit_graph(app, lambda g: g["packages"][0].update(version="2.0"))
    p = only(problems(app))
    assert p["pointer"] == "/nodeGraph/packages/0/version" and "1.0" in p["message"]


def test_asset_hash_mismatch_and_missing(app):
    uri = load(package_path(app))["nodePackage"]["assets"][0]["implementations"][0]["assetUri"]
    (app / "assets" / uri).write_bytes(b"tampered")
    p = only(problems(app))
    assert p["pointer"].endswith("/assetUri") and "does not match its sha256" in p["message"]
    (app / "assets" / uri).unlink()
    p = only(problems(app))
    assert "is missing" in p["message"] and p["file"] == f"packages/{ACCOUNT}-code-1.0/package.json"


def test_placeholder_and_model_descriptor(app):
    assert run(app, "create-package", "--name", "m", "--type", "Model").exit_code == 0
    found = problems(app)
    files = {(p["file"].split("/")[-1], p["pointer"]) for p in found}
    assert ("descriptor.json", "/mlModelDescriptor/framework") in files
    assert ("package.json", "/nodePackage/interfaces") in files
    descriptor = app / "packages" / f"{ACCOUNT}-code-1.0" / "descriptor.json"
    write(
        descriptor,
        {
            "runtimeDescriptor": {
                "envelopeVersion": "2021-01-01",
                "entry": {"path": "python3", "name": "/panorama/<entry_file_name_under_src>"},
            }
        },
    )
    assert any("placeholder" in p["message"] for p in problems(app))


def test_malformed_json_has_line_and_column(app):
    package_path(app).write_text('{\n    "nodePackage": {\n        "name": "x",,\n    }\n}\n')
    result = run(app, "validate")
    assert result.exit_code == 1
    assert f"packages/{ACCOUNT}-code-1.0/package.json: error: " in result.stdout
    assert f"{ACCOUNT}-code-1.0/package.json:3:21: malformed JSON" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_schema_error_has_pointer(app):
    edit_package(
        app, lambda p: p["interfaces"][0]["inputs"].append({"name": "bad-port", "type": "int32"})
    )
    p = only(problems(app))
    assert p["pointer"] == "/nodePackage/interfaces/0/inputs/3/name"


def test_value_node_as_consumer_and_bad_node_name(app):
    def change(g):
        g["edges"].append({"producer": "region", "consumer": "threshold"})
        g["nodes"].append({"name": "extra$", "interface": "string", "value": "x"})

    edit_graph(app, change)
    messages = " | ".join(p["message"] for p in problems(app))
    assert "value node" in messages and "invalid node name" in messages


def test_duplicate_node_and_routing_rule(app):
    def change(g):
        g["nodes"].append(dict(g["nodes"][0]))
        g["networkRoutingRules"][0]["node"] = "ghost"

    edit_graph(app, change)
    pointers = [p["pointer"] for p in problems(app)]
    assert "/nodeGraph/nodes/5/name" in pointers
    assert "/nodeGraph/networkRoutingRules/0/node" in pointers


@pytest.mark.parametrize("app_name", ["aws-panorama-sample", "debug-server"])
def test_official_samples_as_given(tmp_path, app_name):
    """Before import the samples are valid but for the two things they really lack."""
    root = tmp_path / app_name
    require(APPS / app_name)
    shutil.copytree(APPS / app_name, root)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    found = problems(root)
    assert sorted(p["pointer"] for p in found) == [
        "/nodePackage/assets/0/implementations/0/assetUri",
        "/nodePackage/interfaces/0/asset",
    ]
