"""MXNet model nodes run for real: a tiny Gluon HybridBlock (conv + dense, a 3-output head in
GluonCV SSD's order: class ids, scores, boxes) built and exported to symbol + params by MXNet
itself in the converter environment, packed, registered with add-raw-model (framework MXNET),
and run under `run`; the app's node.call outputs are compared with MXNet's own.

Needs the mxnet converter environment (`python -m tests.support.converter_envs mxnet`); without
it these tests skip with one reason (fail under CI=true)."""

from __future__ import annotations

import json
import subprocess
import tarfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.localrun import convert_helpers
from tests.localrun.convert_helpers import MODEL_PKG, app_source, fixed_input, rel_error, run_app
from tests.support.converter_envs import require_env
from tests.support.project_helpers import run

SHAPE = (1, 3, 16, 16)

BUILD = """
import json, sys
import numpy as np
import mxnet as mx
from mxnet.gluon import nn

out_dir, op = sys.argv[1], sys.argv[2]
mx.random.seed(7)
np.random.seed(7)


class Net(nn.HybridBlock):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(4, 3, padding=1)
        self.dense = nn.Dense(24)

    def hybrid_forward(self, F, x):
        if op == "gammaln":
            x = F.gammaln(x + 1)  # no ONNX conversion in MXNet 1.9.1
        boxes = F.reshape(self.dense(F.relu(self.conv(x))), (0, 6, 4))
        ids = F.argmax(boxes, axis=2, keepdims=True)
        scores = F.sigmoid(F.max(boxes, axis=2, keepdims=True))
        if op == "nms":  # as GluonCV's SSD ends: box_nms over (id, score, box) rows
            rows = F.contrib.box_nms(
                F.concat(ids, scores, boxes, dim=-1), overlap_thresh=0.45, topk=4,
                coord_start=2, score_index=1, id_index=0, force_suppress=False,
            )
            ids = F.slice_axis(rows, axis=2, begin=0, end=1)
            scores = F.slice_axis(rows, axis=2, begin=1, end=2)
            boxes = F.slice_axis(rows, axis=2, begin=2, end=6)
        return ids, scores, boxes  # GluonCV SSD's order


net = Net()
net.initialize(mx.init.Xavier())
net.hybridize()
shape = tuple(json.loads(sys.argv[3]))
x = ((np.arange(np.prod(shape)) % 17) / 17.0).astype(np.float32).reshape(shape)
outputs = net(mx.nd.array(x))
net.export(out_dir + "/net", epoch=0)
json.dump([o.asnumpy().tolist() for o in outputs], open(out_dir + "/reference.json", "w"))
"""

APP = app_source(SHAPE, "data")


@pytest.fixture(scope="module")
def mx_python() -> Path:
    return require_env("mxnet")


