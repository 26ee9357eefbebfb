"""Runtimes behind :class:`~panorama_cli.localrun.inference.ModelNode`.

Each backend loads one model and exposes its inputs (names, shapes with -1 for dynamic
dimensions, numpy dtypes) and outputs (names, in the model's order), and ``run(feed)`` with
``feed`` a dict ``{backend input name: ndarray}`` already shaped and cast, returning a tuple of
ndarrays in output order. No checking here: ModelNode does it.

- :class:`OnnxBackend`: onnxruntime (core dependency), CPU or CUDA execution provider.
- :class:`TorchScriptBackend`: ``torch.jit.load`` (extra ``panorama-cli[torch]``).
- :class:`SavedModelBackend`: ``tf.saved_model.load`` + ``serving_default`` (extra
  ``panorama-cli[tensorflow]``); outputs in the signature's (sorted) key order.
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


def _missing_extra(label: str, what: str, module: str, extra: str) -> UserError:
    return UserError(
        f"{label} is a {what} model and {module} is not installed: "
        f"pip install 'panorama-cli[{extra}]'",
        hint="or export the model to ONNX and pass --model NODE=model.onnx",
    )


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


class TorchScriptBackend:
    """A TorchScript module (``torch.jit.save`` output) on CPU or CUDA.

    Input names come from the model descriptor when given, else from ``forward``'s
    parameters; inputs are float32 unless ``dtypes`` says otherwise. Outputs: a tensor, or a
    (nested) tuple/list of tensors flattened in order, or a dict in its insertion order.

    Raises:
        UserError: torch is not installed (names the extra), or the file is not TorchScript.
    """

    def __init__(
        self,
        path: Path,
        label: str,
        device: str = "cpu",
        names: tuple[str, ...] = (),
        shapes: dict[str, tuple[int, ...]] | None = None,
    ) -> None:
        import numpy as np

        try:
            import torch
        except ImportError:
            raise _missing_extra(label, "TorchScript", "torch", "torch") from None
        self._torch = torch
        self._device = torch.device(
            "cuda" if device.startswith("cuda") and torch.cuda.is_available() else "cpu"
        )
        try:
            self.module = torch.jit.load(str(path), map_location=self._device).eval()
        except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError and others
            raise UserError(
                f"{label}: not a TorchScript model ({_first_line(exc)})",
                hint="save it with torch.jit.trace(model, example).save(path), or export to ONNX",
            ) from None
        self.name = f"torch-{self._device.type}"
        if not names:
            arguments = self.module.forward.schema.arguments[1:]  # skip self
            names = tuple(a.name for a in arguments)
        self.input_names = names
        self.input_shapes = {n: tuple((shapes or {}).get(n, ())) or (-1,) for n in names}
        self.input_dtypes = {n: np.dtype("float32") for n in names}
        self.output_names: tuple[str, ...] = ()  # known after the first call

    def run(self, feed: dict[str, Any]) -> tuple[Any, ...]:
        torch = self._torch
        args = [torch.from_numpy(feed[n]).to(self._device) for n in self.input_names]
        with torch.inference_mode():
            result = self.module(*args)
        outputs = tuple(t.detach().cpu().numpy() for t in _flatten(result))
        if not self.output_names:
            self.output_names = tuple(f"output{i}" for i in range(len(outputs)))
        return outputs


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [t for v in value.values() for t in _flatten(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _flatten(v)]
    return [value]


class SavedModelBackend:
    """A TensorFlow SavedModel folder, run through its ``serving_default`` signature.

    Raises:
        UserError: tensorflow is not installed (names the extra), or no serving signature.
    """

    def __init__(self, path: Path, label: str, device: str = "cpu") -> None:
        try:
            import tensorflow as tf
        except ImportError:
            raise _missing_extra(
                label, "TensorFlow SavedModel", "tensorflow", "tensorflow"
            ) from None
        self._tf = tf
        try:
            loaded = tf.saved_model.load(str(path))
            self._fn = loaded.signatures["serving_default"]
        except Exception as exc:  # noqa: BLE001 - TF raises many types
            raise UserError(f"{label}: cannot load the SavedModel ({_first_line(exc)})") from None
        self._loaded = loaded  # keeps the variables alive
        self.name = "tensorflow-" + ("gpu" if tf.config.list_logical_devices("GPU") else "cpu")
        specs = self._fn.structured_input_signature[1]
        self.input_names = tuple(sorted(specs))
        self.input_shapes = {
            n: tuple(-1 if d is None else int(d) for d in specs[n].shape) for n in self.input_names
        }
        self.input_dtypes = {n: specs[n].dtype.as_numpy_dtype for n in self.input_names}
        self.output_names = tuple(sorted(self._fn.structured_outputs))

    def run(self, feed: dict[str, Any]) -> tuple[Any, ...]:
        tf = self._tf
        result = self._fn(**{n: tf.constant(v) for n, v in feed.items()})
        return tuple(result[n].numpy() for n in self.output_names)
