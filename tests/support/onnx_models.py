"""Stand-in ONNX models built with onnx.helper (for the local runner's tests and benchmarks).

- :func:`two_input_model`: inputs ``x`` float32 [1, 3, 4, 4] and ``scale`` float32 [1];
  outputs, in this order, ``zeta`` = x * scale and ``alpha`` = mean(x) (scalar).
- :func:`pool_model`: one input (default ``data`` float32 [1, 3, 224, 224]) → GlobalAveragePool
  → ``means`` [1, 3, 1, 1]: cheap, so a benchmark measures the call overhead.
- :func:`yolox_shaped_model`: YOLOX-nano's signature (``images`` [1, 3, 416, 416] →
  [1, 3549, 85], the first input values reshaped): what ``init-project --sample
  people-counter --model`` accepts, without the real weights.
- :func:`int_model`: input ``ids`` int64 [3] → ``doubled`` = ids + ids (int64).
- :func:`archive`: a .tar.gz holding files (model archive as add-raw-model stores it).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

OPSET = 17


def _save(graph, path: Path) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # readable by every onnxruntime >= 1.15
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def two_input_model(path: Path) -> Path:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "scale"], ["zeta"]),
            helper.make_node("ReduceMean", ["x"], ["alpha"], keepdims=0),
        ],
        "two_inputs",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4]),
            helper.make_tensor_value_info("scale", TensorProto.FLOAT, [1]),
        ],
        [
            helper.make_tensor_value_info("zeta", TensorProto.FLOAT, [1, 3, 4, 4]),
            helper.make_tensor_value_info("alpha", TensorProto.FLOAT, []),
        ],
    )
    return _save(graph, path)


def pool_model(path: Path, name: str = "data", shape: tuple[int, ...] = (1, 3, 224, 224)) -> Path:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", [name], ["means"])],
        "pool",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("means", TensorProto.FLOAT, [shape[0], shape[1], 1, 1])],
    )
    return _save(graph, path)


def yolox_shaped_model(path: Path) -> Path:
    from onnx import TensorProto, helper

    count = 3549 * 85
    consts = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [count]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor("shape", TensorProto.INT64, [3], [1, 3549, 85]),
    ]
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["images"], ["flat"], axis=1),
            helper.make_node("Slice", ["flat", "starts", "ends", "axes"], ["head"]),
            helper.make_node("Reshape", ["head", "shape"], ["output"]),
        ],
        "yolox_shaped",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 416, 416])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3549, 85])],
        initializer=consts,
    )
    return _save(graph, path)


def int_model(path: Path) -> Path:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["ids", "ids"], ["doubled"])],
        "ints",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [3])],
        [helper.make_tensor_value_info("doubled", TensorProto.INT64, [3])],
    )
    return _save(graph, path)


def archive(path: Path, files: dict[str, bytes]) -> Path:
    """A .tar.gz holding ``files`` (member name → bytes)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path
