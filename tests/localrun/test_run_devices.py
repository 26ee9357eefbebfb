"""run --device cuda without a GPU: which part is missing, in one line; device selection;
the device each model used in report.json; --image/--platform only with --in-container."""

from __future__ import annotations

import ctypes
import json

import pytest

from panorama_cli.errors import UserError
from panorama_cli.localrun.apps.container_images import parse_images
from panorama_cli.localrun.models import devices
from tests.localrun.helpers import add_model_node, make_project, video
from tests.support.cli_runner import run_cli_subprocess
from tests.support.onnx_models import pool_model

MODEL_APP = """
import json, panoramasdk
node = panoramasdk.node()
streams = node.inputs.video_in.get()
out = node.call({"data": streams[0].image[:224, :224].transpose(2, 0, 1)[None] / 255.0},
                "model_node")
json.dump({"shape": list(out[0].shape)}, open("/opt/aws/panorama/storage/out.json", "w"))
"""


class _Driver:
    """libcuda.so.1 as ctypes sees it: cuInit and cuDeviceGetCount return CUresult codes."""

    def __init__(self, init: int, count: int = 0):
        self.init, self.count = init, count

    def cuInit(self, flags):  # noqa: N802 - the driver API's name
        return self.init

    def cuDeviceGetCount(self, pointer):  # noqa: N802
        ctypes.cast(pointer, ctypes.POINTER(ctypes.c_int))[0] = self.count
        return 0


def _no_library(name):
    raise OSError(f"{name}: cannot open shared object file")


def test_gpu_problem_names_the_driver_the_device_or_nothing():
    assert "no NVIDIA driver (libcuda.so.1" in devices.nvidia_gpu_problem(_no_library)
    assert "CUDA_ERROR_NO_DEVICE" in devices.nvidia_gpu_problem(lambda _: _Driver(100))
    assert "CUDA_ERROR_INSUFFICIENT_DRIVER" in devices.nvidia_gpu_problem(lambda _: _Driver(35))
    assert "reports no GPU" in devices.nvidia_gpu_problem(lambda _: _Driver(0, count=0))
    assert devices.nvidia_gpu_problem(lambda _: _Driver(0, count=2)) is None


def test_onnxruntime_problem_is_the_provider_then_the_gpu():
    import onnxruntime as ort

    problem = devices.onnxruntime_cuda_problem(gpu=lambda: "no GPU here")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert problem == "no GPU here"
    else:  # the CPU build (CI): the extra that brings the provider
        assert "no CUDAExecutionProvider" in problem and "panorama-cli[gpu]" in problem
        assert ort.__version__ in problem


def test_torch_problem_names_what_is_missing():
    problem = devices.torch_cuda_problem(gpu=lambda: "no GPU here")
    try:
        import torch
    except ImportError:
        assert problem == "torch is not installed: pip install 'panorama-cli[torch]'"
        return
    if torch.cuda.is_available():
        assert problem is None
    elif torch.version.cuda is None:
        assert "CPU-only build" in problem
    else:
        assert problem == "no GPU here"


@pytest.mark.parametrize(
    ("backend", "device", "runtime"),
    [
        ("onnxruntime-cuda", "cuda", "onnxruntime"),
        ("onnxruntime-cpu", "cpu", "onnxruntime"),
        ("torch-cuda", "cuda", "torch"),
        ("tensorflow-gpu", "cuda", "tensorflow"),
        ("unknown", "unknown", "unknown"),
    ],
)
def test_device_and_runtime_from_the_backend_name(backend, device, runtime):
    assert devices.device_of(backend) == device
    assert devices.runtime_of(backend) == runtime


class _Model:
    def __init__(self, backend):
        self.backend = backend


def test_cuda_asked_and_a_model_on_the_cpu_is_one_line(monkeypatch):
    monkeypatch.setitem(devices.CHECKS, "torch", lambda: "torch is not installed: pip install x")
    devices.require_models_on("cuda", {"a": _Model("onnxruntime-cuda")})
    devices.require_models_on("cpu", {"b": _Model("torch-cpu")})
    with pytest.raises(UserError) as caught:
        devices.require_models_on(
            "cuda", {"a": _Model("onnxruntime-cuda"), "b": _Model("torch-cpu")}
        )
    assert caught.value.message == (
        "--device cuda: model node b (torch) cannot run on a GPU here: "
        "torch is not installed: pip install x"
    )
    monkeypatch.setitem(devices.CHECKS, "onnxruntime", lambda: None)  # provider and GPU fine
    with pytest.raises(UserError, match="CUDAExecutionProvider failed to start"):
        devices.require_models_on("cuda", {"c": _Model("onnxruntime-cpu")})


def test_docker_gpu_request_is_every_gpu():
    [request] = devices.docker_gpu_request()
    assert request["Count"] == -1 and request["Capabilities"] == [["gpu"]]


def test_image_and_platform_only_with_in_container():
    with pytest.raises(UserError, match="--image applies to --in-container"):
        parse_images(("my/app:1",), in_container=False, platform=None)
    with pytest.raises(UserError, match="--platform applies to --in-container"):
        parse_images((), in_container=False, platform="linux/arm64")
    images = parse_images(("my/app:1", "b=reg:5000/b:2"), in_container=True, platform=None)
    assert images == {"": "my/app:1", "b": "reg:5000/b:2"}
    with pytest.raises(UserError, match="twice for node b"):
        parse_images(("b=x", "b=y"), in_container=True, platform=None)


def test_device_cuda_without_gpu_fails_before_the_run_and_cpu_reports_the_device(tmp_path):
    if devices.onnxruntime_cuda_problem() is None:
        pytest.skip("this machine has onnxruntime's CUDA provider and a GPU: nothing is missing")
    root = make_project(tmp_path, MODEL_APP, params={}, hdmi=False)
    add_model_node(root, "model_node", "data", (1, 3, 224, 224))
    model = pool_model(tmp_path / "pool.onnx")
    args = ["run", "--camera", f"front_camera={video()}", "--frames", "2", "--fast",
            "--model", f"model_node={model}"]  # fmt: skip
    out = tmp_path / "out"
    cuda = run_cli_subprocess([*args, "--device", "cuda", "--output-dir", str(out)], cwd=root)
    assert cuda.exit_code == 1, cuda.describe()
    [line] = [x for x in cuda.stderr.splitlines() if "--device cuda" in x]
    assert "model node model_node (onnxruntime) cannot run on a GPU here" in line
    assert "Traceback" not in cuda.stderr and not out.exists()
    cpu = run_cli_subprocess([*args, "--json", "--output-dir", str(out)], cwd=root)
    assert cpu.exit_code == 1, cpu.describe()  # the app ends by itself after one frame
    model_entry = json.loads((out / "report.json").read_text())["models"]["model_node"]
    assert model_entry["backend"] == "onnxruntime-cpu" and model_entry["device"] == "cpu"
    assert model_entry["calls"] == 1
    assert json.loads((out / "storage" / "out.json").read_text()) == {"shape": [1, 3, 1, 1]}
