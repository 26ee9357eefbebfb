"""A model node's call on the CPU and on CUDA, side by side (``run --device cpu|cuda``).

    .venv/bin/python benchmarks/gpu_models.py [--calls 20] [--rounds 3]

For each model and runtime available here, :func:`load_model` loads the model once with
``device="cpu"`` and once with ``device="cuda"``; the benchmark then alternates ``--rounds``
times ``--calls`` calls of the ModelNode (what the runner does for every ``node.call`` an
app makes: names, shape and dtype checked, the model run, outputs back as numpy arrays) and
prints the median milliseconds per call of each device and the speed-up (cpu / cuda).

Models: YOLOX-nano (../shared/models/yolox_nano/yolox_nano.onnx, 1x3x416x416, when present)
and a stand-in conv net built here (8 3x3 convolutions, 32 channels, 1x3x224x224) as ONNX.
TorchScript, SavedModel and MXNet assets run as the ONNX they are converted to once
(``panorama_cli.localrun.models.convert``), so onnxruntime's numbers are theirs too.

Where CUDA cannot be used (no NVIDIA driver or GPU, the CPU build of onnxruntime) the cuda column says so in one line instead of a number; the CPU numbers are
still measured. Exit status 0 either way (no target: the numbers are for the record).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

YOLOX = ROOT.parent / "shared" / "models" / "yolox_nano" / "yolox_nano.onnx"
SHAPE = (1, 3, 224, 224)
LAYERS = 8
CHANNELS = 32


class _Node:
    def __init__(self, name: str):
        self.name = name


def conv_onnx(path: Path) -> Path:
    """The stand-in conv net as ONNX (random weights, fixed seed)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, previous, channels = [], [], "images", SHAPE[1]
    for i in range(LAYERS):
        weight = (rng.standard_normal((CHANNELS, channels, 3, 3)) * 0.05).astype(np.float32)
        inits.append(numpy_helper.from_array(weight, f"w{i}"))
        nodes.append(helper.make_node("Conv", [previous, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        previous, channels = f"r{i}", CHANNELS
    nodes.append(helper.make_node("GlobalAveragePool", [previous], ["output"]))
    graph = helper.make_graph(
        nodes,
        "convnet",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, list(SHAPE))],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, CHANNELS, 1, 1])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def per_call_ms(node: Any, x: Any, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        node(x)
    return (time.perf_counter() - start) * 1000.0 / calls


def measure(path: Path, label: str, runtime: str, calls: int, rounds: int, tmp: Path) -> str:
    """One table row: label, runtime, cpu ms, cuda ms (or why not), speed-up."""
    import numpy as np

    from panorama_cli.errors import UserError
    from panorama_cli.localrun.models import devices
    from panorama_cli.localrun.models.inference import load_model

    loaded: dict[str, Any] = {}
    for device in ("cpu", "cuda"):
        node = load_model(_Node(label), None, model_path=path, cache_dir=tmp, device=device)
        shape = node.input_shapes[node.input_names[0]]  # the model's own input shape
        x = np.random.default_rng(1).random(shape, dtype=np.float32)
        try:
            devices.require_models_on(device, {label: node})
        except UserError as exc:
            loaded[device] = exc.message.split("here: ", 1)[-1]
            continue
        for _ in range(3):  # warm-up (CUDA kernels, memory arenas)
            node(x)
        loaded[device] = node
    times: dict[str, list[float]] = {"cpu": [], "cuda": []}
    for _ in range(rounds):
        for device, node in loaded.items():
            if not isinstance(node, str):
                times[device].append(per_call_ms(node, x, calls))
    cpu = statistics.median(times["cpu"])
    if isinstance(loaded["cuda"], str):
        return f"{label:28} {runtime:12} {cpu:10.2f}   cuda not measured: {loaded['cuda']}"
    cuda = statistics.median(times["cuda"])
    return f"{label:28} {runtime:12} {cpu:10.2f} {cuda:10.2f} {cpu / cuda:9.1f}x"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from panorama_cli.localrun.models import devices

    gpu = devices.nvidia_gpu_problem()
    print(f"GPU: {gpu or 'an NVIDIA GPU is usable here'}")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        models: list[tuple[Path, str, str]] = []
        if YOLOX.is_file():
            models.append((YOLOX, "yolox_nano 416", "onnxruntime"))
        models.append((conv_onnx(tmp / "conv.onnx"), "conv8x32 224", "onnxruntime"))
        print(f"{'model':28} {'runtime':12} {'cpu ms':>10} {'cuda ms':>10} {'speed-up':>9}")
        for path, label, runtime in models:
            print(measure(path, label, runtime, args.calls, args.rounds, tmp / "cache"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
