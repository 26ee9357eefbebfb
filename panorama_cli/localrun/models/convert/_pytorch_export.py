"""TorchScript -> ONNX with torch.onnx.export, run by the converter environment's python
(never imported by panorama-cli): ``python _pytorch_export.py SPEC_JSON``.

Spec: {"model_dir", "inputs": [{"name", "shape"}], "output", "seed"} (convert/__init__.py).
The last stdout line is one JSON object: {"ok": true, "framework_version", "output_names",
"max_rel_error"} or {"ok": false, "error"} (then exit status 1). What torch prints goes to
stderr.

The model: the one TorchScript file (.pt, .pth, .torchscript, .ts) in model_dir (recursive).
Inputs: the descriptor's names map to ``forward``'s parameters by name when every name is
one, else by position (Neo's PyTorch descriptors name inputs freely: ``data`` for
``forward(self, x)``); the ONNX takes the descriptor's names at its shapes, float32.
Outputs: what ``forward`` returns, flattened in order (tensor, tuple/list, dict values),
named ``output0``, ``output1``, ...

Exporter: the TorchScript-based one (``dynamo=False``; torch 2.13 still has it, deprecated):
the torch.export-based default cannot trace a ScriptModule, and needs onnxscript.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from pathlib import Path

# This folder holds convert/pytorch.py (harmless) and convert/tensorflow.py: off sys.path
# (the driver runs the script with ``python -I``, which leaves it out; this covers a manual run)
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

#: ONNX opset of the converted model (onnxruntime 1.17+ runs it)
OPSET = 17
SUFFIXES = (".pt", ".pth", ".torchscript", ".ts")


# what the converter scripts share, loaded by its path (this folder stays off sys.path)
_spec = importlib.util.spec_from_file_location("_export_common", f"{_HERE}/_export_common.py")
_common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_common)
Failure = _common.Failure
_line = _common.line


def main(spec_path: str) -> int:
    return _common.main(spec_path, convert)


def convert(spec: dict) -> dict:
    import numpy as np
    import torch

    model_dir = Path(spec["model_dir"])
    wanted = [(i["name"], [int(d) for d in i["shape"]]) for i in spec["inputs"]]
    path = find_model(model_dir)
    try:
        module = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:  # noqa: BLE001 - RuntimeError and others
        raise Failure(
            f"{path.name} is not a TorchScript module: {_not_torchscript(path, exc)}; save it "
            "with torch.jit.trace(model, example).save(path)"
        ) from None
    params = [a.name for a in module.forward.schema.arguments[1:]]  # skip self
    names, shapes = _map_inputs(wanted, params, path.name)
    rng = np.random.default_rng(int(spec.get("seed", 0)))
    feed = {n: rng.random(shapes[n], dtype=np.float32) for n in names}
    args = tuple(torch.from_numpy(feed[n]) for n in names)
    with torch.no_grad():
        expected = [t.numpy() for t in _flatten(module(*args))]
    output_names = [f"output{i}" for i in range(len(expected))]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation notes
            torch.onnx.export(
                module,
                args,
                spec["output"],
                input_names=names,
                output_names=output_names,
                opset_version=OPSET,
                dynamo=False,
            )
    except Exception as exc:  # noqa: BLE001 - UnsupportedOperatorError, SymbolicValueError...
        raise Failure(_export_error(exc, torch.__version__)) from None
    got = _common.onnx_run(spec["output"], feed)
    return {
        "framework_version": torch.__version__,
        "output_names": output_names,
        "max_rel_error": _common.worst_error(expected, got, "torch"),
    }


def find_model(model_dir: Path) -> Path:
    """The one TorchScript file in ``model_dir``; Failure if none or several."""
    if not model_dir.is_dir():
        raise Failure(f"the model folder {model_dir} does not exist")
    files = sorted(p for p in model_dir.rglob("*") if p.is_file())
    models = [p for p in files if p.suffix in SUFFIXES]
    if len(models) == 1:
        return models[0]
    if models:
        listed = ", ".join(p.relative_to(model_dir).as_posix() for p in models)
        raise Failure(f"the archive holds several TorchScript files ({listed}): keep one")
    found = ", ".join(p.relative_to(model_dir).as_posix() for p in files[:8]) or "nothing"
    raise Failure(
        "the archive has no PyTorch model: it needs one TorchScript file (.pt or .pth, "
        f"from torch.jit.trace(model, example).save(path)); it holds {found}"
    )


def _not_torchscript(path: Path, exc: BaseException) -> str:
    """Why torch.jit.load refused ``path``, in a few words (torch's own text is long)."""
    import zipfile

    try:
        names = zipfile.ZipFile(path).namelist()
    except (OSError, zipfile.BadZipFile):
        return "not a zip archive as torch.jit.save writes"
    if any(n.endswith("data.pkl") for n in names) and not any(
        n.endswith("constants.pkl") for n in names
    ):
        return "it is a torch.save checkpoint (a state_dict or pickled module needs its code)"
    return _line(exc)[:160]


def _map_inputs(wanted, params: list[str], file: str):
    """(input names in forward's order, {name: shape}): by name when every descriptor name is
    a parameter of forward, else by position; Failure when the counts differ."""
    names = [n for n, _ in wanted]
    shapes = dict(wanted)
    if len(names) != len(params):
        raise Failure(
            f"the descriptor gives {len(names)} input(s) ({', '.join(names)}); {file}'s forward "
            f"takes {len(params)}: {', '.join(params) or 'none'}"
        )
    if set(names) == set(params):
        return params, shapes
    return names, shapes  # by position, as Neo took them


def _flatten(value) -> list:
    if isinstance(value, dict):
        return [t for v in value.values() for t in _flatten(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _flatten(v)]
    return [value]


def _export_error(exc: BaseException, version: str) -> str:
    """One line for an export failure; names the operator when the exporter lacks one."""
    import re

    text = str(exc)
    match = re.search(r"operator '?([\w:.]+)'? to ONNX opset version (\d+)", text)
    if match:
        return (
            f"torch.onnx cannot export operator {match.group(1)} (PyTorch {version}, ONNX "
            f"opset {match.group(2)}): replace it in the model, or export it to ONNX yourself"
        )
    return f"torch.onnx.export failed (PyTorch {version}): {type(exc).__name__}: {_line(exc)}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
