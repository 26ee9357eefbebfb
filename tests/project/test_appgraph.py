"""The application graph object: kinds, every port, typed values, override results.

On the two official sample apps (../shared/apps, both override files) and on hand-made graphs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from panorama_cli.errors import UserError
from panorama_cli.project.appgraph import AppGraph, NodeKind, find_override_files
from panorama_cli.project.project import Project, RuntimeEntry
from tests.support.paths import APPS
from tests.support.shared import require

ACCOUNT = "111122223333"
SAMPLE = APPS / "aws-panorama-sample"
DEBUG_SERVER = APPS / "debug-server"


def write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4) + "\n")
    return path


def copy_app(source: Path, tmp_path: Path) -> Project:
    require(source)
    root = tmp_path / source.name
    shutil.copytree(source, root)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return Project(root)


# -- the official samples ----------------------------------------------------------------------
def test_sample_kinds_ports_values(tmp_path):
    project = copy_app(SAMPLE, tmp_path)
    graph = AppGraph.load(project)
    kinds = {n.name: n.kind for n in graph.nodes.values()}
    assert kinds == {
        "code_node": NodeKind.BUSINESS_LOGIC,
        "model_node": NodeKind.MODEL,
        "camera_node": NodeKind.CAMERA,
        "output_node": NodeKind.DATA_SINK,
        "detection_threshold": NodeKind.PARAMETER,
        "region": NodeKind.PARAMETER,
        "device_id": NodeKind.PARAMETER,
        "log_level": NodeKind.PARAMETER,
    }
    code = graph.node("code_node")
    assert code.is_local and code.package == "123456789012::SAMPLE_CODE"
    assert code.package_version == "1.0" and code.interface_name == "interface"
    assert code.package_folder == project.packages_dir / "123456789012-SAMPLE_CODE-1.0"
    assert list(code.inputs) == ["video_in", "threshold", "region", "device_id", "log_level"]
    assert code.inputs["threshold"].type == "float32"
    assert code.inputs["threshold"].direction == "input"
    assert code.outputs["video_out"].description == "Video stream output"
    # ports nobody connects are there too
    model = graph.node("model_node")
    assert list(model.inputs) == ["video_in"] and graph.edges_into("model_node") == []
    camera = graph.node("camera_node")
    assert not camera.is_local and camera.package_folder is None
    assert set(camera.inputs) == {"username", "password", "streamUrl"}
    assert camera.outputs["video_out"].type == "media"
    assert camera.overridable and camera.override_mandatory
    assert camera.decorator is not None and camera.decorator["title"] == "IP camera"
    threshold = graph.node("detection_threshold")
    assert threshold.value == 20.0 and isinstance(threshold.value, float)
    assert threshold.package is None and threshold.interface == "float32"
    assert graph.node("region").value == "us-east-1"
    assert [e.consumer for e in graph.edges_from("detection_threshold")] == ["code_node.threshold"]
    edge = graph.edges_from("camera_node", "video_out")[0]
    assert (edge.producer_node, edge.producer_port) == ("camera_node", "video_out")
    assert (edge.consumer_node, edge.consumer_port) == ("code_node", "video_in")
    assert graph.edges_from("detection_threshold")[0].producer_port is None
    assert graph.routing_rules == () and dict(graph.inbound_ports) == {}
    assert [n.name for n in graph.nodes_of(NodeKind.CAMERA)] == ["camera_node"]


def test_sample_multicam_override_one_camera_becomes_two(tmp_path):
    project = copy_app(SAMPLE, tmp_path)
    override = project.graph_path.parent / "override-multicam.json"
    graph = AppGraph.load(project, [override])
    assert graph.override_paths == (override,)
    assert "camera_node" not in graph.nodes and "region" not in graph.nodes
    assert list(graph.nodes)[:4] == ["code_node", "model_node", "CAMERA_A", "CAMERA_B"]
    for name in ("CAMERA_A", "CAMERA_B"):
        camera = graph.node(name)
        assert camera.kind == NodeKind.CAMERA and not camera.is_local
        assert camera.package == f"123456789012::{name}" and camera.package_version == "1.0"
        assert camera.replaces == "camera_node"
        assert camera.outputs["video_out"].type == "media"
    assert graph.node("CAMERA_A").launch == "onAppStart"
    assert sorted(e.producer for e in graph.edges_into("code_node", "video_in")) == [
        "CAMERA_A.video_out",
        "CAMERA_B.video_out",
    ]
    assert graph.node("region_override").value == "MY_REGION"
    assert [e.producer for e in graph.edges_into("code_node", "region")] == ["region_override"]
    assert graph.node("detection_threshold").value == 20.0  # not overridden
    assert graph.package_ref("123456789012::CAMERA_B") is not None
    assert len(graph.edges) == 7


def test_debug_server_override_routing_and_inbound_ports(tmp_path):
    project = copy_app(DEBUG_SERVER, tmp_path)
    plain = AppGraph.load(project)
    assert dict(plain.inbound_ports) == {"code_node": (80,)}
    (rule,) = plain.routing_rules
    assert (rule.node, rule.container_port, rule.host_port) == ("code_node", 80, 8080)
    assert rule.decorator is not None
    width = plain.node("model_input_width")
    assert width.value == 224 and isinstance(width.value, int)
    assert plain.node("code_node").inputs["model_input_width"].type == "int32"
    overrides = find_override_files(project)
    assert overrides == [project.graph_path.parent / "override.json"]
    graph = AppGraph.load(project, overrides)
    (rule,) = graph.routing_rules  # the override's rule replaces the graph's
    assert rule.source == overrides[0] and rule.decorator is None
    assert graph.node("camera_node_override").kind == NodeKind.CAMERA
    assert graph.node("device_ip_override").value == "MY_DEVICE_IP"


# -- hand-made graphs -------------------------------------------------------------------------
def _package(root: Path, name: str, interfaces: list, descriptor: dict | None = None) -> Path:
    folder = root / "packages" / f"{ACCOUNT}-{name}-1.0"
    body = {"envelopeVersion": "2021-01-01", "name": name, "version": "1.0"}
    write(folder / "package.json", {"nodePackage": {**body, "interfaces": interfaces}})
    if descriptor is not None:
        write(folder / "descriptor.json", descriptor)
    return folder


@pytest.fixture
def handmade(tmp_path) -> Project:
    """A camera package (media_source), a bash business-logic package with defaults, a sink."""
    root = tmp_path / "app"
    (root / "assets").mkdir(parents=True)
    _package(
        root,
        "cam",
        [
            {
                "name": "cam_if",
                "category": "media_source",
                "outputs": [{"name": "frames", "type": "media"}],
            }
        ],
    )
    _package(
        root,
        "logic",
        [
            {
                "name": "logic_if",
                "category": "business_logic",
                "inputs": [
                    {"name": "video_in", "type": "media"},
                    {"name": "gain", "type": "float32", "default": 2},
                    {"name": "count", "type": "int32", "default": 3},
                    {"name": "enabled", "type": "boolean", "default": True},
                    {"name": "unused", "type": "string"},
                ],
                "outputs": [{"name": "video_out", "type": "media"}],
                "network": {"inboundPorts": [{"port": 8000}, {"port": 9000}]},
            }
        ],
        {
            "runtimeDescriptor": {
                "envelopeVersion": "2021-01-01",
                "entry": {"path": "bash", "name": "/panorama/run.sh"},
            }
        },
    )
    write(
        root / "graphs" / "app" / "graph.json",
        {
            "nodeGraph": {
                "envelopeVersion": "2021-01-01",
                "packages": [
                    {"name": f"{ACCOUNT}::cam", "version": "1.0"},
                    {"name": f"{ACCOUNT}::logic", "version": "1.0"},
                    {"name": "panorama::hdmi_data_sink", "version": "1.0"},
                ],
                "nodes": [
                    {"name": "front", "interface": f"{ACCOUNT}::cam.cam_if"},
                    {"name": "logic", "interface": f"{ACCOUNT}::logic.logic_if"},
                    {"name": "hdmi", "interface": "panorama::hdmi_data_sink.hdmi0"},
                    {"name": "gain", "interface": "float32", "value": 60},
                    {"name": "flag", "interface": "boolean", "value": False},
                    {"name": "empty", "interface": "string"},
                ],
                "edges": [
                    {"producer": "front.frames", "consumer": "logic.video_in"},
                    {"producer": "logic.video_out", "consumer": "hdmi.video_in"},
                    {"producer": "gain", "consumer": "logic.gain"},
                ],
            }
        },
    )
    return Project(root)


def _override(project: Project, name: str, body: dict) -> Path:
    data = {"nodeGraphOverrides": {"envelopeVersion": "2021-01-01", **body}}
    return write(project.graph_path.parent / name, data)


def test_handmade_kinds_typed_values_and_defaults(handmade):
    graph = AppGraph.load(handmade)
    assert graph.node("front").kind == NodeKind.CAMERA  # local package, category media_source
    assert graph.node("front").is_local
    logic = graph.node("logic")
    assert logic.kind == NodeKind.BUSINESS_LOGIC and logic.inbound_ports == (8000, 9000)
    assert dict(graph.inbound_ports) == {"logic": (8000, 9000)}
    gain = logic.inputs["gain"]
    assert gain.default == 2.0 and isinstance(gain.default, float)
    assert logic.inputs["count"].default == 3 and logic.inputs["enabled"].default is True
    assert logic.inputs["unused"].default is None and "unused" in logic.inputs
    assert graph.node("hdmi").kind == NodeKind.DATA_SINK
    value = graph.node("gain").value
    assert value == 60.0 and isinstance(value, float)  # float32 written as 60
    assert graph.node("flag").value is False
    assert graph.node("empty").value == ""  # the schema's default
    package = handmade.load_package(graph.node("logic").package_folder)
    assert package.runtime_entry == RuntimeEntry("bash", "/panorama/run.sh")
    assert package.kind == NodeKind.BUSINESS_LOGIC


def test_with_empty_list_removes_the_node_and_its_edges(handmade):
    override = _override(
        handmade,
        "no_sink.json",
        {"nodeOverrides": [{"replace": "hdmi", "with": []}]},
    )
    graph = AppGraph.load(handmade, [override])
    assert "hdmi" not in graph.nodes
    assert graph.edges_from("logic") == []
    assert len(graph.edges) == 2


def test_account_only_camera_replaces_local_one_and_override_edges(handmade):
    override = _override(
        handmade,
        "cams.json",
        {
            "packages": [{"name": f"{ACCOUNT}::lobby", "version": "2.0"}],
            "nodes": [
                {"name": "lobby", "interface": f"{ACCOUNT}::lobby.lobby_if"},
                {"name": "gain2", "interface": "float32", "value": 7},
                {"name": "spare", "interface": "int32", "value": 5},
            ],
            "nodeOverrides": [
                {"replace": "front", "with": [{"name": "front"}, {"name": "lobby"}]},
                {"replace": "gain", "with": [{"name": "gain2"}]},
            ],
            "edges": [{"producer": "spare", "consumer": "logic.count"}],
        },
    )
    graph = AppGraph.load(handmade, [override])
    lobby = graph.node("lobby")
    assert lobby.kind == NodeKind.CAMERA and not lobby.is_local
    assert lobby.package_version == "2.0" and set(lobby.outputs) == {"frames"}
    assert graph.node("front").is_local
    assert sorted(e.producer for e in graph.edges_into("logic", "video_in")) == [
        "front.frames",
        "lobby.frames",
    ]
    assert graph.node("gain2").value == 7.0
    assert [e.producer for e in graph.edges_into("logic", "gain")] == ["gain2"]
    assert list(graph.nodes)[-1] == "spare"  # added, named by no `with`
    assert [e.producer for e in graph.edges_into("logic", "count")] == ["spare"]


def test_unknown_names_raise_one_located_line(handmade):
    override = _override(
        handmade, "bad.json", {"nodeOverrides": [{"replace": "ghost", "with": []}]}
    )
    with pytest.raises(UserError) as caught:
        AppGraph.load(handmade, [override])
    assert "bad.json#/nodeGraphOverrides/nodeOverrides/0/replace" in caught.value.message
    with pytest.raises(UserError) as caught:
        AppGraph.load(handmade).node("nobody")
    assert "front, logic, hdmi" in caught.value.message


def test_unresolved_interfaces_are_recorded_not_raised(handmade):
    graph_path = handmade.graph_path
    data = json.loads(graph_path.read_text())
    data["nodeGraph"]["nodes"] += [
        {"name": "typo", "interface": f"{ACCOUNT}::logic.nope"},
        {"name": "unlisted", "interface": f"{ACCOUNT}::other.x"},
        {"name": "front", "interface": "string", "value": "dup"},
    ]
    write(graph_path, data)
    graph = AppGraph.build(handmade, graph_path, data)
    assert "defines no interface 'nope' (it has: logic_if)" in (graph.node("typo").unresolved or "")
    assert "does not list" in (graph.node("unlisted").unresolved or "")
    assert graph.node("front").kind == NodeKind.CAMERA  # first definition kept
    assert [p.pointer for p in graph.issues] == ["/nodeGraph/nodes/8/name"]
    assert len(graph.declared) == 9
    with pytest.raises(UserError, match="defined twice"):
        AppGraph.load(handmade)


def test_schema_invalid_graph_raises(handmade):
    data = json.loads(handmade.graph_path.read_text())
    del data["nodeGraph"]["nodes"][0]["interface"]
    write(handmade.graph_path, data)
    with pytest.raises(UserError, match=r"graph.json#/nodeGraph/nodes/0"):
        AppGraph.load(handmade)


def test_override_files_beside_graph_and_in_deployment_overrides(handmade):
    good = _override(handmade, "a.json", {"nodeOverrides": []})
    (handmade.graph_path.parent / "template.json").write_text(
        '{"nodeGraphOverrides": {"nodes": [{"name": "cam", "value": {camera_url}}]}}'
    )
    (handmade.graph_path.parent / "broken.json").write_text('{"nodeGraphOverrides": ')
    (handmade.graph_path.parent / "notes.json").write_text('{"title": "not an override"}')
    deployed = write(
        handmade.root / "deployment_overrides" / "site1.json",
        {"nodeGraphOverrides": {"envelopeVersion": "2021-01-01", "nodeOverrides": []}},
    )
    notes: list[str] = []
    assert find_override_files(handmade, notes) == [good, deployed]
    assert notes == [
        "graphs/app/broken.json: skipped, not valid JSON",
        "graphs/app/notes.json: skipped, not a nodeGraphOverrides manifest",
        "graphs/app/template.json: skipped, a template with {placeholders}, not JSON",
    ]


def test_package_json_without_name_and_version_takes_the_folder_name(handmade):
    folder = handmade.packages_dir / f"{ACCOUNT}-cam-1.0"
    data = json.loads((folder / "package.json").read_text())
    del data["nodePackage"]["name"], data["nodePackage"]["version"]
    write(folder / "package.json", data)
    package = handmade.load_package(folder)
    assert (package.name, package.version, package.account) == ("cam", "1.0", ACCOUNT)
    assert package.names_from_folder
    assert AppGraph.load(handmade).node("front").is_local
