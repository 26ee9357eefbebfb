"""Runtimes behind :class:`~panorama_cli.localrun.models.inference.ModelNode`.

Each backend loads one model and exposes its inputs (names, shapes with -1 for dynamic
dimensions, numpy dtypes) and outputs (names, in the model's order), and ``run(feed)`` with
``feed`` a dict ``{backend input name: ndarray}`` already shaped and cast, returning a tuple of
ndarrays in output order. No checking here: ModelNode does it.

- :class:`OnnxBackend`: onnxruntime (core dependency), CPU or CUDA execution provider.

MXNet, TensorFlow and PyTorch models reach it converted to ONNX
(:mod:`panorama_cli.localrun.models.convert`): one runtime in panorama-cli's process, the frameworks
only in their converters' environments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from panorama_cli.errors import UserError

_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(bool)": "bool",
}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class OnnxBackend:
    """An ONNX model in an onnxruntime ``InferenceSession``.

    Args:
        path: the .onnx file.
        label: how messages name the model (node and file).
        device: "cpu", or "cuda" (CUDA execution provider when onnxruntime has it, else CPU).

    Raises:
        UserError: onnxruntime cannot load the file.
    """

    def __init__(self, path: Path, label: str, device: str = "cpu") -> None:
        import numpy as np
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only; no warnings on the app's console
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise UserError(f"{label}: onnxruntime cannot load it ({_first_line(exc)})") from None
        used = self.session.get_providers()[0]
        self.name = "onnxruntime-cuda" if used == "CUDAExecutionProvider" else "onnxruntime-cpu"
        inputs = self.session.get_inputs()
        self.input_names = tuple(i.name for i in inputs)
        self.input_shapes = {
            i.name: tuple(d if isinstance(d, int) and d > 0 else -1 for d in i.shape)
            for i in inputs
        }
        self.input_dtypes = {i.name: np.dtype(_ORT_DTYPES.get(i.type, "float32")) for i in inputs}
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        self._run = self.session.run

    def run(self, feed: dict[str, Any]) -> tuple[Any, ...]:
        """Runs the session; outputs in the model's order."""
        return tuple(self._run(None, feed))
