"""add-edge, remove-edge, remove-node, remove-package and validate's wiring warnings.

The project is the people-counter sample (init-project --sample) with a stand-in model of
YOLOX-nano's signature (init checks it): graph editing never reads the model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.onnx_models import yolox_shaped_model
from tests.support.project_helpers import run, snapshot

CODE = "people_counter_node"


@pytest.fixture
def app(tmp_path) -> Path:
    model = yolox_shaped_model(tmp_path / "stand-in.onnx")
    result = run(tmp_path, "init-project", "--sample", "people-counter", "--model", str(model))
    assert result.exit_code == 0, result.describe()
    return tmp_path / "people-counter"


def graph(app: Path) -> dict:
    return json.loads((app / "graphs" / "people-counter" / "graph.json").read_text())["nodeGraph"]


def edges(app: Path) -> set[tuple[str, str]]:
    return {(e["producer"], e["consumer"]) for e in graph(app)["edges"]}


def warnings(app: Path) -> list[str]:
    result = run(app, "validate", "--json")
    return [
        p["message"] for p in json.loads(result.stdout)["problems"] if p["severity"] == "warning"
    ]


def test_remove_then_add_an_edge(app):
    edge = ("front_camera.video_out", f"{CODE}.video_in")
    result = run(app, "remove-edge", "--producer", edge[0], "--consumer", edge[1])
    assert result.exit_code == 0 and "panorama-cli validate" in result.stderr
    assert edge not in edges(app)
    assert f"media input {CODE}.video_in is not connected" in warnings(app)
    result = run(app, "add-edge", "--producer", edge[0], "--consumer", edge[1])
    assert result.exit_code == 0, result.describe()
    assert edge in edges(app) and len(graph(app)["edges"]) == 5
    before = snapshot(app)
    again = run(app, "add-edge", "--producer", edge[0], "--consumer", edge[1])
    assert again.exit_code == 0 and "nothing to do" in again.stderr
    assert snapshot(app) == before
    assert not [w for w in warnings(app) if "not connected" in w]


def test_parameter_edge_is_a_bare_node_name(app):
    run(app, "remove-edge", "--producer", "threshold", "--consumer", f"{CODE}.threshold")
    result = run(app, "add-edge", "--producer", "threshold", "--consumer", f"{CODE}.threshold")
    assert result.exit_code == 0, result.describe()
    assert ("threshold", f"{CODE}.threshold") in edges(app)


@pytest.mark.parametrize(
    ("producer", "consumer", "message"),
    [
        ("front_camra.video_out", f"{CODE}.video_in", "did you mean front_camera?"),
        (f"{CODE}.video_in", "hdmi_output.video_in", "is an input, not an output"),
        ("front_camera.video_out", f"{CODE}.video_out", "is an output, not an input"),
        ("roi", f"{CODE}.threshold", "connects a string output to a float32 input"),
        ("front_camera.video_out", "roi", "value node"),
        ("front_camera.nope", f"{CODE}.video_in", "port 'nope' is not an output"),
        (f"{CODE}", "hdmi_output.video_in", "names no port"),
    ],
)
def test_bad_edges_are_refused_and_change_nothing(app, producer, consumer, message):
    before = snapshot(app)
    result = run(app, "add-edge", "--producer", producer, "--consumer", consumer)
    assert result.exit_code == 1, result.describe()
    assert message in result.stderr and "Traceback" not in result.stderr
    assert snapshot(app) == before


def test_remove_edge_that_is_not_there(app):
    before = snapshot(app)
    result = run(app, "remove-edge", "--producer", "roi", "--consumer", f"{CODE}.treshold")
    assert result.exit_code == 1 and "did you mean roi -> people_counter_node.roi" in result.stderr
    assert snapshot(app) == before


def test_remove_node_takes_its_edges(app):
    result = run(app, "remove-node", "--name", "hdmi_output")
    assert result.exit_code == 0, result.describe()
    assert "hdmi_output" not in {n["name"] for n in graph(app)["nodes"]}
    assert not [e for e in edges(app) if "hdmi_output" in e[1]]
    assert any("no edge reaches a data sink" in w for w in warnings(app))
    missing = run(app, "remove-node", "--name", "hdmi_outptu")
    assert missing.exit_code == 1 and "no node 'hdmi_outptu'" in missing.stderr


def test_remove_package_keeps_the_folder_unless_asked(app):
    folder = app / "packages" / "123456789012-people_counter-1.0"
    result = run(app, "remove-package", "--name", "people_counter")
    assert result.exit_code == 0, result.describe()
    assert "front_camera.video_out -> people_counter_node.video_in" in result.stderr
    nodes = {n["name"] for n in graph(app)["nodes"]}
    assert CODE not in nodes and "detector" in nodes
    assert "123456789012::people_counter" not in {p["name"] for p in graph(app)["packages"]}
    assert all(CODE not in p and CODE not in c for p, c in edges(app))
    assert folder.is_dir()
    result = run(app, "remove-package", "--name", "123456789012::yolox_nano", "--delete-folder")
    assert result.exit_code == 0, result.describe()
    assert not (app / "packages" / "123456789012-yolox_nano-1.0").exists()
    assert list((app / "packages").iterdir()) == [folder]
    missing = run(app, "remove-package", "--name", "yolox_nano")
    assert missing.exit_code == 1 and "lists no package" in missing.stderr


def test_a_graph_without_edges_warns_but_validates(tmp_path):
    assert run(tmp_path, "init-project", "--name", "app").exit_code == 0
    app = tmp_path / "app"
    assert run(app, "add-panorama-package", "--type", "camera", "--name", "cam").exit_code == 0
    result = run(app, "validate", "--json")
    assert result.exit_code == 0, result.describe()
    found = [p for p in json.loads(result.stdout)["problems"] if p["severity"] == "warning"]
    assert [p["message"] for p in found] == [
        "the graph has no edges: no node is connected to another"
    ]
    assert "add-edge" in found[0]["hint"]


def test_mistyped_command_says_did_you_mean(tmp_path):
    result = run(tmp_path, "add-egde")
    assert result.exit_code == 2 and "Did you mean 'add-edge'?" in result.stderr
