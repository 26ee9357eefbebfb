"""``run --device cpu|cuda``: which device the model nodes run on, and why CUDA is not usable.

On the appliance the model nodes ran on its NVIDIA GPU; here ``--device cuda`` runs them on
this machine's NVIDIA GPU: ONNX models through onnxruntime's CUDA execution provider (the
``onnxruntime-gpu`` build, extra ``panorama-cli[gpu]``), TorchScript on torch's ``cuda``
device, SavedModels on TensorFlow's GPU. When that cannot happen the run stops before the
first frame with one line naming what is missing: the NVIDIA driver (``libcuda.so.1``), a
GPU, the runtime's CUDA build, or the provider's own libraries.

Nothing here imports a heavy module at import time; each check imports only the runtime it
asks about.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable, Mapping
from typing import Any

from panorama_cli.errors import UserError

log = logging.getLogger(__name__)

DEVICES = ("cpu", "cuda")
#: libcuda's CUresult codes worth naming (cuda.h).
_CU_ERRORS = {
    3: "CUDA_ERROR_NOT_INITIALIZED",
    35: "CUDA_ERROR_INSUFFICIENT_DRIVER",
    100: "CUDA_ERROR_NO_DEVICE",
    101: "CUDA_ERROR_INVALID_DEVICE",
    999: "CUDA_ERROR_UNKNOWN",
}


def device_of(backend: str) -> str:
    """The device a backend name says it runs on: ``"onnxruntime-cuda"`` -> ``"cuda"``,
    ``"torch-cpu"`` -> ``"cpu"``, ``"tensorflow-gpu"`` -> ``"cuda"``; ``"unknown"`` else."""
    suffix = backend.rsplit("-", 1)[-1] if "-" in backend else ""
    return {"cpu": "cpu", "cuda": "cuda", "gpu": "cuda"}.get(suffix, "unknown")


def runtime_of(backend: str) -> str:
    """The runtime part of a backend name: ``"onnxruntime-cuda"`` -> ``"onnxruntime"``."""
    return backend.rsplit("-", 1)[0] if "-" in backend else backend


def nvidia_gpu_problem(load: Callable[[str], Any] = ctypes.CDLL) -> str | None:
    """Why this machine has no usable NVIDIA GPU, or None when the driver reports one.

    Asks the driver API directly (``libcuda.so.1``: ``cuInit``, ``cuDeviceGetCount``), which
    every CUDA runtime uses underneath, so the answer does not depend on torch or onnxruntime.

    Args:
        load: loads a shared library (``ctypes.CDLL``; tests pass a stand-in).
    """
    try:
        cuda = load("libcuda.so.1")
    except OSError:
        return "no NVIDIA driver (libcuda.so.1 cannot be loaded)"
    status = int(cuda.cuInit(0))
    if status != 0:
        name = _CU_ERRORS.get(status, f"error {status}")
        return f"the NVIDIA driver finds no usable GPU (cuInit: {name})"
    count = ctypes.c_int(0)
    status = int(cuda.cuDeviceGetCount(ctypes.byref(count)))
    if status != 0 or count.value < 1:
        return "the NVIDIA driver reports no GPU (cuDeviceGetCount: 0)"
    return None


def onnxruntime_cuda_problem(gpu: Callable[[], str | None] = nvidia_gpu_problem) -> str | None:
    """Why onnxruntime cannot use CUDA here, or None when it should (provider and GPU)."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return (
            f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (the CPU build is "
            "installed): pip uninstall onnxruntime, then pip install 'panorama-cli[gpu]' "
            "(onnxruntime-gpu)"
        )
    return gpu()


def torch_cuda_problem(gpu: Callable[[], str | None] = nvidia_gpu_problem) -> str | None:
    """Why torch cannot use CUDA here, or None when ``torch.cuda.is_available()``."""
    try:
        import torch
    except ImportError:
        return "torch is not installed: pip install 'panorama-cli[torch]'"
    if getattr(torch.version, "cuda", None) is None:
        return f"torch {torch.__version__} is a CPU-only build (install a CUDA build of torch)"
    if not torch.cuda.is_available():
        return gpu() or f"torch {torch.__version__} cannot initialise CUDA on this machine"
    return None


