"""Override *templates* shaped like the official samples' (issue 15 §1): import-application
rewrites their plain account ids as text and keeps every {placeholder}; validate notes them;
run/deploy refuse to apply one as given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from panorama_cli.cloud.deployment import DeployRequest, check_request
from panorama_cli.errors import UserError
from panorama_cli.project.project import Project
from tests.project.test_real_apps import AS_GIVEN, copy_app, validate
from tests.support.project_helpers import run, snapshot

NEW = "210987654321"
OLD = "123456789012"


def _camera(name: str, account: str, launch: str = "onAppStart") -> dict:
    return {
        "name": f"{name}_node",
        "interface": f"{account}::{name}.{name}",
        "overridable": True,
        "overrideMandatory": False,
        "launch": launch,
    }


def _template(cameras: list[tuple[str, str]], extra_nodes: list[dict] = ()) -> str:
    """A nodeGraphOverrides template replacing the sample's camera_node with ``cameras``
    ((name, account) pairs, placeholders allowed in both)."""
    body = {
        "nodeGraphOverrides": {
            "envelopeVersion": "2021-01-01",
            "packages": [{"name": f"{a}::{n}", "version": "1.0"} for n, a in cameras],
            "nodes": [_camera(n, a) for n, a in cameras] + list(extra_nodes),
            "nodeOverrides": [
                {"replace": "camera_node", "with": [{"name": f"{n}_node"} for n, _ in cameras]}
            ],
        }
    }
    return json.dumps(body, indent=4) + "\n"


#: The shapes seen in the official samples and workshops: all placeholders (account and
#: camera), a plain account with a camera placeholder, two cameras, a value placeholder.
SHAPES = {
    "all-placeholders": _template([("{YourCameraName}", "{YourAwsAccountId}")]),
    "plain-account": _template([("{YourCameraName}", OLD)]),
    "multi-camera": _template([("{Camera1Name}", OLD), ("{Camera2Name}", "{account_id}")]),
    "value-placeholder": _template(
        [("{YourCameraName}", OLD)],
        [{"name": "region_override", "interface": "string", "value": "{YourRegion}"}],
    ),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_import_rewrites_account_ids_of_a_template_as_text(tmp_path, shape):
    root = copy_app(tmp_path)
    template = root / "graphs" / "my-app" / "override_template.json"
    text = SHAPES[shape]
    template.write_text(text)
    result = run(root, "import-application", "--account-id", NEW)
    assert result.exit_code == 0, result.stderr
    # text replacement: the bytes are the original's with the account swapped, nothing else
    assert template.read_text() == text.replace(OLD, NEW)
    assert "{YourCameraName}" in template.read_text() or "{Camera1Name}" in template.read_text()
    lines = result.stderr.splitlines()
    notes = [line for line in lines if line.startswith("note:") and "override_template" in line]
    assert len(notes) == 1, result.stderr
    assert "template with {placeholders}" in notes[0] and "nothing else checked" in notes[0]
    count = text.count(OLD)
    assert (f"{count} account id" in notes[0]) if count else ("no account id" in notes[0])
    assert all(f.name.startswith(NEW) for f in (root / "packages").iterdir())
    # and back: the template returns byte for byte
    assert run(root, "import-application", "--account-id", OLD).exit_code == 0
    assert template.read_text() == text


def test_only_account_ids_change_in_a_template(tmp_path):
    root = copy_app(tmp_path)
    template = root / "graphs" / "my-app" / "override_template.json"
    # a longer number, another account outside a package reference, and a port stay
    text = _template(
        [("{YourCameraName}", OLD)],
        [
            {"name": "big", "interface": "string", "value": "9123456789012"},
            {"name": "other", "interface": "string", "value": "555555555555"},
        ],
    )
    template.write_text(text)
    assert run(root, "import-application", "--account-id", NEW).exit_code == 0
    after = template.read_text()
    assert after == text.replace(f'"{OLD}::', f'"{NEW}::')
    assert "9123456789012" in after and "555555555555" in after


def test_validate_notes_a_template_and_checks_nothing_in_it(tmp_path):
    root = copy_app(tmp_path)
    graph_dir = root / "graphs" / "my-app"
    (graph_dir / "override_template.json").write_text(SHAPES["multi-camera"])
    code, problems, _ = validate(root)
    notes = [(p["file"], p["message"]) for p in problems if p["severity"] == "note"]
    assert notes == [
        (
            "graphs/my-app/override_template.json",
            "skipped, a template with {placeholders} ({Camera1Name}, {account_id}, {Camera2Name})",
        )
    ]
    assert sorted(p["pointer"] for p in problems if p["severity"] != "note") == AS_GIVEN


def test_run_and_deploy_refuse_a_template_as_given(tmp_path):
    root = copy_app(tmp_path)
    template = root / "graphs" / "my-app" / "override_template.json"
    template.write_text(SHAPES["all-placeholders"])
    before = snapshot(root)
    result = run(root, "run", "--override", str(template), "--frames", "1")
    assert result.exit_code == 1
    assert (
        "override_template.json is an override template ({YourAwsAccountId}, {YourCameraName})"
        in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert snapshot(root) == before
    request = DeployRequest("device-1", "app", override_path=Path("override_template.json"))
    with pytest.raises(UserError, match=r"is an override template \(\{YourAwsAccountId\}"):
        check_request(Project(root), request)


def test_a_template_that_is_not_json_gets_its_account_ids_rewritten_too(tmp_path):
    root = copy_app(tmp_path)
    template = root / "graphs" / "my-app" / "override_template.json"
    text = (
        '{"nodeGraphOverrides": {"envelopeVersion": "2021-01-01",\n'
        f'  "packages": [{{"name": "{OLD}::{{{{camera}}}}", "version": "1.0"}}],\n'
        '  "nodes": [{"name": "threshold_override", "interface": "float32",'
        ' "value": {threshold}}]}}\n'
    )
    template.write_text(text)
    result = run(root, "import-application", "--account-id", NEW)
    assert result.exit_code == 0, result.stderr
    assert template.read_text() == text.replace(OLD, NEW)
    assert "{{camera}}" in template.read_text() and "{threshold}" in template.read_text()
    [note] = [
        line
        for line in result.stderr.splitlines()
        if "override_template" in line and "note" in line
    ]
    assert "not JSON: 1 account id rewritten, nothing else checked" in note


#: The official kinesis_video_streams sample's deployment_overrides template: no
#: {placeholders}, but replacements naming nodes the user is to add, and a camera removed.
UNFILLED = {
    "nodeGraphOverrides": {
        "envelopeVersion": "2021-01-01",
        "packages": [],
        "nodes": [],
        "nodeOverrides": [
            {"replace": "camera_node", "with": []},
            {"replace": "region", "with": [{"name": "override_region"}]},
            {"replace": "device_id", "with": [{"name": "override_device_id"}]},
        ],
    }
}


def test_validate_notes_an_unfilled_template_without_placeholders(tmp_path):
    root = copy_app(tmp_path)
    folder = root / "deployment_overrides"
    folder.mkdir()
    (folder / "override_configuration_template.json").write_text(json.dumps(UNFILLED, indent=4))
    code, problems, _ = validate(root)
    notes = [(p["file"], p["message"]) for p in problems if p["severity"] == "note"]
    assert notes == [
        (
            "deployment_overrides/override_configuration_template.json",
            "skipped, an override template to fill in (as given: /nodeGraphOverrides/"
            "nodeOverrides/1/with/0/name: node 'override_region' is not defined and 1 more)",
        )
    ]
    assert sorted(p["pointer"] for p in problems if p["severity"] != "note") == AS_GIVEN
    result = run(root, "import-application", "--account-id", NEW)
    assert result.exit_code == 0, result.stderr
    # the same file under another name is an override as given: its errors stay errors
    (folder / "override_configuration_template.json").rename(folder / "site.json")
    code, problems, _ = validate(root)
    assert code == 1
    assert [p["pointer"] for p in problems if "site.json" in p["file"]] == [
        "/nodeGraphOverrides/nodeOverrides/1/with/0/name",
        "/nodeGraphOverrides/nodeOverrides/2/with/0/name",
    ]
