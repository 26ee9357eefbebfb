"""TensorFlow model nodes run for real: a tiny Keras model (conv + two dense heads: scores and
boxes) built in the converter environment and saved as a SavedModel (Keras 3 ``export``), a
Keras file and a frozen GraphDef, converted by the tensorflow converter's script (tf2onnx,
checked against TensorFlow), and, packed and registered with add-raw-model (framework
TENSORFLOW), run under `run`: the app's node.call outputs are compared with TensorFlow's own.

Needs the tensorflow converter environment (`python -m tests.support.converter_envs
tensorflow`); without it these tests skip with one reason (fail under CI=true)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from tests.localrun import convert_helpers
from tests.localrun.convert_helpers import app_source, fixed_input, rel_error, run_app
from tests.support.converter_envs import build_in_env, require_env, run_script

SHAPE = (1, 8, 8, 3)  # NHWC, as TensorFlow models take images

# argv: out_dir, kind; writes out_dir/<kind's files> and reference.json (TensorFlow's outputs
# for the fixed input below, in the order the converted model must give them)
BUILD = """
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np
import tensorflow as tf
import keras

out_dir, kind = sys.argv[1], sys.argv[2]
keras.utils.set_random_seed(7)
shape = (1, 8, 8, 3)
x = ((np.arange(np.prod(shape)) % 17) / 17.0).astype(np.float32).reshape(shape)


def keras_model():
    image = keras.Input(shape=shape[1:], name="image")
    features = keras.layers.GlobalAveragePooling2D()(
        keras.layers.Conv2D(4, 3, activation="relu")(image)
    )
    scores = keras.layers.Dense(5, activation="softmax", name="scores")(features)
    boxes = keras.layers.Dense(4, name="boxes")(features)
    return keras.Model(image, [scores, boxes])


if kind == "savedmodel":
    keras_model().export(out_dir + "/saved")
    signature = tf.saved_model.load(out_dir + "/saved").signatures["serving_default"]
    result = signature(image=tf.constant(x))
    outputs = [result[k] for k in sorted(result)]  # output_0 (scores), output_1 (boxes)
elif kind in ("keras", "h5"):
    model = keras_model()
    model.save(out_dir + "/model." + kind)
    outputs = model(x)
elif kind == "graphdef":
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    weights = tf.Variable(tf.random.normal([24, 3]))

    @tf.function(input_signature=[tf.TensorSpec([1, 24], tf.float32, name="x")])
    def function(v):
        y = tf.matmul(v, weights)
        return tf.nn.relu(y), tf.reduce_sum(y, axis=1)

    frozen = convert_variables_to_constants_v2(function.get_concrete_function())
    with open(out_dir + "/frozen.pb", "wb") as f:
        f.write(frozen.graph.as_graph_def().SerializeToString())
    outputs = frozen(tf.constant(((np.arange(24) % 17) / 17.0).astype(np.float32)[None]))
elif kind == "detector":  # shaped like an Object Detection API SSD: uint8 images, 3 outputs
    class Detector(tf.Module):
        def __init__(self):
            self.w = tf.Variable(tf.random.normal([3, 8]))

        @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.uint8, name="input_tensor")])
        def __call__(self, images):
            pixels = tf.reshape(tf.cast(images, tf.float32) / 255.0, [1, 64, 3])
            logits = tf.matmul(pixels, self.w)[:, :4, :]
            return {
                "num_detections": tf.reduce_sum(tf.cast(logits[:, :, 0] > 0, tf.float32), 1),
                "detection_scores": tf.sigmoid(logits[:, :, 1]),
                "detection_boxes": tf.sigmoid(logits[:, :, 4:]),
            }

    module = Detector()
    tf.saved_model.save(module, out_dir + "/saved", signatures=module.__call__)
    images = (np.arange(192) % 251).astype(np.uint8).reshape(1, 8, 8, 3)
    result = module.__call__(tf.constant(images))
    outputs = [result[k] for k in sorted(result)]
