"""TensorFlow -> ONNX with tf2onnx, run by the converter environment's python (never imported
by panorama-cli): ``python _tensorflow_export.py SPEC_JSON``.

Spec: {"model_dir", "inputs": [{"name", "shape"}], "output", "seed"} (convert/__init__.py).
The last stdout line is one JSON object: {"ok": true, "framework_version", "output_names",
"max_rel_error"} or {"ok": false, "error"} (then exit status 1). What TensorFlow and tf2onnx
print goes to stderr.

Model kinds, found in model_dir (searched recursively, first match wins in this order):
- SavedModel (a folder with saved_model.pb): its ``serving_default`` signature. Inputs are the
  signature's keyword inputs, named by the descriptor; outputs are the signature's output keys
  in sorted order (how TensorFlow flattens the signature's output dict, and the order
  ``SavedModelBackend`` gives).
- Frozen GraphDef (another .pb): inputs are the descriptor's Placeholder names; outputs are the
  graph's terminal nodes (values nobody reads) in graph order.
- Keras (.keras / .h5): ``keras.models.load_model``; outputs in the model's output order.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path

# This folder holds convert/tensorflow.py: off sys.path, or ``import tensorflow`` finds it
# (the driver runs the script with ``python -I``, which leaves it out; this covers a manual run)
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

#: ONNX opset of the converted model (tf2onnx 1.17 writes up to 18; onnxruntime 1.17+ runs 17)
OPSET = 17


# what the converter scripts share, loaded by its path (this folder stays off sys.path)
_spec = importlib.util.spec_from_file_location("_export_common", f"{_HERE}/_export_common.py")
_common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_common)
Failure = _common.Failure
_line = _common.line


def main(spec_path: str) -> int:
    return _common.main(spec_path, convert, _unexpected)


def _unexpected(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def convert(spec: dict) -> dict:
    import numpy as np
    import tensorflow as tf

    model_dir = Path(spec["model_dir"])
    wanted = [(i["name"], [int(d) for d in i["shape"]]) for i in spec["inputs"]]
    rng = np.random.default_rng(int(spec.get("seed", 0)))
    kind, path = find_model(model_dir)
    unsupported = _watch_unsupported()
    if kind == "savedmodel":
        model = _savedmodel(tf, path, wanted)
    elif kind == "graphdef":
        model = _graphdef(tf, path, wanted)
    else:
        model = _keras(tf, path, wanted)
    feed = {n: _random(rng, shape, dtype) for n, shape, dtype in model["inputs"]}
    expected = model["run"](feed)
    try:
        proto = model["convert"]()
    except Exception as exc:  # noqa: BLE001 - tf2onnx raises many types
        if not unsupported:
            raise Failure(f"tf2onnx {_tf2onnx_version()} failed: {_line(exc)}") from None
    if unsupported:
        ops = ", ".join(sorted(set(unsupported)))
        raise Failure(
            f"tf2onnx {_tf2onnx_version()} cannot convert operator {ops} "
            f"(TensorFlow {tf.__version__}): export the model without it, or to ONNX yourself"
        )
    _rename(proto, [n for n, _, _ in model["inputs"]], model["output_names"])
    Path(spec["output"]).write_bytes(proto.SerializeToString())
    got = _common.onnx_run(spec["output"], feed)
    return {
        "framework_version": tf.__version__,
        "output_names": model["output_names"],
        "max_rel_error": _common.worst_error(expected, got, "TensorFlow"),
    }


def find_model(model_dir: Path) -> tuple[str, Path]:
    """("savedmodel", folder) | ("graphdef", file.pb) | ("keras", file); Failure if none."""
    if not model_dir.is_dir():
        raise Failure(f"the model folder {model_dir} does not exist")
    files = sorted(p for p in model_dir.rglob("*") if p.is_file())
    for path in files:
        if path.name == "saved_model.pb":
            return "savedmodel", path.parent
    for path in files:
        if path.suffix == ".pb":
            return "graphdef", path
    for path in files:
        if path.suffix in (".keras", ".h5"):
            return "keras", path
    found = ", ".join(p.relative_to(model_dir).as_posix() for p in files[:8]) or "nothing"
    raise Failure(
        "the archive has no TensorFlow model: it needs a SavedModel folder (saved_model.pb "
        "with variables/), a frozen GraphDef (.pb) or a Keras file (.keras, .h5); "
        f"it holds {found}"
    )


def _check_names(wanted, known: list[str], what: str) -> None:
    missing = [n for n, _ in wanted if n not in known]
    if missing:
        raise Failure(
            f"descriptor input {', '.join(missing)} is not an input of {what}; "
            f"the model's inputs: {', '.join(known) or 'none'}"
        )


def _savedmodel(tf, folder: Path, wanted) -> dict:
    try:
        loaded = tf.saved_model.load(str(folder))
    except Exception as exc:  # noqa: BLE001 - TF raises many types
        raise Failure(f"cannot load the SavedModel {folder.name}/: {_line(exc)}") from None
    if "serving_default" not in loaded.signatures:
        raise Failure(
            f"the SavedModel has no serving_default signature (it has "
            f"{', '.join(loaded.signatures) or 'none'}): save it with a serving signature"
        )
    signature = loaded.signatures["serving_default"]
    specs = signature.structured_input_signature[1]
    known = sorted(specs)
    _check_names(wanted, known, "the SavedModel's serving_default")
    lacking = [n for n in known if n not in {w for w, _ in wanted}]
    if lacking:
        raise Failure(
            f"the SavedModel's serving_default also needs input {', '.join(lacking)}, "
            "which the descriptor does not give"
        )
    for n, shape in wanted:
        if not specs[n].shape.is_compatible_with(shape):
            given = [-1 if d is None else d for d in specs[n].shape.as_list()]
            raise Failure(
                f"descriptor input {n} has shape {shape}; the SavedModel takes {given} "
                "(-1: any size)"
            )
    names = [n for n, _ in wanted]
    dtypes = {n: specs[n].dtype for n in names}
    output_names = sorted(signature.structured_outputs)
    tensor_specs = [tf.TensorSpec(shape, dtypes[n], name=n) for n, shape in wanted]

    @tf.function(input_signature=tensor_specs)
    def function(*args):
        return signature(**dict(zip(names, args, strict=True)))

    def run(feed):
        result = signature(**{n: tf.constant(v) for n, v in feed.items()})
        return [result[k].numpy() for k in output_names]

    def convert():
        import tf2onnx

        proto, _ = tf2onnx.convert.from_function(
            function, input_signature=tensor_specs, opset=OPSET
        )
        return proto

    return {
        "inputs": [(n, shape, dtypes[n].as_numpy_dtype) for n, shape in wanted],
        "output_names": output_names,
        "run": run,
        "convert": convert,
        "keep": loaded,
    }


def _graphdef(tf, path: Path, wanted) -> dict:
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(path.read_bytes())
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and others
        raise Failure(f"{path.name} is not a frozen TensorFlow GraphDef: {_line(exc)}") from None
    placeholders = [n.name for n in graph_def.node if n.op == "Placeholder"]
    wanted = [(n.split(":")[0], shape) for n, shape in wanted]
    _check_names(wanted, placeholders, path.name)
    read = {i.split(":")[0].lstrip("^") for n in graph_def.node for i in n.input}
    skip = {"Placeholder", "Const", "NoOp", "Assert", "SaveV2", "RestoreV2", "VarHandleOp"}
    outputs = [n.name for n in graph_def.node if n.name not in read and n.op not in skip]
    if not outputs:
        raise Failure(f"{path.name}: the graph has no output node")
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    dtypes = {n: graph.get_tensor_by_name(f"{n}:0").dtype for n, _ in wanted}

    def run(feed):
        with tf.compat.v1.Session(graph=graph) as session:
            fetched = session.run(
                [f"{o}:0" for o in outputs], {f"{n}:0": v for n, v in feed.items()}
            )
        return list(fetched)

    def convert():
        import tf2onnx

        proto, _ = tf2onnx.convert.from_graph_def(
            graph_def,
            input_names=[f"{n}:0" for n, _ in wanted],
            output_names=[f"{o}:0" for o in outputs],
            opset=OPSET,
        )
        return proto

    return {
        "inputs": [(n, shape, dtypes[n].as_numpy_dtype) for n, shape in wanted],
        "output_names": outputs,
        "run": run,
        "convert": convert,
    }


def _keras(tf, path: Path, wanted) -> dict:
    try:
        model = tf.keras.models.load_model(str(path), compile=False)
    except Exception as exc:  # noqa: BLE001 - keras raises many types
        raise Failure(f"cannot load the Keras model {path.name}: {_line(exc)}") from None
    known = [t.name.split(":")[0] for t in model.inputs]
    _check_names(wanted, known, path.name)
    if len(wanted) != len(known):
        raise Failure(f"{path.name} takes inputs {', '.join(known)}; the descriptor gives fewer")
    dtypes = {t.name.split(":")[0]: tf.as_dtype(t.dtype) for t in model.inputs}
    shapes = dict(wanted)
    tensor_specs = [tf.TensorSpec(shapes[n], dtypes[n], name=n) for n in known]
    count = len(model.outputs)
    output_names = [f"output{i}" for i in range(count)]

    @tf.function(input_signature=tensor_specs)
    def function(*args):
        result = model(list(args) if len(args) > 1 else args[0], training=False)
        return dict(zip(output_names, _as_list(result), strict=True))

    def run(feed):
        args = [tf.constant(feed[n]) for n in known]
        result = model(args if len(args) > 1 else args[0], training=False)
        return [t.numpy() for t in _as_list(result)]

    def convert():
        import tf2onnx

        proto, _ = tf2onnx.convert.from_function(
            function, input_signature=tensor_specs, opset=OPSET
        )
        return proto

    return {
        "inputs": [(n, shapes[n], dtypes[n].as_numpy_dtype) for n in known],
        "output_names": output_names,
        "run": run,
        "convert": convert,
    }


def _as_list(result) -> list:
    if isinstance(result, dict):
        return [result[k] for k in sorted(result)]
    if isinstance(result, (list, tuple)):
        return list(result)
    return [result]


def _rename(proto, inputs: list[str], outputs: list[str]) -> None:
    """The ONNX graph's inputs and outputs get these names (in order), renamed everywhere."""
    graph = proto.graph
    graph_inputs = [v for v in graph.input if v.name not in {i.name for i in graph.initializer}]
    if len(graph.output) != len(outputs) or len(graph_inputs) != len(inputs):
        raise Failure(
            f"tf2onnx gave {len(graph_inputs)} inputs and {len(graph.output)} outputs, "
            f"the model has {len(inputs)} and {len(outputs)}"
        )
    mapping = {v.name: n for v, n in zip(graph_inputs, inputs, strict=True)}
    mapping.update({v.name: n for v, n in zip(graph.output, outputs, strict=True)})
    for node in graph.node:
        node.input[:] = [mapping.get(i, i) for i in node.input]
        node.output[:] = [mapping.get(o, o) for o in node.output]
    for value in [*graph_inputs, *graph.output]:
        value.name = mapping[value.name]


def _watch_unsupported() -> list[str]:
    """The TF ops tf2onnx reports it cannot map (its "op [name: Type] is not supported")."""
    found: list[str] = []

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "is not supported" in str(record.msg) and len(record.args or ()) == 2:
                found.append(str(record.args[1]))

    logging.getLogger("tf2onnx").addHandler(Handler(level=logging.ERROR))
    return found


def _random(rng, shape, dtype):
    import numpy as np

    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        return rng.integers(0, 256 if dtype.kind == "u" else 100, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.random(shape, dtype=np.float32).astype(dtype)


def _tf2onnx_version() -> str:
    import tf2onnx

    return tf2onnx.__version__


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
