"""The conversion driver (panorama_cli.localrun.models.convert) with a stand-in converter: a script
run by this interpreter that writes a real ONNX (y = 2 x) and answers as the framework
scripts do. What is checked: converted once then cached (meta.json keeps the check's error),
the script's one-line errors, a check above 1e-3 refused, nothing left by a failure, a missing
converter module named in one line, and an isolated environment without the base's packages."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

from panorama_cli.errors import UserError
from panorama_cli.localrun.models import convert
from panorama_cli.localrun.models.inference import load_model
from tests.support import onnx_models

SCRIPT = """
import json, os, sys
from pathlib import Path

spec = json.load(open(sys.argv[1]))
with open(os.environ["FAKE_CALLS"], "a") as calls:
    calls.write("x\\n")
[model] = Path(spec["model_dir"]).iterdir()  # model.fake, or the archive's model.pt
how = json.loads(model.read_text() or "{}")
if how.get("crash"):
    print("noise on stdout")
    sys.exit("Segmentation fault-ish: the framework died")
if how.get("error"):
    print(json.dumps({"ok": False, "error": how["error"]}))
    sys.exit(1)
import onnx
from onnx import TensorProto, helper

[(name, shape)] = [(i["name"], i["shape"]) for i in spec["inputs"]]
two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
graph = helper.make_graph(
    [helper.make_node("Mul", [name, "two"], ["y"])], "fake",
    [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)], [two],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.save(model, spec["output"])
print(json.dumps({"ok": True, "framework_version": "0.1", "output_names": ["y"],
                  "max_rel_error": how.get("rel", 1e-7)}))
