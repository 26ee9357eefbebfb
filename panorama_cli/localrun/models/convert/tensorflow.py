"""TensorFlow -> ONNX with tf2onnx, in an isolated converter environment.

What Neo took for TENSORFLOW (and KERAS) was a ``.tar.gz`` holding a SavedModel folder
(``saved_model.pb`` + ``variables/``), a frozen GraphDef ``.pb`` or a Keras ``.h5``. The script
(:data:`SCRIPT`, run by the environment's python, never imported here) finds which, converts it
with ``tf2onnx.convert.from_function`` / ``from_graph_def`` at the descriptor's input names and
shapes, and checks it against TensorFlow on a random input.

Output order (the tuple the app's ``self.call`` gets):
- SavedModel: the ``serving_default`` signature's output keys, sorted (``tf.nest.flatten`` of
  the signature's output dict, the order TensorFlow itself flattens it in); the ONNX outputs
  carry those keys as names (a Keras 3 ``model.export`` gives ``output_0``, ``output_1``, ...).
- Frozen GraphDef: the graph's terminal nodes (nothing reads them) in graph order.
- Keras file: the model's outputs in order, named ``output0``, ``output1``, ...

Pins, tried together on Python 3.11 (pip from PyPI): tf2onnx 1.17.0 (March 2026) converts
TensorFlow 2.20 (Keras 3.15); tensorflow-cpu 2.20 takes protobuf and numpy 2 as pip resolved
them. About 1.6 GiB installed.
"""

from __future__ import annotations

from pathlib import Path

NAME = "tensorflow"
#: How progress lines name it.
LABEL = "TensorFlow 2.20 via tf2onnx 1.17"
REQUIREMENTS = [
    "tensorflow-cpu==2.20.0",
    "tf2onnx==1.17.0",
    "keras==3.15.1",
    "numpy==2.4.6",
    "protobuf==7.36.2",
    "onnx==1.23.2",
    "onnxruntime==1.32.0",
]
#: Part of the conversion cache key: bump when the script's output changes.
VERSION = "1"
SCRIPT = Path(__file__).with_name("_tensorflow_export.py")
