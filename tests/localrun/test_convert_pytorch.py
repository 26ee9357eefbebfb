"""PyTorch model nodes run for real: a tiny module (conv + linear, returning a tuple of two
tensors) traced with torch.jit.trace in the converter environment, converted by the pytorch
converter's script (torch.onnx.export, checked against torch), and, packed and registered with
add-raw-model (framework PYTORCH), run under `run`: the app's node.call outputs are compared
with torch's own.

Needs the pytorch converter environment (`python -m tests.support.converter_envs pytorch`);
without it these tests skip with one reason (fail under CI=true)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from tests.localrun import convert_helpers
from tests.localrun.convert_helpers import MODEL_PKG, app_source, fixed_input, rel_error, run_app
from tests.support.converter_envs import build_in_env, require_env, run_script
from tests.support.project_helpers import run

SHAPE = (1, 3, 8, 8)

# argv: out_dir, kind ("net" | "fft" | "state_dict"); writes out_dir/model.pth and, for "net",
# reference.json (torch's outputs for the fixed input below)
BUILD = """
import json, sys
import torch

out_dir, kind = sys.argv[1], sys.argv[2]
torch.manual_seed(7)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.fc = torch.nn.Linear(4, 5)

    def forward(self, x):
        features = torch.relu(self.conv(x)).mean(dim=(2, 3))
        return torch.softmax(self.fc(features), dim=1), features * 2


class Fft(torch.nn.Module):
    def forward(self, x):
        return torch.fft.fft(x).abs()  # the TorchScript exporter has no aten::fft_fft


shape = (1, 3, 8, 8)
x = ((torch.arange(192) % 17) / 17.0).reshape(shape)
if kind == "state_dict":
    torch.save(Net().state_dict(), out_dir + "/model.pth")
elif kind == "fft":
    torch.jit.trace(Fft(), x).save(out_dir + "/model.pth")
else:
    traced = torch.jit.trace(Net().eval(), x)
    traced.save(out_dir + "/model.pth")
    with torch.no_grad():
        outputs = traced(x)
    json.dump([o.tolist() for o in outputs], open(out_dir + "/reference.json", "w"))