def export(mx_python: Path, folder: Path, op: str = "") -> Path:
    """MXNet builds and exports the net into ``folder``; returns it (with reference.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(mx_python), "-c", textwrap.dedent(BUILD), str(folder), op, json.dumps(SHAPE)],
        check=True,
        capture_output=True,
    )
    return folder


def pack(folder: Path, archive: Path, names=("net-symbol.json", "net-0000.params")) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for name in names:
            tar.add(folder / name, arcname=name)
    return archive


@pytest.fixture(scope="module")
def exported(mx_python, tmp_path_factory) -> Path:
    return export(mx_python, tmp_path_factory.mktemp("mxnet") / "net")


def project(tmp_path: Path, archive: Path, input_name: str = "data") -> Path:
    """A project whose app calls model node ``detector`` (MXNET descriptor, add-raw-model)."""
    return convert_helpers.project(tmp_path, APP, archive, "MXNET", input_name, SHAPE)


def test_mxnet_model_runs_converted_once_then_cached(exported, tmp_path):
    root = project(tmp_path, pack(exported, tmp_path / "net.tar.gz"))
    cache = tmp_path / "converted"
    first = run_app(root, tmp_path / "out1", cache)
    assert "converting model detector (MXNet 1.9.1 -> ONNX), first time only" in first.stderr
    assert "Traceback" not in first.stderr, first.describe()
    reference = json.loads((exported / "reference.json").read_text())
    got = json.loads((tmp_path / "out1" / "storage" / "out.json").read_text())
    assert len(got) == 3  # class ids, scores, boxes: the framework's order and arity
    assert [np.shape(o) for o in got] == [(1, 6, 1), (1, 6, 1), (1, 6, 4)]
    assert max(rel_error(r, g) for r, g in zip(reference, got, strict=True)) <= 1e-3
    entry = json.loads((tmp_path / "out1" / "report.json").read_text())["models"]["detector"]
    assert entry["backend"] == "onnxruntime-cpu" and entry["calls"] == 1
    conversion = entry["conversion"]
    assert conversion["framework"] == "mxnet" and conversion["framework_version"] == "1.9.1"
    assert conversion["cached"] is False and conversion["seconds"] > 0
    assert 0 <= conversion["max_rel_error"] <= 1e-3
    [meta_path] = cache.glob("*/meta.json")
    meta = json.loads(meta_path.read_text())
    assert meta["max_rel_error"] == conversion["max_rel_error"]
    assert meta["source_sha256"] == sha_of(root)
    assert all(p.name.endswith(".lock") for p in cache.iterdir() if p.name[0] == ".")  # no temp

    second = run_app(root, tmp_path / "out2", cache)
    assert "converting model" not in second.stderr, second.describe()
    again = json.loads((tmp_path / "out2" / "storage" / "out.json").read_text())
    assert again == got
    entry = json.loads((tmp_path / "out2" / "report.json").read_text())["models"]["detector"]
    assert entry["conversion"]["cached"] is True
    assert entry["conversion"]["max_rel_error"] == conversion["max_rel_error"]


def sha_of(root: Path) -> str:
    [archive] = (root / "assets").glob("*.tar.gz")
    return archive.name.split(".", 1)[0]


def convert_model(root: Path, cache: Path, *args: str):
    return run(
        root, "convert-model", "--package-path", MODEL_PKG, "--model-asset-name", "model_asset",
        *args, env={"PANORAMA_CLI_CONVERTED_DIR": str(cache)},
    )  # fmt: skip


def test_convert_model_writes_the_onnx_and_reports_the_error(exported, tmp_path):
    import onnxruntime as ort

    root = project(tmp_path, pack(exported, tmp_path / "net.tar.gz"))
    result = convert_model(root, tmp_path / "cache", "--output", "net.onnx", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["kind"] == "mxnet" and data["onnx"] == "net.onnx"
    assert 0 <= data["conversion"]["max_rel_error"] <= 1e-3
    assert "max relative error" in result.stderr and "add-raw-model" in result.stderr
    session = ort.InferenceSession(str(root / "net.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["data"]  # the weights are not inputs
    x = fixed_input(SHAPE)
    reference = json.loads((exported / "reference.json").read_text())
    got = session.run(None, {"data": x})
    assert max(rel_error(r, g) for r, g in zip(reference, got, strict=True)) <= 1e-3
    again = convert_model(root, tmp_path / "cache", "--json")
    assert json.loads(again.stdout)["conversion"]["cached"] is True
    # --model wins over the asset: the ONNX runs as it is, nothing converted
    given = run_app(root, tmp_path / "out", tmp_path / "other", "--model", "detector=net.onnx")
    assert "converting" not in given.stderr and not (tmp_path / "other").exists()
    entry = json.loads((tmp_path / "out" / "report.json").read_text())["models"]["detector"]
    assert entry["conversion"] is None and entry["calls"] == 1
    out = json.loads((tmp_path / "out" / "storage" / "out.json").read_text())
    assert max(rel_error(r, g) for r, g in zip(reference, out, strict=True)) <= 1e-3


def test_archive_without_params_names_the_file_before_any_frame(exported, tmp_path):
    root = project(tmp_path, pack(exported, tmp_path / "n.tar.gz", names=("net-symbol.json",)))
    result = run_app(root, tmp_path / "out", tmp_path / "cache")
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if "params" in line]
    assert len(lines) == 1, result.describe()
    assert "net-symbol.json has no parameters file: MXNet needs net-NNNN.params" in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "storage" / "out.json").exists()
    cache = tmp_path / "cache"  # no entry, no temporary folder (the lock file may stay)
    assert not cache.exists() or all(p.name.endswith(".lock") for p in cache.iterdir())


def test_descriptor_input_name_the_model_lacks_lists_its_inputs(exported, tmp_path):
    root = project(tmp_path, pack(exported, tmp_path / "net.tar.gz"), input_name="images")
    result = convert_model(root, tmp_path / "cache")
    assert result.exit_code == 1
    assert "descriptor input images not in net-symbol.json: the model's inputs are data" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_operator_the_exporter_lacks_is_named(mx_python, tmp_path):
    folder = export(mx_python, tmp_path / "gammaln", op="gammaln")
    root = project(tmp_path, pack(folder, tmp_path / "g.tar.gz"))
    result = convert_model(root, tmp_path / "cache")
    assert result.exit_code == 1
    assert "MXNet 1.9.1's ONNX exporter has no conversion for operator gammaln" in result.stderr


def test_a_detector_ending_in_box_nms_converts_in_ssd_order(mx_python, tmp_path):
    import onnxruntime as ort

    folder = export(mx_python, tmp_path / "nms", op="nms")
    root = project(tmp_path, pack(folder, tmp_path / "nms.tar.gz"))
    result = convert_model(root, tmp_path / "cache", "--output", "nms.onnx", "--json")
    assert result.exit_code == 0, result.stderr
    assert 0 <= json.loads(result.stdout)["conversion"]["max_rel_error"] <= 1e-3
    session = ort.InferenceSession(str(root / "nms.onnx"), providers=["CPUExecutionProvider"])
    x = fixed_input(SHAPE)
    got = session.run(None, {"data": x})
    reference = json.loads((folder / "reference.json").read_text())
    assert [np.shape(o) for o in got] == [(1, 6, 1), (1, 6, 1), (1, 6, 4)]
    assert max(rel_error(r, g) for r, g in zip(reference, got, strict=True)) <= 1e-3


def test_model_flag_takes_an_mxnet_export_folder(exported, tmp_path, monkeypatch):
    """--model NODE=FOLDER (symbol + params beside each other) converts like an asset."""
    from panorama_cli.localrun.models.inference import load_model
    from panorama_cli.project.appgraph import AppGraph
    from panorama_cli.project.project import Project

    root = project(tmp_path, pack(exported, tmp_path / "net.tar.gz"))
    monkeypatch.setenv("PANORAMA_CLI_CONVERTED_DIR", str(tmp_path / "converted"))
    node = AppGraph.load(Project(root)).node("detector")
    package = Project(root).load_package(node.package_folder)
    model = load_model(node, package, model_path=exported, cache_dir=tmp_path / "unpacked")
    assert model.conversion_info["framework"] == "mxnet" and model.input_names == ("data",)
    x = fixed_input(SHAPE)
    reference = json.loads((exported / "reference.json").read_text())
    got = model({"data": x})
    assert max(rel_error(r, g) for r, g in zip(reference, got, strict=True)) <= 1e-3
