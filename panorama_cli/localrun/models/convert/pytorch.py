"""PyTorch -> ONNX: a TorchScript module (``torch.jit.trace``/``torch.jit.script``, saved as
``.pt``/``.pth``) through ``torch.onnx.export``, in an isolated converter environment.

What Neo took for PYTORCH was a traced TorchScript file in a ``.tar.gz``; its descriptor names
the inputs freely (the official sample's SqueezeNet says ``data`` for ``forward(self, x)``), so
the script (:data:`SCRIPT`, run by the environment's python, never imported here) maps the
descriptor's inputs to ``forward``'s parameters by name when every name is one of them, else by
position (the counts must match). The ONNX takes the descriptor's names at the descriptor's
shapes; its outputs are ``output0``, ``output1``, ... in the order the module returns them (a
tuple; nested tuples/lists flattened, a dict in its order), so the app's ``self.call`` gets the
tuple it got on the appliance.

Exporter: torch's TorchScript-based one (``dynamo=False``, deprecated in torch 2.9+ but
present in 2.13): the torch.export-based default cannot trace an already compiled
ScriptModule, and would need onnxscript. Pins, tried together on Python 3.11: torch 2.13.0 (on
this machine kind pip takes the CPU wheel from the local wheel folder; elsewhere PyPI's
``torch==2.13.0`` is the CUDA build, several GB), onnx and onnxruntime as pip resolved them.
About 1.1 GiB installed.
"""

from __future__ import annotations

from pathlib import Path

NAME = "pytorch"
#: How progress lines name it.
LABEL = "PyTorch 2.13 TorchScript"
REQUIREMENTS = [
    "torch==2.13.0",
    "numpy==2.4.6",
    "protobuf==7.36.2",
    "onnx==1.23.2",
    "onnxruntime==1.32.0",
]
#: Part of the conversion cache key: bump when the script's output changes.
VERSION = "1"
SCRIPT = Path(__file__).with_name("_pytorch_export.py")