"""

APP = app_source(SHAPE, "data")


@pytest.fixture(scope="module")
def torch_python() -> Path:
    return require_env("pytorch")


def build(python: Path, folder: Path, kind: str = "net") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    build_in_env(python, BUILD, str(folder), kind)
    return folder


@pytest.fixture(scope="module")
def traced(torch_python, tmp_path_factory) -> Path:
    return build(torch_python, tmp_path_factory.mktemp("torch") / "net")


def test_traced_module_converts_with_its_tuple_outputs_in_order(torch_python, traced, tmp_path):
    import onnxruntime as ort

    onnx_path = tmp_path / "model.onnx"
    result, seconds, proc = run_script(
        "pytorch", torch_python, traced, [("data", list(SHAPE))], onnx_path
    )
    assert result["ok"] is True, result
    assert result["framework_version"].startswith("2.13.0")
    assert result["output_names"] == ["output0", "output1"]
    assert 0 <= result["max_rel_error"] <= 1e-3
    print(f"pytorch conversion: {seconds:.1f} s, max relative error {result['max_rel_error']:.2e}")
    # the ONNX takes the descriptor's name ("data" for forward(self, x): by position, as Neo)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape) for i in session.get_inputs()] == [("data", list(SHAPE))]
    got = session.run(None, {"data": fixed_input(SHAPE)})
    reference = json.loads((traced / "reference.json").read_text())
    assert [np.shape(o) for o in got] == [(1, 5), (1, 4)]  # (scores, features), torch's order
    assert max(rel_error(r, g) for r, g in zip(reference, got, strict=True)) <= 1e-3


@pytest.mark.parametrize(
    ("kind", "inputs", "says"),
    [
        ("empty", [("data", list(SHAPE))], "the archive has no PyTorch model: it needs one "
         "TorchScript file (.pt or .pth, from torch.jit.trace(model, example).save(path)); it "
         "holds labels.txt"),
        ("state_dict", [("data", list(SHAPE))], "model.pth is not a TorchScript module: it is "
         "a torch.save checkpoint (a state_dict or pickled module needs its code); save it "
         "with torch.jit.trace(model, example).save(path)"),
        ("net", [("data", list(SHAPE)), ("scale", [1])], "the descriptor gives 2 input(s) "
         "(data, scale); model.pth's forward takes 1: x"),
        ("fft", [("x", [1, 4])], "torch.onnx cannot export operator aten::fft_fft (PyTorch "
         "2.13.0"),
    ],
)  # fmt: skip
def test_errors_are_one_line(torch_python, tmp_path, kind, inputs, says):
    folder = tmp_path / "model"
    if kind == "empty":
        folder.mkdir()
        (folder / "labels.txt").write_text("person\n")
    else:
        build(torch_python, folder, kind)
    result, _, proc = run_script("pytorch", torch_python, folder, inputs, tmp_path / "m.onnx")
    assert result["ok"] is False and proc.returncode == 1
    assert says in result["error"] and "\n" not in result["error"]


def project(tmp_path: Path, archive: Path) -> Path:
    """A project whose app calls model node ``detector`` (PYTORCH descriptor, add-raw-model)."""
    return convert_helpers.project(tmp_path, APP, archive, "PYTORCH", "data", SHAPE)


def test_pytorch_model_node_runs_converted_once_then_cached(traced, tmp_path):
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(traced / "model.pth", arcname="model.pth")
    root = project(tmp_path, archive)
    cache = tmp_path / "converted"
    first = run_app(root, tmp_path / "out1", cache)
    assert "converting model detector (" in first.stderr, first.describe()
    assert "Traceback" not in first.stderr, first.describe()
    reference = json.loads((traced / "reference.json").read_text())
    got = json.loads((tmp_path / "out1" / "storage" / "out.json").read_text())
    assert [np.shape(o) for o in got] == [(1, 5), (1, 4)]  # the module's tuple, in order
    assert max(rel_error(r, g) for r, g in zip(reference, got, strict=True)) <= 1e-3
    entry = json.loads((tmp_path / "out1" / "report.json").read_text())["models"]["detector"]
    assert entry["calls"] == 1
    conversion = entry["conversion"]
    assert conversion["framework"] == "pytorch"
    assert conversion["framework_version"].startswith("2.13.0")
    assert conversion["cached"] is False and 0 <= conversion["max_rel_error"] <= 1e-3
    print(f"pytorch first run: conversion {conversion['seconds']:.1f} s")

    second = run_app(root, tmp_path / "out2", cache)
    assert "converting model" not in second.stderr, second.describe()
    assert json.loads((tmp_path / "out2" / "storage" / "out.json").read_text()) == got
    entry = json.loads((tmp_path / "out2" / "report.json").read_text())["models"]["detector"]
    assert entry["conversion"]["cached"] is True


def test_convert_model_writes_the_onnx(traced, tmp_path):
    import onnxruntime as ort

    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(traced / "model.pth", arcname="model.pth")
    root = project(tmp_path, archive)
    result = run(
        root, "convert-model", "--package-path", MODEL_PKG, "--model-asset-name", "model_asset",
        "--output", "net.onnx", "--json", env={"PANORAMA_CLI_CONVERTED_DIR": str(tmp_path / "c")},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["conversion"]["framework"] == "pytorch"
    assert 0 <= data["conversion"]["max_rel_error"] <= 1e-3
    session = ort.InferenceSession(str(root / "net.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"data": fixed_input(SHAPE)})
    reference = json.loads((traced / "reference.json").read_text())
    assert max(rel_error(r, g) for r, g in zip(reference, got, strict=True)) <= 1e-3


def test_a_state_dict_stops_the_run_in_one_line_before_any_frame(torch_python, tmp_path):
    folder = build(torch_python, tmp_path / "sd", "state_dict")
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder / "model.pth", arcname="model.pth")
    root = project(tmp_path, archive)
    result = run_app(root, tmp_path / "out", tmp_path / "cache")
    assert result.exit_code == 1, result.describe()
    lines = [line for line in result.stderr.splitlines() if "is not a TorchScript module" in line]
    assert len(lines) == 1, result.describe()
    assert "torch.jit.trace(model, example).save(path)" in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "storage" / "out.json").exists()
