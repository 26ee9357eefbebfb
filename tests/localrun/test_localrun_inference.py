"""Model nodes of `panorama-cli run`: stand-in ONNX models built with onnx.helper, model
archives stored by add-raw-model, and the real YOLOX-nano detector on vtest.avi."""

from __future__ import annotations

import io
import json
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from panorama_cli.errors import UserError
from panorama_cli.localrun.models.inference import ModelCallError, load_model
from tests.support import onnx_models
from tests.support.paths import SHARED, VIDEO
from tests.support.project_helpers import run, sha256
from tests.support.shared import require

ACCOUNT = "111122223333"
PKG = f"packages/{ACCOUNT}-detector-1.0"
YOLOX = SHARED / "models" / "yolox_nano" / "yolox_nano.onnx"


class Node:
    """The part of an application-graph node load_model reads (for --model without a project)."""

    def __init__(self, name: str) -> None:
        self.name = name


def model_project(tmp_path: Path, archive: Path, inputs: list[dict]):
    """init-project → create-package --type Model → add-raw-model ``archive``; returns the graph's
    model node and its package, as the runner gets them."""
    from panorama_cli.project.appgraph import AppGraph
    from panorama_cli.project.project import Project

    assert run(tmp_path, "init-project", "--name", "p", "--account-id", ACCOUNT).exit_code == 0
    root = tmp_path / "p"
    assert run(root, "create-package", "--name", "detector", "--type", "Model").exit_code == 0
    descriptor = root / PKG / "descriptor.json"
    descriptor.write_text(
        json.dumps(
            {
                "mlModelDescriptor": {
                    "envelopeVersion": "2021-01-01",
                    "framework": "PYTORCH",
                    "inputs": inputs,
                }
            }
        )
    )
    result = run(
        root, "add-raw-model", "--model-asset-name", "net", "--model-local-path", str(archive),
        "--descriptor-path", f"{PKG}/descriptor.json", "--packages-path", PKG,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    project = Project(root)
    graph = AppGraph.load(project)
    node = graph.node("net")
    return node, project.load_package(node.package_folder), root


# -- calls ---------------------------------------------------------------------------------
@pytest.fixture
def two_inputs(tmp_path):
    path = onnx_models.two_input_model(tmp_path / "two.onnx")
    return load_model(Node("two"), None, model_path=path, cache_dir=tmp_path / "cache")


def test_outputs_in_model_order_with_names_checked(two_inputs):
    model = two_inputs
    assert model.backend == "onnxruntime-cpu"
    assert model.input_names == ("x", "scale") and model.output_names == ("zeta", "alpha")
    x = np.arange(48, dtype=np.float32).reshape(1, 3, 4, 4)
    outputs = model.run({"x": x, "scale": np.array([2.0], np.float32)})
    assert isinstance(outputs, tuple) and len(outputs) == 2
    assert np.array_equal(outputs[0], x * 2) and outputs[1] == pytest.approx(23.5)
    with pytest.raises(ModelCallError, match="inputs x do not match the model's inputs x, scale"):
        model.run({"x": x})
    with pytest.raises(ModelCallError, match="inputs image, scale, x do not match"):
        model.run({"x": x, "scale": np.ones(1), "image": x})
    with pytest.raises(ModelCallError, match=r"takes 2 inputs \(x, scale\); pass a dict"):
        model.run(x)
    with pytest.raises(ValueError, match="must be a dict of arrays, an array or a media, not str"):
        model("x")


def test_reshape_by_element_count_and_dtype_cast(two_inputs):
    flat = np.arange(48, dtype=np.float64)  # float64, flat: reshaped and cast
    zeta, alpha = two_inputs({"x": flat, "scale": [3]})
    assert zeta.shape == (1, 3, 4, 4) and zeta.dtype == np.float32
    assert np.array_equal(zeta.ravel(), (flat * 3).astype(np.float32))
    with pytest.raises(ModelCallError) as info:
        two_inputs({"x": np.zeros(47), "scale": [1]})
    assert str(info.value) == (
        "model node two: input x has shape [47] (47 elements); the model takes [1, 3, 4, 4] (48)"
    )


def test_integer_inputs_are_cast(tmp_path):
    path = onnx_models.int_model(tmp_path / "ints.onnx")
    model = load_model(Node("ints"), None, model_path=path, cache_dir=tmp_path / "c")
    (doubled,) = model(np.array([1.0, 2.0, 3.0]))
    assert doubled.dtype == np.int64 and doubled.tolist() == [2, 4, 6]


def test_one_input_model_takes_an_array_or_an_image(tmp_path):
    import cv2

    path = onnx_models.pool_model(tmp_path / "pool.onnx")
    model = load_model(Node("pool"), None, model_path=path, cache_dir=tmp_path / "c")
    tensor = np.random.default_rng(1).random((1, 3, 224, 224), dtype=np.float32)
    (means,) = model(tensor)
    assert np.allclose(means.ravel(), tensor.mean(axis=(0, 2, 3)), atol=1e-5)
    image = np.zeros((90, 160, 3), np.uint8)
    image[..., 2] = 200  # red channel (BGR)
    image[:45, :, 0] = 100

    class Media:  # what panoramasdk.media offers the runner
        pass

    media = Media()
    media.image = image
    for given in (image, media):
        (means,) = model(given)
        expected = cv2.resize(image, (224, 224)).astype(np.float32).mean(axis=(0, 1))
        assert np.allclose(means.ravel(), expected, atol=1e-3)


def test_concurrent_calls_are_serialised_and_counted(two_inputs):
    errors = []

    def worker(k: float) -> None:
        x = np.full((1, 3, 4, 4), k, np.float32)
        for _ in range(50):
            zeta, alpha = two_inputs({"x": x, "scale": np.array([2.0], np.float32)})
            if not (np.all(zeta == 2 * k) and alpha == k):
                errors.append(k)

    threads = [threading.Thread(target=worker, args=(float(k),)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = two_inputs.stats
    assert errors == [] and stats["calls"] == 200 and stats["backend"] == "onnxruntime-cpu"
    assert 0 < stats["p50_ms"] <= stats["p95_ms"] and stats["mean_ms"] > 0


def test_a_busy_model_times_out(two_inputs):
    with two_inputs._lock:  # another call in progress
        with pytest.raises(TimeoutError, match="model node two: busy for more than 0.1 s"):
            two_inputs({"x": np.zeros(48), "scale": [1]}, timeout=0.1)
    assert two_inputs.stats["calls"] == 0


# -- model assets ----------------------------------------------------------------------------
def test_descriptor_names_map_to_the_model_and_the_archive_unpacks_once(tmp_path):
    onnx_path = onnx_models.pool_model(tmp_path / "m" / "model.onnx", name="input.1")
    archive = onnx_models.archive(
        tmp_path / "model.tar.gz", {"net/model.onnx": onnx_path.read_bytes()}
    )
    node, package, root = model_project(
        tmp_path, archive, [{"name": "data", "shape": [1, 3, 224, 224]}]
    )
    cache = tmp_path / "cache"
    model = load_model(node, package, model_path=None, cache_dir=cache)
    digest = sha256(archive)
    unpacked = cache / digest
    assert model.name == "net" and model.input_names == ("data",)
    assert model.input_shapes == {"data": (1, 3, 224, 224)}
    assert (unpacked / "net" / "model.onnx").read_bytes() == onnx_path.read_bytes()
    (means,) = model({"data": np.ones(3 * 224 * 224, np.float32)})
    assert means.shape == (1, 3, 1, 1) and np.allclose(means, 1.0)
    with pytest.raises(ModelCallError, match="inputs input.1 do not match the model's inputs data"):
        model({"input.1": np.ones((1, 3, 224, 224), np.float32)})

    inode = unpacked.stat().st_ino
    (root / "assets" / f"{digest}.tar.gz").unlink()  # the cache alone serves the second load
    again = load_model(node, package, model_path=None, cache_dir=cache)
    assert unpacked.stat().st_ino == inode and again.input_names == ("data",)
    assert sorted(p.name for p in cache.iterdir()) == [digest]  # no lock file left


def test_descriptor_that_does_not_fit_the_model_fails_at_load(tmp_path):
    onnx_path = onnx_models.pool_model(tmp_path / "model.onnx")
    archive = onnx_models.archive(tmp_path / "model.tar.gz", {"model.onnx": onnx_path.read_bytes()})
    node, package, _ = model_project(
        tmp_path, archive, [{"name": "data", "shape": [1, 3, 416, 416]}]
    )
    with pytest.raises(UserError) as info:
        load_model(node, package, model_path=None, cache_dir=tmp_path / "cache")
    assert info.value.message == (
        "model node net: descriptor.json gives input data shape [1, 3, 416, 416], "
        "the model takes [1, 3, 224, 224]"
    )


def test_archive_whose_content_changed_is_refused(tmp_path):
    onnx_path = onnx_models.pool_model(tmp_path / "model.onnx")
    archive = onnx_models.archive(tmp_path / "model.tar.gz", {"model.onnx": onnx_path.read_bytes()})
    node, package, root = model_project(
        tmp_path, archive, [{"name": "data", "shape": [1, 3, 224, 224]}]
    )
    stored = root / "assets" / f"{sha256(archive)}.tar.gz"
    onnx_models.archive(stored, {"model.onnx": b"changed"})
    with pytest.raises(UserError, match="does not match"):
        load_model(node, package, model_path=None, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # a refused archive leaves nothing


def test_missing_model_archive_leaves_no_cache_or_lock(tmp_path):
    onnx_path = onnx_models.pool_model(tmp_path / "model.onnx")
    archive = onnx_models.archive(tmp_path / "model.tar.gz", {"model.onnx": onnx_path.read_bytes()})
    node, package, root = model_project(
        tmp_path, archive, [{"name": "data", "shape": [1, 3, 224, 224]}]
    )
    (root / "assets" / f"{sha256(archive)}.tar.gz").unlink()
    cache = root / ".panorama-run" / ".models"
    with pytest.raises(UserError, match="model archive missing"):
        load_model(node, package, model_path=None, cache_dir=cache)
    assert not (root / ".panorama-run").exists()
    (root / ".panorama-run").mkdir()  # a run folder that was there stays
    with pytest.raises(UserError, match="model archive missing"):
        load_model(node, package, model_path=None, cache_dir=cache)
    assert list((root / ".panorama-run").iterdir()) == []


def unsafe_archive(path: Path, kind: str) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        if kind == "traversal":
            info = tarfile.TarInfo("../../escaped.onnx")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"bad"))
        else:
            info = tarfile.TarInfo("model.onnx")
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)
    return path


@pytest.mark.parametrize("kind", ["traversal", "absolute link"])
@pytest.mark.parametrize("pep706", [True, False], ids=["data filter", "older python"])
def test_unsafe_archives_extract_nothing(tmp_path, monkeypatch, kind, pep706):
    if not pep706:  # the check used where tarfile has no data filter
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    archive = unsafe_archive(tmp_path / "evil.tar.gz", kind)
    cache = tmp_path / "deep" / "cache"
    with pytest.raises(UserError, match=r"evil.tar.gz: unsafe or broken archive"):
        load_model(Node("m"), None, model_path=archive, cache_dir=cache)
    assert (
        not (tmp_path / "escaped.onnx").exists()
        and not (tmp_path / "deep" / "escaped.onnx").exists()
    )
    assert not (tmp_path / "deep").exists()  # nor the cache folders it would have made


@pytest.mark.parametrize(
    ("files", "says"),
    [
        ({"compiled.so": b"x", "compiled_model.json": b"{}"}, "is a SageMaker Neo-compiled model"),
        ({"model.tflite": b"x"}, "is a tflite model, which this runner does not run"),
    ],
)
def test_frameworks_that_cannot_run_here_say_how_to_export(tmp_path, files, says):
    archive = onnx_models.archive(tmp_path / "model.tar.gz", files)
    node, package, _ = model_project(
        tmp_path, archive, [{"name": "data", "shape": [1, 3, 224, 224]}]
    )
    with pytest.raises(UserError) as info:
        load_model(node, package, model_path=None, cache_dir=tmp_path / "cache")
    assert says in info.value.message and info.value.message.startswith("model node net: ")
    assert info.value.hint.endswith("pass --model net=model.onnx") and "ONNX" in info.value.hint


def test_no_model_asset_names_the_flag(tmp_path):
    with pytest.raises(UserError) as info:
        load_model(Node("det"), None, model_path=None, cache_dir=tmp_path)
    assert (
        info.value.message == "model node det: no model file (its package has no model asset here)"
    )
    assert info.value.hint.startswith("pass --model det=PATH")


def test_model_file_onnxruntime_cannot_load(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(UserError) as info:
        load_model(Node("m"), None, model_path=bad, cache_dir=tmp_path / "c")
    assert info.value.message.startswith("model node m (bad.onnx): onnxruntime cannot load it (")
    assert "\n" not in info.value.message


# -- the real detector -----------------------------------------------------------------------
def test_yolox_nano_finds_the_walkers_of_vtest_frame_300(tmp_path):
    require(YOLOX, VIDEO)
    from backpack.yolox import PERSON, detect, letterbox
    from tests.support.gstreamer import video_frames

    *_, frame = video_frames(301)
    model = load_model(Node("detector"), None, model_path=YOLOX, cache_dir=tmp_path / "c")
    assert model.input_names == ("images",) and model.input_shapes["images"] == (1, 3, 416, 416)
    tensor, ratio = letterbox(frame)
    (output,) = model({"images": tensor})
    assert output.shape == (1, 3549, 85)
    people = detect(output, ratio, classes=(PERSON,), score_threshold=0.6)
    # Six of the walkers are found with high confidence (0.71-0.84); the rest of the street
    # is empty at this threshold (below it: a sign post at 0.55, a cone at 0.34).
    assert len(people) == 6 and all(p.score > 0.6 for p in people)
    for person in people:
        x1, y1, x2, y2 = person.box
        assert 150 <= y1 < y2 <= 300 and 1.8 < (y2 - y1) / (x2 - x1) < 4  # upright, on the road
        left, top, right, bottom = person.normalized(frame.shape)
        assert 0 <= left < right <= 1 and 0 <= top < bottom <= 1
    centers = sorted(round((p.box[0] + p.box[2]) / 2) for p in people)
    assert centers == pytest.approx([202, 252, 311, 330, 596, 630], abs=8)


def test_a_bad_model_after_gstreamer_started_is_an_error_not_a_crash(gst, tmp_path):
    """GStreamer loads libunwind globally; backpack preloads libgcc_s so onnxruntime's C++
    exceptions still unwind (before, this process died with SIGSEGV)."""
    import subprocess
    import sys

    from tests.support.paths import REPO

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    code = (
        "import numpy\n"  # numpy first: the order that crashed
        "from backpack._gst import gst\n"
        "gst('test')\n"
        "from panorama_cli.errors import UserError\n"
        "from panorama_cli.localrun.models.inference import load_model\n"
        "class Node:\n"
        "    name = 'm'\n"
        "try:\n"
        f"    load_model(Node(), None, model_path={str(bad)!r}, cache_dir={str(tmp_path)!r})\n"
        "except UserError as exc:\n"
        "    print(exc.message)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("model node m (bad.onnx): onnxruntime cannot load it (")