elif kind == "igamma":
    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")])
        def __call__(self, v):
            return {"y": tf.math.igamma(v + 1.0, v + 2.0)}  # no ONNX conversion in tf2onnx

    module = Module()
    tf.saved_model.save(module, out_dir + "/saved", signatures=module.__call__)
    outputs = []
json.dump([np.asarray(o).tolist() for o in outputs], open(out_dir + "/reference.json", "w"))
"""

APP = app_source(SHAPE, "image")


@pytest.fixture(scope="module")
def tf_python() -> Path:
    return require_env("tensorflow")


def build(python: Path, folder: Path, kind: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    build_in_env(python, BUILD, str(folder), kind)
    return folder


@pytest.fixture(scope="module")
def saved(tf_python, tmp_path_factory) -> Path:
    """A folder holding saved/ (the SavedModel) and reference.json."""
    return build(tf_python, tmp_path_factory.mktemp("tf") / "savedmodel", "savedmodel")


def test_savedmodel_converts_with_its_signature_outputs_in_order(tf_python, saved, tmp_path):
    import onnxruntime as ort

    onnx_path = tmp_path / "model.onnx"
    result, seconds, _ = run_script(
        "tensorflow", tf_python, saved, [("image", list(SHAPE))], onnx_path
    )
    assert result["ok"] is True, result
    assert result["framework_version"] == "2.20.0"
    assert result["output_names"] == ["output_0", "output_1"]  # serving_default's keys, sorted
    assert 0 <= result["max_rel_error"] <= 1e-3
    print(f"tensorflow conversion: {seconds:.1f} s, max rel. error {result['max_rel_error']:.2e}")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape) for i in session.get_inputs()] == [("image", list(SHAPE))]
    assert [o.name for o in session.get_outputs()] == ["output_0", "output_1"]
    got = session.run(None, {"image": fixed_input(SHAPE)})
    reference = json.loads((saved / "reference.json").read_text())
    assert [np.shape(o) for o in got] == [(1, 5), (1, 4)]  # scores, boxes
    assert max(rel_error(r, g) for r, g in zip(reference, got, strict=True)) <= 1e-3


@pytest.mark.parametrize(
    ("kind", "name", "shape", "outputs"),
    [
        ("keras", "image", list(SHAPE), ["output0", "output1"]),
        ("h5", "image", list(SHAPE), ["output0", "output1"]),
        ("graphdef", "x", [1, 24], ["Identity", "Identity_1"]),  # the graph's terminal nodes
    ],
)
def test_keras_files_and_frozen_graphs_convert(tf_python, tmp_path, kind, name, shape, outputs):
    import onnxruntime as ort

    folder = build(tf_python, tmp_path / kind, kind)
    onnx_path = tmp_path / "model.onnx"
    result, _, _ = run_script("tensorflow", tf_python, folder, [(name, shape)], onnx_path)
    assert result["ok"] is True, result
    assert result["output_names"] == outputs and 0 <= result["max_rel_error"] <= 1e-3
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {name: fixed_input(tuple(shape))})
    reference = json.loads((folder / "reference.json").read_text())
    assert max(rel_error(r, g) for r, g in zip(reference, got, strict=True)) <= 1e-3


def test_detector_savedmodel_keeps_uint8_input_and_sorted_output_keys(tf_python, tmp_path):
    import onnxruntime as ort

    folder = build(tf_python, tmp_path / "detector", "detector")
    onnx_path = tmp_path / "model.onnx"
    result, _, _ = run_script(
        "tensorflow", tf_python, folder, [("input_tensor", [1, 8, 8, 3])], onnx_path
    )
    assert result["ok"] is True, result
    assert result["output_names"] == ["detection_boxes", "detection_scores", "num_detections"]
    assert 0 <= result["max_rel_error"] <= 1e-3
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    [image] = session.get_inputs()
    assert (image.name, image.type) == ("input_tensor", "tensor(uint8)")
    images = (np.arange(192) % 251).astype(np.uint8).reshape(1, 8, 8, 3)
    got = session.run(None, {"input_tensor": images})
    reference = json.loads((folder / "reference.json").read_text())
    assert [np.shape(o) for o in got] == [(1, 4, 4), (1, 4), (1,)]
    assert max(rel_error(r, g) for r, g in zip(reference, got, strict=True)) <= 1e-3


def test_descriptor_input_the_savedmodel_lacks_lists_its_inputs(tf_python, saved, tmp_path):
    result, _, proc = run_script(
        "tensorflow", tf_python, saved, [("data", list(SHAPE))], tmp_path / "m.onnx"
    )
    assert result == {
        "ok": False,
        "error": "descriptor input data is not an input of the SavedModel's serving_default; "
        "the model's inputs: image",
    }
    assert proc.returncode == 1 and not (tmp_path / "m.onnx").exists()


def test_descriptor_shape_the_savedmodel_cannot_take_is_named(tf_python, saved, tmp_path):
    result, _, _ = run_script(
        "tensorflow", tf_python, saved, [("image", [1, 3, 8, 8])], tmp_path / "m.onnx"
    )
    assert result["error"] == (
        "descriptor input image has shape [1, 3, 8, 8]; the SavedModel takes [-1, 8, 8, 3] "
        "(-1: any size)"
    )


def test_archive_without_a_tensorflow_model_says_what_it_needs(tf_python, tmp_path):
    folder = tmp_path / "model"
    (folder / "variables").mkdir(parents=True)
    (folder / "variables" / "variables.index").write_bytes(b"x")  # a SavedModel without .pb
    result, _, _ = run_script("tensorflow", tf_python, folder, [("x", [1])], tmp_path / "m.onnx")
    assert result["ok"] is False
    assert result["error"] == (
        "the archive has no TensorFlow model: it needs a SavedModel folder (saved_model.pb "
        "with variables/), a frozen GraphDef (.pb) or a Keras file (.keras, .h5); it holds "
        "variables/variables.index"
    )


def test_operator_tf2onnx_lacks_is_named_with_the_versions(tf_python, tmp_path):
    folder = build(tf_python, tmp_path / "igamma", "igamma")
    result, _, _ = run_script("tensorflow", tf_python, folder, [("x", [1, 4])], tmp_path / "m.onnx")
    assert result["ok"] is False
    assert result["error"].startswith(
        "tf2onnx 1.17.0 cannot convert operator Igamma (TensorFlow 2.20.0)"
    )


def project(tmp_path: Path, archive: Path) -> Path:
    """A project whose app calls model node ``detector`` (TENSORFLOW descriptor, add-raw-model)."""
    return convert_helpers.project(tmp_path, APP, archive, "TENSORFLOW", "image", SHAPE)


def test_tensorflow_model_node_runs_converted_once_then_cached(saved, tmp_path):
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(saved / "saved", arcname="ssd_saved_model")  # the SavedModel folder, as Neo took
    root = project(tmp_path, archive)
    cache = tmp_path / "converted"
    first = run_app(root, tmp_path / "out1", cache)
    assert "converting model detector (" in first.stderr, first.describe()
    assert "Traceback" not in first.stderr, first.describe()
    reference = json.loads((saved / "reference.json").read_text())
    got = json.loads((tmp_path / "out1" / "storage" / "out.json").read_text())
    assert [np.shape(o) for o in got] == [(1, 5), (1, 4)]  # the signature's outputs, in order
    assert max(rel_error(r, g) for r, g in zip(reference, got, strict=True)) <= 1e-3
    entry = json.loads((tmp_path / "out1" / "report.json").read_text())["models"]["detector"]
    assert entry["calls"] == 1
    conversion = entry["conversion"]
    assert conversion["framework"] == "tensorflow" and conversion["framework_version"] == "2.20.0"
    assert conversion["cached"] is False and 0 <= conversion["max_rel_error"] <= 1e-3
    print(f"tensorflow first run: conversion {conversion['seconds']:.1f} s")

    second = run_app(root, tmp_path / "out2", cache)
    assert "converting model" not in second.stderr, second.describe()
    assert json.loads((tmp_path / "out2" / "storage" / "out.json").read_text()) == got
    entry = json.loads((tmp_path / "out2" / "report.json").read_text())["models"]["detector"]
    assert entry["conversion"]["cached"] is True
