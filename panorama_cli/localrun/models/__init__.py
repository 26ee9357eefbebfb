"""Model nodes of a run: archives, backends, devices and the Neo-free conversions.

model_archive (extraction cache), inference (loading a model node), model_backends
(onnxruntime sessions), devices (``--device cpu|cuda``), convert (MXNet / TensorFlow /
PyTorch assets to ONNX in their own environments).
"""
