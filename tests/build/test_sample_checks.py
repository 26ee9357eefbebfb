"""The first ten minutes (issue 15 §7): a fresh sample validates (its unbuilt code asset is a
warning, an error only for package-application), a sample's --model is checked at init, the
face-blur log counts in proper English, an export bar without a size shows no fake total."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest

from panorama_cli import console
from panorama_cli.build import sample_models
from panorama_cli.cloud.package_plan import plan
from panorama_cli.errors import UserError
from panorama_cli.project.project import Project
from panorama_cli.project.validation import errors, validate_project
from panorama_cli.resources import data_dir
from tests.support.cli_runner import run_cli
from tests.support.onnx_models import pool_model
from tests.support.paths import REPO, SHARED
from tests.support.shared import require

YOLOX = SHARED / "models" / "yolox_nano" / "yolox_nano.onnx"


@pytest.fixture(scope="module")
def fresh_sample(tmp_path_factory) -> Path:
    require(YOLOX)
    parent = tmp_path_factory.mktemp("fresh")
    result = run_cli(
        ["init-project", "--sample", "people-counter", "--model", str(YOLOX)], cwd=parent
    )
    assert result.exit_code == 0, result.describe()
    return parent / "people-counter"


def test_a_fresh_sample_validates_with_one_warning_naming_build_container(fresh_sample):
    result = run_cli(["validate", "--json"], cwd=fresh_sample)
    assert result.exit_code == 0, result.describe()
    report = json.loads(result.stdout)
    assert report["valid"] is True
    [warning] = report["problems"]
    assert warning["severity"] == "warning" and "code_asset" in warning["message"]
    assert "not built yet" in warning["message"]
    assert "panorama-cli build-container --container-asset-name code_asset" in warning["hint"]
    plain = run_cli(["validate"], cwd=fresh_sample)
    assert plain.exit_code == 0
    assert "build-container --container-asset-name code_asset" in plain.stderr  # next step


def test_the_unbuilt_code_asset_is_an_error_for_package_application(fresh_sample):
    project = Project(fresh_sample)
    assert errors(validate_project(project)) == []
    [strict] = errors(validate_project(project, for_upload=True))
    assert "code_asset" in strict.message
    planned = {p.package.name: p for p in plan(project)}
    assert [p.message for p in planned["people_counter"].problems] == [strict.message]
    assert planned["yolox_nano"].problems == []


@pytest.mark.parametrize("sample", ["people-counter", "face-blur"])
def test_a_model_that_is_not_onnx_is_refused_at_init_with_one_line(tmp_path, sample):
    bad = tmp_path / "random.bin"
    bad.write_bytes(bytes(range(256)) * 40)
    result = run_cli(["init-project", "--sample", sample, "--model", str(bad)], cwd=tmp_path)
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"--model {bad}: not an ONNX model" in lines[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["random.bin"]  # nothing left


def test_an_onnx_model_with_other_inputs_is_refused_at_init(tmp_path):
    other = pool_model(tmp_path / "other.onnx", name="images", shape=(1, 3, 320, 320))
    result = run_cli(
        ["init-project", "--sample", "people-counter", "--model", str(other)], cwd=tmp_path
    )
    assert result.exit_code == 1
    assert "inputs {'images': [1, 3, 320, 320]}" in result.stderr
    assert "the sample's code needs inputs {'images': [1, 3, 416, 416]}" in result.stderr
    assert not (tmp_path / "people-counter").exists()


def test_the_real_models_pass_the_check():
    require(YOLOX)
    sample_models.check_signature(YOLOX.read_bytes(), sample_models.YOLOX_SIGNATURE, "yolox")
    with pytest.raises(UserError, match="is not CenterFace"):
        sample_models.centerface(YOLOX)


def test_face_blur_counts_in_proper_english(monkeypatch):
    fake = types.ModuleType("panoramasdk")
    fake.node = object  # the app subclasses panoramasdk.node
    monkeypatch.setitem(sys.modules, "panoramasdk", fake)
    monkeypatch.syspath_prepend(str(REPO))  # backpack.yolox
    path = data_dir("templates") / "samples" / "face_blur" / "app.py"
    spec = importlib.util.spec_from_file_location("face_blur_app", path)
    assert spec is not None and spec.loader is not None
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    assert [app.counted(n, "face", "faces") for n in (0, 1, 2)] == ["0 faces", "1 face", "2 faces"]
    assert "%d faces" not in path.read_text()


def test_a_bar_without_total_shows_bytes_not_a_fake_total():
    progress = console._byte_progress()
    export = progress.add_task("export code_asset", total=None)
    progress.advance(export, 291_700_000)
    model = progress.add_task("model", total=1_000_000)
    progress.advance(model, 500_000)
    texts = [[str(col.render(task)) for col in progress.columns] for task in progress.tasks]
    assert "291.7 MB" in texts[0] and not any("/?" in t for t in texts[0]), texts[0]
    assert "0.5/1.0 MB" in texts[1]