"""


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """Framework "pytorch" served by the stand-in converter; returns the calls file."""
    script = tmp_path / "_fake_export.py"
    script.write_text(textwrap.dedent(SCRIPT))
    module = types.ModuleType("panorama_cli.localrun.models.convert._fake")
    module.NAME, module.VERSION, module.LABEL = "fake", "1", "Fake 0.1"
    module.REQUIREMENTS, module.SCRIPT = ["fake==0.1"], script
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(convert.CONVERTERS, "pytorch", "_fake")
    monkeypatch.setattr(convert, "_ensure_env", lambda converter, notify: sys.executable)
    calls = tmp_path / "calls.txt"
    calls.touch()
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    monkeypatch.setenv("PANORAMA_CLI_CONVERTED_DIR", str(tmp_path / "converted"))
    return calls


def model_file(tmp_path: Path, how: dict | None = None) -> Path:
    path = tmp_path / "model.fake"
    path.write_text(json.dumps(how or {}))
    return path


def test_converted_once_then_cached_with_the_checks_error(fake, tmp_path):
    notes = []
    source = model_file(tmp_path)
    first = convert.convert_asset(
        source, "PYTORCH", [("x", [1, 3])], notify=lambda e, d: notes.append(d["text"])
    )
    assert not first.cached and first.max_rel_error == pytest.approx(1e-7)
    assert first.framework == "fake" and first.framework_version == "0.1"
    assert notes[0] == f"converting {source} (Fake 0.1 -> ONNX), first time only"
    assert "max relative error 1e-07" in notes[1]
    meta = json.loads((first.onnx.parent / "meta.json").read_text())
    assert meta["max_rel_error"] == pytest.approx(1e-7) and meta["output_names"] == ["y"]
    assert meta["inputs"] == [{"name": "x", "shape": [1, 3]}]
    assert first.onnx.parent.parent == tmp_path / "converted"
    notes.clear()
    second = convert.convert_asset(
        source, "pytorch", [("x", [1, 3])], notify=lambda e, d: notes.append(d)
    )
    assert second.cached and second.onnx == first.onnx and notes == []
    assert fake.read_text().count("x") == 1  # the script ran once
    other = convert.convert_asset(
        source, "pytorch", [("x", [1, 4])], notify=lambda e, d: notes.append(d)
    )
    assert other.onnx != first.onnx  # the inputs are part of the key
    hidden = [p.name for p in (tmp_path / "converted").iterdir() if p.name[0] == "."]
    assert all(name.endswith(".lock") for name in hidden)  # no temporary folder left


@pytest.mark.parametrize(
    ("how", "says"),
    [
        ({"error": "needs net-0000.params"}, "model m: needs net-0000.params"),
        ({"crash": True}, "model m: the converter stopped (status 1): Segmentation fault-ish"),
        ({"rel": 0.25}, "model m: the converted model's outputs differ from Fake 0.1's by 0.25"),
        (
            {"rel": float("nan")},
            "model m: the converted model's outputs differ from Fake 0.1's by nan",
        ),
    ],
)
def test_a_failed_conversion_is_one_line_and_leaves_nothing(fake, tmp_path, how, says):
    with pytest.raises(UserError) as info:
        convert.convert_asset(
            model_file(tmp_path, how), "pytorch", [("x", [2])], notify=lambda *a: None,
            label="model m",
        )  # fmt: skip
    assert info.value.message.startswith(says) and "\n" not in info.value.message
    left = [p.name for p in (tmp_path / "converted").iterdir()]
    assert len(left) == 1 and left[0].endswith(".lock")  # no entry, no temporary folder


def test_a_framework_without_its_converter_module_says_so(monkeypatch, tmp_path):
    monkeypatch.setitem(convert.CONVERTERS, "tensorflow", "_not_written_yet")
    with pytest.raises(UserError) as info:
        convert.convert_asset(
            tmp_path, "TENSORFLOW", [("x", [1])], notify=lambda *a: None, label="model n"
        )
    message = info.value.message
    assert message.startswith("model n: this panorama-cli has no converter for TensorFlow models")
    assert "MXNet" in message and "--model" in info.value.hint
    with pytest.raises(UserError, match="no converter for DARKNET models"):
        convert.convert_asset(tmp_path, "DARKNET", [("x", [1])], notify=lambda *a: None)


def test_inputs_need_names_and_fixed_shapes(fake, tmp_path):
    for inputs in ([], [("x", [1, -1])]):
        with pytest.raises(UserError, match=r"needs each input's name and fixed shape"):
            convert.convert_asset(model_file(tmp_path), "pytorch", inputs, notify=print)


def test_load_model_converts_a_non_onnx_asset_and_runs_it(fake, tmp_path):
    """A TorchScript file (kind -> pytorch) goes through the converter; --model wins."""
    from tests.localrun.test_localrun_inference import model_project

    (tmp_path / "src").mkdir()
    model_file(tmp_path / "src").rename(tmp_path / "src" / "model.pt")
    archive = onnx_models.archive(
        tmp_path / "m.tar.gz", {"model.pt": (tmp_path / "src" / "model.pt").read_bytes()}
    )
    node, package, _ = model_project(tmp_path, archive, [{"name": "x", "shape": [1, 3]}])
    notes = []
    model = load_model(
        node, package, model_path=None, cache_dir=tmp_path / "cache",
        notify=lambda e, d: notes.append(d["text"]),
    )  # fmt: skip
    assert model.backend == "onnxruntime-cpu" and model.input_names == ("x",)
    (y,) = model({"x": np.array([[1.0, 2.0, 3.0]], np.float32)})
    assert y.tolist() == [[2.0, 4.0, 6.0]]
    assert model.conversion_info["cached"] is False
    assert notes[0] == "converting model net (Fake 0.1 -> ONNX), first time only"
    again = load_model(node, package, model_path=None, cache_dir=tmp_path / "cache")
    assert again.conversion_info["cached"] is True
    onnx = onnx_models.pool_model(tmp_path / "pool.onnx")
    given = load_model(node, None, model_path=onnx, cache_dir=tmp_path / "cache")
    assert given.conversion is None and given.conversion_info is None


def test_isolated_environment_has_none_of_the_base_packages(tmp_path):
    from panorama_cli.localrun.models.convert import envs

    notes = []
    python = envs.ensure_env(
        "empty", ["pip"], lambda e, d: notes.append(d["text"]), cache_dir=tmp_path / "envs"
    )
    assert "first time only" in notes[0] and "environment ready in" in notes[-1]
    probe = [python, "-c", "import numpy"]
    assert subprocess.run(probe, capture_output=True, check=False).returncode != 0
    assert subprocess.run([sys.executable, "-c", "import numpy"], check=False).returncode == 0
    notes.clear()
    assert (
        envs.ensure_env("empty", ["pip"], lambda e, d: notes.append(d), cache_dir=tmp_path / "envs")
        == python
    )
    assert notes == []
