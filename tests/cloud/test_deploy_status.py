"""deploy and status end to end against the Panorama test server on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from tests.support.cloud_project import make_app
from tests.support.project_helpers import run, snapshot

FAST = ("--poll-interval", "0.1")
ROLE = "arn:aws:iam::123456789012:role/PanoramaApplicationRole"


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path, packages=1)


@pytest.fixture
def device(panorama_env):
    return panorama_env.server.add_device(name="front_door")


def graph_file(root):
    return next((root / "graphs").glob("*/graph.json"))


def node_names(root):
    return [n["name"] for n in json.loads(graph_file(root).read_text())["nodeGraph"]["nodes"]]


def write_override(root, replace: str):
    path = root / "override.json"
    path.write_text(
        json.dumps(
            {
                "nodeGraphOverrides": {
                    "envelopeVersion": "2021-01-01",
                    "packages": [
                        {"name": "panorama::abstract_rtsp_media_source", "version": "1.0"}
                    ],
                    "nodes": [
                        {
                            "name": "door_cam",
                            "interface": "panorama::abstract_rtsp_media_source.rtsp_v1_interface",
                            "overridable": True,
                            "launch": "onAppStart",
                        }
                    ],
                    "nodeOverrides": [{"replace": replace, "with": [{"name": "door_cam"}]}],
                }
            },
            indent=2,
        )
    )
    return path


def test_deploy_sends_the_graph_and_waits(app, panorama_env, device):
    override = write_override(app, node_names(app)[0])
    result = run(
        app, "deploy", "--target", "panorama", "--device-id", device, "--name", "people_counter",
        "--description", "v1", "--override", str(override), "--runtime-role-arn", ROLE, "--wait",
        *FAST, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.describe()
    shown = result.json()
    assert shown["Status"] == "DEPLOYMENT_SUCCEEDED"
    [sent] = panorama_env.server.calls_to("CreateApplicationInstance")
    # One-line JSON (the model's ^.+$ pattern admits no line break), same content and order.
    graph_text = sent["ManifestPayload"]["PayloadData"]
    assert "\n" not in graph_text
    assert json.loads(graph_text) == json.loads(graph_file(app).read_text())
    assert list(json.loads(graph_text)["nodeGraph"]) == list(
        json.loads(graph_file(app).read_text())["nodeGraph"]
    )
    assert json.loads(sent["ManifestOverridesPayload"]["PayloadData"]) == json.loads(
        override.read_text()
    )
    assert sent["DefaultRuntimeContextDevice"] == device
    assert sent["RuntimeRoleArn"] == ROLE and sent["Description"] == "v1"
    assert "DEPLOYMENT_SUCCEEDED" in result.stderr


def test_deploy_without_wait_names_the_status_command(app, panorama_env, device):
    result = run(app, "deploy", "--target", "panorama", "--device-id", device, "--name", "pc")
    assert result.exit_code == 0, result.describe()
    assert "panorama-cli status applicationInstance-" in result.stderr
    assert "DescribeApplicationInstance" not in [op for op, _ in panorama_env.server.calls]


def test_failed_deployment_exits_non_zero_with_the_reason(app, panorama_env, device):
    panorama_env.server.set_deploy_outcome("pc", "failed", "Camera stream unreachable")
    result = run(app, "deploy", "--target", "panorama", "--device-id", device, "--name", "pc",
                 "--wait", *FAST)  # fmt: skip
    assert result.exit_code == 1, result.describe()
    assert "DEPLOYMENT_FAILED: Camera stream unreachable" in result.stderr
    instance_id = panorama_env.server.state.instances and next(
        iter(panorama_env.server.state.instances)
    )
    result = run(app, "status", instance_id, "--wait", *FAST)
    assert result.exit_code == 1
    assert "Camera stream unreachable" in result.stderr


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("too_big", "Panorama accepts at most 51200"),
        ("bad_schema", "graph.json#/nodeGraph"),
        ("bad_override", "override.json#/nodeGraphOverrides/nodeOverrides/0/replace"),
        ("bad_device", "invalid device id"),
        ("bad_role", "invalid runtime role ARN"),
    ],
)
def test_bad_input_is_refused_before_any_call(app, panorama_env, device, change, expected):
    args = ["deploy", "--target", "panorama", "--device-id", device, "--name", "pc"]
    graph = graph_file(app)
    data = json.loads(graph.read_text())
    if change == "too_big":
        node = data["nodeGraph"]["nodes"][0]
        data["nodeGraph"]["nodes"] += [{**node, "name": f"copy_{i}"} for i in range(800)]
        graph.write_text(json.dumps(data))
    elif change == "bad_schema":
        data["nodeGraph"]["edges"] = "not a list"
        graph.write_text(json.dumps(data))
    elif change == "bad_override":
        args += ["--override", str(write_override(app, "no_such_node"))]
    elif change == "bad_device":
        args[4] = "device/../x"
    elif change == "bad_role":
        args += ["--runtime-role-arn", "role/x"]
    before = snapshot(app)
    result = run(app, *args)
    assert result.exit_code == 1, result.describe()
    assert expected in result.stderr
    assert panorama_env.server.calls == []
    assert snapshot(app) == before


def test_status_lists_and_describes(panorama_env, device, tmp_path):
    server = panorama_env.server
    first = server.add_application_instance(
        Name="counter", DefaultRuntimeContextDevice=device, Status="DEPLOYMENT_SUCCEEDED"
    )
    server.add_application_instance(Name="other", DefaultRuntimeContextDevice="device-x")
    result = run(tmp_path, "status", "--json")
    assert result.exit_code == 0, result.describe()
    listed = result.json()["ApplicationInstances"]
    assert {i["Name"] for i in listed} == {"counter", "other"}
    result = run(tmp_path, "status", "--device-id", device, "--json")
    assert [i["Name"] for i in result.json()["ApplicationInstances"]] == ["counter"]
    result = run(tmp_path, "status", first)
    assert result.exit_code == 0, result.describe()
    assert "counter" in result.stdout and "front_door" in result.stdout
    result = run(tmp_path, "status", "applicationInstance-unknown")
    assert result.exit_code == 1
    assert "no application instance applicationInstance-unknown" in result.stderr


def test_status_pages_through_many_instances(panorama_env, tmp_path):
    for i in range(30):  # MaxResults is at most 25: two pages at least
        panorama_env.server.add_application_instance(Name=f"app_{i}")
    result = run(tmp_path, "status", "--json")
    assert result.exit_code == 0, result.describe()
    assert len(result.json()["ApplicationInstances"]) == 30
    lists = panorama_env.server.calls_to("ListApplicationInstances")
    assert len(lists) >= 2


def test_status_wait_needs_an_id(tmp_path):
    result = run(tmp_path, "status", "--wait")
    assert result.exit_code == 2
    assert "--wait needs an APPLICATION_INSTANCE_ID" in result.stderr


def test_interrupted_deploy_says_the_request_may_have_been_sent(
    app, panorama_env, device, monkeypatch
):
    from panorama_cli.cloud.aws import panorama as api

    real = api.create_application_instance

    def send_then_interrupt(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "create_application_instance", send_then_interrupt)
    result = run(app, "deploy", "--target", "panorama", "--device-id", device, "--name", "pc")
    assert result.exit_code == 130, result.describe()
    assert "CreateApplicationInstance may already have been sent" in result.stderr
    assert "panorama-cli status --device-id" in result.stderr
    assert "nothing was changed" not in result.stderr
    assert len(panorama_env.server.calls_to("CreateApplicationInstance")) == 1
