"""run --in-container decisions made before Docker is asked: the default image tags of a
node's package, --image bindings, published and closed ports, notes, --python refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from panorama_cli.build.containers import image_tag, project_key
from panorama_cli.errors import UsageError, UserError
from panorama_cli.localrun.apps.container_images import (
    NodeImage,
    default_images,
    image_choices,
    port_notes,
    prepare_containers,
)
from panorama_cli.localrun.plan import RunOptions, build_plan
from panorama_cli.project.project import Project
from tests.localrun.helpers import ACCOUNT, PACKAGE, make_project

APP = "import panoramasdk\n"


def _project(tmp_path: Path, rules: list[dict[str, object]]) -> Path:
    root = make_project(tmp_path, APP, cameras=(), hdmi=False, params={})
    manifest_path = root / "packages" / f"{ACCOUNT}-{PACKAGE}-1.0" / "package.json"
    manifest = json.loads(manifest_path.read_text())
    body = manifest["nodePackage"]
    container = [{"type": "container", "assetUri": "a.tar.gz"}]
    body["assets"] = [
        {"name": "older", "implementations": container},
        {"name": "weights", "implementations": [{"type": "model", "assetUri": "m.tar.gz"}]},
        {"name": "code_asset", "implementations": container},  # the interface's asset
    ]
    body["interfaces"][0]["network"] = {"inboundPorts": [{"port": 8080}, {"port": 9090}]}
    manifest_path.write_text(json.dumps(manifest))
    graph_path = root / "graphs" / "app" / "graph.json"
    graph = json.loads(graph_path.read_text())
    graph["nodeGraph"]["networkRoutingRules"] = rules
    graph_path.write_text(json.dumps(graph))
    return root


def _plan(root: Path, **options):
    return build_plan(Project(root), RunOptions(in_container=True, **options))


RULE = {"node": "code_node", "containerPort": 8080, "hostPort": 18080}


def test_default_images_are_build_containers_tags_interface_asset_first(tmp_path):
    plan = _plan(_project(tmp_path, [RULE]))
    [business] = plan.business
    tags, assets = default_images(business)
    assert assets == ["code_asset", "older"]  # the model asset is no image
    assert tags == [image_tag(business.package, "code_asset"), image_tag(business.package, "older")]
    key = project_key(business.package)  # the project's: two projects never share a tag
    assert tags[0] == f"panorama-cli/{ACCOUNT.lower()}-app-1-0-{key}:code_asset"
    assert len(key) == 8 and key != project_key(
        _plan(_project(tmp_path / "b", [])).business[0].package
    )


def test_host_mode_notes_the_containerport_in_container_mode_publishes_it(tmp_path):
    root = _project(tmp_path, [RULE])
    host = build_plan(Project(root), RunOptions())
    assert any("binds its containerPort 8080 directly" in n for n in host.notes)
    plan = _plan(root)
    assert not any("directly" in n for n in plan.notes)
    images = {"code_node": NodeImage("code_node", "img", "sha256:1", "linux/amd64")}
    notes = port_notes(plan, images)
    assert images["code_node"].ports == {8080: 18080}
    assert notes == [
        "networkRoutingRules: node code_node containerPort 8080 -> 127.0.0.1:18080",
        "node code_node: inboundPorts 9090 have no networkRoutingRule: closed, as on the device",
    ]


def test_one_host_port_published_twice_is_one_line(tmp_path):
    plan = _plan(_project(tmp_path, [RULE, {**RULE, "containerPort": 9090}]))
    images = {"code_node": NodeImage("code_node", "img", "sha256:1", "linux/amd64")}
    with pytest.raises(UserError, match="hostPort 18080 is published twice"):
        port_notes(plan, images)


def test_image_bindings_name_business_logic_nodes(tmp_path):
    plan = _plan(_project(tmp_path, []))
    assert image_choices({"": "my/app:1"}, plan.business) == {"code_node": "my/app:1"}
    assert image_choices({"": "a", "code_node": "b"}, plan.business) == {"code_node": "b"}
    assert image_choices({}, plan.business) == {}
    with pytest.raises(UsageError, match="--image other=...: unknown business-logic node 'other'"):
        image_choices({"other": "x"}, plan.business)


def test_python_is_refused_before_docker_is_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    plan = _plan(_project(tmp_path, []), python="/usr/bin/python3")
    notes: list[str] = []
    with pytest.raises(UserError, match="--python applies to runs on this machine"):
        prepare_containers(plan, lambda event, data: notes.append(data["text"]))
    plan = _plan(_project(tmp_path / "b", []))
    with pytest.raises(UserError, match="cannot reach the Docker engine"):
        prepare_containers(plan, lambda event, data: notes.append(data["text"]))
    assert notes == []
