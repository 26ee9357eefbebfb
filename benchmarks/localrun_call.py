"""`node.call()` overhead of the local runner's ModelNode against onnxruntime's own run().

    .venv/bin/python benchmarks/localrun_call.py [--calls 2000] [--rounds 7]

A stand-in model built with onnx.helper (input ``data`` float32 [1, 3, 224, 224] →
GlobalAveragePool; cheap, so the difference is the overhead, not the model) is loaded once
with ``load_model``; the benchmark then alternates, ``--rounds`` times, ``--calls`` calls of
``session.run(None, {"data": x})`` on the ModelNode's own onnxruntime session and ``--calls``
calls of ``ModelNode.run({"data": x})`` (names checked, shape and dtype checked, lock, latency
recorded), in the same process. It prints the median per-call time of each and their
difference. A third row shows the cost when the app sends a flat float64 array (reshape + cast).

Target (issue 10): ModelNode.run() at most 0.3 ms more than session.run(). Exit status 1 when
missed.

This measures the runner-side cost only; the app → runner hop of ``node.call`` (socket and
shared memory) is RUN-CORE's channel, measured in its own benchmark.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_MS = 0.3


class _Node:
    name = "model_node"


def measure(calls: int = 2000, rounds: int = 7) -> dict[str, float]:
    """Median per-call milliseconds: ``ort``, ``node``, ``node_cast`` and ``overhead``."""
    import numpy as np

    from panorama_cli.localrun.models.inference import load_model
    from tests.support.onnx_models import pool_model

    with tempfile.TemporaryDirectory() as tmp:
        path = pool_model(Path(tmp) / "pool.onnx")
        node = load_model(_Node(), None, model_path=path, cache_dir=Path(tmp) / "cache")
    session = node.impl.session
    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    flat64 = x.astype(np.float64).ravel()
    feed = {"data": x}

    def per_call(fn) -> float:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - start) * 1000 / calls

    ort_ms, node_ms, cast_ms = [], [], []
    for _ in range(3):  # warm-up
        session.run(None, feed)
        node.run(feed)
    for _ in range(rounds):
        ort_ms.append(per_call(lambda: session.run(None, feed)))
        node_ms.append(per_call(lambda: node.run(feed)))
        cast_ms.append(per_call(lambda: node.run({"data": flat64})))
    result = {
        "ort": statistics.median(ort_ms),
        "node": statistics.median(node_ms),
        "node_cast": statistics.median(cast_ms),
    }
    result["overhead"] = result["node"] - result["ort"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    r = measure(args.calls, args.rounds)
    print(f"{'measure':<52} {'value':>10} {'target':>10}")
    print(f"{'onnxruntime session.run(), 1x3x224x224 float32':<52} {r['ort']:>8.3f}ms {'':>10}")
    print(f"{'ModelNode.run(), same session, same input':<52} {r['node']:>8.3f}ms {'':>10}")
    print(f"{'... overhead per call':<52} {r['overhead']:>8.3f}ms {'<= 0.300':>8}ms")
    print(
        f"{'ModelNode.run(), flat float64 (reshape + cast)':<52} {r['node_cast']:>8.3f}ms {'':>10}"
    )
    return 0 if r["overhead"] <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
