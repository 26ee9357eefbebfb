"""import-application on the official sample apps (real input)."""

import shutil

import pytest

from tests.support import official
from tests.support.paths import APPS
from tests.support.project_helpers import load, run, snapshot
from tests.support.shared import require


def copy_app(name, tmp_path):
    root = tmp_path / name
    require(APPS / name)
    shutil.copytree(APPS / name, root)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


@pytest.mark.parametrize("app", ["aws-panorama-sample", "debug-server"])
def test_import_rewrites_and_round_trips(tmp_path, app):
    root = copy_app(app, tmp_path)
    original = snapshot(root)
    result = run(root, "import-application", "--account-id", "210987654321")
    assert result.exit_code == 0, result.stderr
    folders = sorted(p.name for p in (root / "packages").iterdir())
    assert all(f.startswith("210987654321-") for f in folders)
    graph = load(root / "graphs" / "my-app" / "graph.json")["nodeGraph"]
    names = [p["name"] for p in graph["packages"]]
    assert "panorama::abstract_rtsp_media_source" in names
    assert all(n.startswith(("210987654321::", "panorama::")) for n in names)
    assert "123456789012" not in (root / "graphs" / "my-app" / "graph.json").read_text()
    assert "123456789012" not in (root / "graphs" / "my-app" / "override.json").read_text()
    assert official.errors(official.GRAPH, load(root / "graphs" / "my-app" / "graph.json")) == []
    # anonymize back: the manifests keep their content and key order
    assert run(root, "import-application", "--account-id", "123456789012").exit_code == 0
    after = snapshot(root)
    assert sorted(after) == sorted(original)
    for path, data in original.items():
        if path.endswith(".json"):
            import json

            assert json.loads(after[path]) == json.loads(data), path
            assert list(json.loads(after[path])) == list(json.loads(data))
        else:
            assert after[path] == data


def test_import_refuses_bad_account_and_conflicts(tmp_path):
    root = copy_app("aws-panorama-sample", tmp_path)
    before = snapshot(root)
    for bad in ("../x", "1234567890123", "a b"):
        result = run(root, "import-application", "--account-id", bad)
        assert result.exit_code == 1 and "invalid account id" in result.stderr
    (root / "packages" / "555555555555-SAMPLE_CODE-1.0").mkdir()
    (root / "packages" / "555555555555-SAMPLE_CODE-1.0" / "x").write_text("x")
    before = snapshot(root)
    result = run(root, "import-application", "--account-id", "555555555555")
    assert result.exit_code == 1 and "already exists" in result.stderr
    assert snapshot(root) == before


def test_second_import_is_a_no_op(tmp_path):
    root = copy_app("debug-server", tmp_path)
    assert run(root, "import-application", "--account-id", "777777777777").exit_code == 0
    before = snapshot(root)
    result = run(root, "import-application", "--account-id", "777777777777")
    assert result.exit_code == 0 and "nothing to do" in result.stderr
    assert snapshot(root) == before
