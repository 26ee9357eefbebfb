"""MXNet -> ONNX: a Gluon/Module export (``<name>-symbol.json`` + ``<name>-NNNN.params``, as
``HybridBlock.export`` writes them) through MXNet's own exporter, ``mxnet.onnx.export_model``.

The script (:data:`SCRIPT`) runs in the converter environment (never in panorama-cli's
process). Pins, tried on Python 3.11: mxnet 1.9.1 needs numpy < 1.24 (it uses ``np.bool``);
its exporter imports ``onnx.mapping``, which onnx 1.16 removed, so onnx is 1.15.0; protobuf
and onnxruntime as pip resolved them then (onnxruntime only runs the check).
"""

from __future__ import annotations

from pathlib import Path

NAME = "mxnet"
#: How progress lines name it.
LABEL = "MXNet 1.9.1"
REQUIREMENTS = [
    "mxnet==1.9.1",
    "numpy==1.23.5",
    "onnx==1.15.0",
    "protobuf==7.36.2",
    "onnxruntime==1.32.0",
]
#: Part of the conversion cache key: bump when the script's output changes.
VERSION = "2"  # 2: a ranked (NMS) output checked before the ranking
SCRIPT = Path(__file__).with_name("_mxnet_export.py")