def tensorflow_cuda_problem(gpu: Callable[[], str | None] = nvidia_gpu_problem) -> str | None:
    """Why TensorFlow sees no GPU here, or None when it lists one."""
    try:
        import tensorflow as tf
    except ImportError:
        return "tensorflow is not installed: pip install 'panorama-cli[tensorflow]'"
    if not tf.config.list_physical_devices("GPU"):
        return gpu() or f"tensorflow {tf.__version__} lists no GPU (a CPU-only build?)"
    return None


#: runtime (backend name prefix) -> its CUDA check.
CHECKS: dict[str, Callable[[], str | None]] = {
    "onnxruntime": onnxruntime_cuda_problem,
    "torch": torch_cuda_problem,
    "tensorflow": tensorflow_cuda_problem,
}


def cuda_problem(runtime: str) -> str:
    """Why ``runtime`` (``onnxruntime``, ``torch``, ``tensorflow``) did not run on CUDA: its
    check's answer, or what is left when the check passes (the provider's libraries)."""
    check = CHECKS.get(runtime)
    problem = check() if check is not None else f"{runtime} has no CUDA support here"
    if problem:
        return problem
    if runtime == "onnxruntime":
        return (
            "the CUDAExecutionProvider failed to start (its CUDA/cuDNN libraries are missing or "
            "do not match onnxruntime-gpu; run with --debug for onnxruntime's reason)"
        )
    return f"{runtime} fell back to the CPU"


def require_models_on(device: str, models: Mapping[str, Any]) -> None:
    """Check that every loaded model node runs on ``device`` (its ``backend`` name says).

    Args:
        device: ``"cpu"`` or ``"cuda"``.
        models: node name -> loaded model (a ``backend`` attribute such as
            ``"onnxruntime-cuda"``).

    Raises:
        UserError: ``device`` is cuda and a model runs on the CPU; one line naming the node,
            its runtime and what is missing (driver, GPU, CUDA build, provider libraries).
    """
    if device != "cuda":
        return
    for name, model in models.items():
        backend = str(getattr(model, "backend", "unknown"))
        if device_of(backend) == "cuda":
            continue
        runtime = runtime_of(backend)
        problem = cuda_problem(runtime)
        log.debug("model node %s: %s on %s: %s", name, runtime, device_of(backend), problem)
        raise UserError(
            f"--device cuda: model node {name} ({runtime}) cannot run on a GPU here: {problem}",
            hint="fix that, or run without --device cuda (the CPU)",
        )


def require_gpu_for(
    nodes: Mapping[str, str], gpu: Callable[[], str | None] = nvidia_gpu_problem
) -> list[str]:
    """Check that this machine has a GPU for the business-logic nodes that get it.

    Args:
        nodes: node -> why it gets the GPU (:func:`panorama_cli.project.accelerators.
            gpu_reasons`); empty: nothing to check.
        gpu: why there is no usable GPU, or None (:func:`nvidia_gpu_problem`; tests pass a
            stand-in).

    Returns:
        One note per node, e.g. ``--device cuda: node code_node gets the GPU (the graph has no
        model node, so the app runs its models itself)``.

    Raises:
        UserError: a node gets the GPU and there is none: one line naming the node, why it
            gets it and what is missing (driver, GPU).
    """
    if not nodes:
        return []
    problem = gpu()
    if problem:
        name, why = next(iter(nodes.items()))
        more = f" (and {len(nodes) - 1} more node(s))" if len(nodes) > 1 else ""
        raise UserError(
            f"--device cuda: no GPU for node {name}{more} ({why}): {problem}",
            hint="run on a machine with an NVIDIA GPU and its driver, or leave out --device cuda",
        )
    return [f"--device cuda: node {name} gets the GPU ({why})" for name, why in nodes.items()]


def docker_gpu_request() -> list[Any]:
    """Docker device requests that hand every NVIDIA GPU to a container (``--gpus all``)."""
    import docker

    return [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
