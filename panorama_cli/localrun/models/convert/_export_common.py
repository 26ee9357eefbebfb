"""What the PyTorch and TensorFlow converter scripts (``_pytorch_export.py``,
``_tensorflow_export.py``) share: the one-line Failure, the result line on stdout, running the
converted model with onnxruntime and the relative error against the framework's outputs.

Standalone like them: it runs in a converter environment (the framework, numpy, onnx,
onnxruntime; panorama-cli is not importable there), loaded by the scripts by file path
(``importlib.util.spec_from_file_location``): this folder stays off ``sys.path``, where
convert/tensorflow.py would shadow ``import tensorflow``. Never imported by panorama-cli.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path


class Failure(Exception):
    """A one-line error for the user."""


def line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, or its type's name when it has none."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def unexpected(exc: BaseException) -> str:
    """The error line of an exception that is not a :class:`Failure`: ``Type: first line``."""
    return f"{type(exc).__name__}: {line(exc)}"


def main(
    spec_path: str,
    convert: Callable[[dict], dict],
    describe: Callable[[BaseException], str] = unexpected,
) -> int:
    """Run ``convert`` on the JSON spec at ``spec_path`` and print the result line, the only
    line on stdout: ``convert``'s dict with ``"ok": true`` (exit status 0), or ``{"ok": false,
    "error"}`` (1; a :class:`Failure`'s message, else ``describe(exc)``). Everything else, C++
    prints to fd 1 included, goes to stderr."""
    sys.stdout.flush()
    real_stdout = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            result = convert(json.loads(Path(spec_path).read_text()))
        result["ok"] = True
        status = 0
    except Failure as exc:
        result, status = {"ok": False, "error": str(exc)}, 1
    except Exception as exc:  # noqa: BLE001 - anything else, in one line
        result, status = {"ok": False, "error": describe(exc)}, 1
    print(json.dumps(result), file=real_stdout, flush=True)
    return status


def onnx_run(path: str, feed: dict) -> list:
    """The outputs of the ONNX model at ``path`` (CPU) for ``feed`` (name -> array; only the
    model's inputs are passed); Failure when onnxruntime cannot load it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own types
        raise Failure(f"onnxruntime cannot load the converted model: {line(exc)}") from None
    return session.run(None, {i.name: feed[i.name] for i in session.get_inputs()})


def worst_error(expected: list, got: list, framework: str) -> float:
    """max over outputs of max|a-b| / max(max|a|, 1e-12); Failure when the counts or shapes
    differ (``framework`` names the original's side: "torch", "TensorFlow")."""
    import numpy as np

    if len(expected) != len(got):
        raise Failure(f"the converted model gives {len(got)} outputs, {framework} {len(expected)}")
    worst = 0.0
    for a, b in zip(expected, got, strict=True):
        a = np.asarray(a, np.float64)
        b = np.asarray(b, np.float64)
        if a.shape != b.shape:
            raise Failure(
                f"converted output shape {list(b.shape)} != {framework}'s {list(a.shape)}"
            )
        if a.size:
            scale = max(float(np.max(np.abs(a))), 1e-12)
            worst = max(worst, float(np.max(np.abs(a - b))) / scale)
    return worst
