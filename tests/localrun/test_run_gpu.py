"""run --device cuda for the apps themselves: which business-logic nodes get the GPU (their
package asks for it with inferenceAccelerators or nvAccelerators, or the graph has no model
node), the one line a run without a GPU gives, and the device requests on a node's container
as the real Docker engine records them (no GPU needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from panorama_cli.errors import UserError
from panorama_cli.localrun.apps.container_app import ContainerRuntime, NodeImage
from panorama_cli.localrun.apps.supervisor import AppSpec
from panorama_cli.localrun.models import devices
from panorama_cli.localrun.plan import RunOptions, build_plan
from panorama_cli.project.accelerators import NO_MODEL_NODE
from panorama_cli.project.project import Project
from tests.localrun.helpers import ACCOUNT, PACKAGE, add_model_node, make_project, video
from tests.support.cli_runner import run_cli_subprocess

APP = "import panoramasdk\nnode = panoramasdk.node()\nnode.inputs.video_in.get()\n"
GPU = [{"deviceType": "nvhost_gpu", "sharedResourcePolicy": {"policy": "allow_all"}}]


def _ask_for_gpu(root: Path, key: str) -> None:
    """Give the app's package a container implementation whose hardware_access requirement
    lists the GPU under ``key``, as the official GPU samples' package.json does."""
    path = root / "packages" / f"{ACCOUNT}-{PACKAGE}-1.0" / "package.json"
    manifest = json.loads(path.read_text())
    requirement = {"type": "hardware_access", key: GPU}
    manifest["nodePackage"]["assets"] = [
        {
            "name": "code_asset",
            "implementations": [
                {
                    "type": "container",
                    "assetUri": "a.tar.gz",
                    "descriptorUri": "b.json",
                    "requirements": [requirement],
                }
            ],
        }
    ]
    path.write_text(json.dumps(manifest))


def _cuda_plan(root: Path):
    return build_plan(Project(root), RunOptions(device="cuda", cameras={"front_camera": "x"}))


def test_without_a_model_node_the_app_gets_the_gpu(tmp_path):
    root = make_project(tmp_path, APP, params={}, hdmi=False)
    assert _cuda_plan(root).gpu_nodes == {"code_node": NO_MODEL_NODE}
    cpu = build_plan(Project(root), RunOptions(cameras={"front_camera": "x"}))
    assert cpu.gpu_nodes == {}


@pytest.mark.parametrize("key", ["inferenceAccelerators", "nvAccelerators"])
def test_with_a_model_node_only_a_node_that_asks_gets_the_gpu(tmp_path, key):
    root = make_project(tmp_path, APP, params={}, hdmi=False)
    add_model_node(root, "model_node", "data", (1, 3, 224, 224))
    assert _cuda_plan(root).gpu_nodes == {}  # the model node runs its model on the GPU
    _ask_for_gpu(root, key)
    assert _cuda_plan(root).gpu_nodes == {
        "code_node": "its package asks for nvhost_gpu (hardware_access)"
    }


def test_no_gpu_for_a_node_that_gets_it_is_one_line():
    nodes = {"a": NO_MODEL_NODE, "b": NO_MODEL_NODE}
    with pytest.raises(UserError) as caught:
        devices.require_gpu_for(nodes, gpu=lambda: "no NVIDIA driver (libcuda.so.1 ...)")
    assert caught.value.message == (
        f"--device cuda: no GPU for node a (and 1 more node(s)) ({NO_MODEL_NODE}): "
        "no NVIDIA driver (libcuda.so.1 ...)"
    )
    assert devices.require_gpu_for({}, gpu=lambda: "never asked") == []
    assert devices.require_gpu_for({"a": NO_MODEL_NODE}, gpu=lambda: None) == [
        f"--device cuda: node a gets the GPU ({NO_MODEL_NODE})"
    ]


def test_run_device_cuda_on_an_app_without_model_nodes_says_whether_there_is_a_gpu(tmp_path):
    root = make_project(tmp_path, APP, params={}, hdmi=False)
    out = tmp_path / "out"
    args = ["run", "--camera", f"front_camera={video()}", "--frames", "1", "--fast",
            "--device", "cuda", "--output-dir", str(out)]  # fmt: skip
    result = run_cli_subprocess(args, cwd=root)
    problem = devices.nvidia_gpu_problem()
    if problem is None:  # a machine with a GPU: the app ran and the run said it got it
        assert "--device cuda: node code_node gets the GPU" in result.stderr, result.describe()
        return
    assert result.exit_code == 1, result.describe()
    [line] = [x for x in result.stderr.splitlines() if "--device cuda" in x]
    assert line.startswith("Error: --device cuda: no GPU for node code_node (the graph has no")
    assert problem in line
    assert "Traceback" not in result.stderr and not out.exists()


class _Recorded(Exception):
    pass


def test_only_the_nodes_that_get_the_gpu_have_device_requests(
    tmp_path, docker_client, base_image_amd64
):
    """The engine's own record (docker inspect HostConfig) of each node's container:
    ``--gpus all`` for the node that gets the GPU, nothing for the other; with
    --aws-endpoint-url, ``host.docker.internal`` names this machine."""
    image = docker_client.images.get(base_image_amd64)
    images = {
        node: NodeImage(node, base_image_amd64, image.id, "linux/amd64") for node in ("a", "b")
    }
    runtime = ContainerRuntime(docker_client, images, run_dir=tmp_path, gpu_nodes={"a"})
    seen: dict[str, Any] = {}
    create = docker_client.containers.create

    def create_and_inspect(image_id: str, command: Any, **options: Any) -> Any:
        container = create(image_id, command, **options)
        try:
            host = docker_client.api.inspect_container(container.id)["HostConfig"]
            node = options["labels"]["panorama-cli.node"]
            seen[node] = host.get("DeviceRequests")
            seen[f"{node}-hosts"] = host.get("ExtraHosts")
            seen[f"{node}-env"] = options["environment"]
        finally:
            container.remove(force=True)
        raise _Recorded

    runtime.client = _Client(docker_client, create_and_inspect)
    try:
        for node in ("a", "b"):
            (tmp_path / node).mkdir()
            spec = AppSpec(
                node=node,
                interpreter="python3",
                entry="/panorama/app.py",
                src=tmp_path,
                logs=tmp_path / node / "logs",
                storage=tmp_path / node / "storage",
                bin_dir=tmp_path / node / "bin",
                env={"PANORAMA_LOCALRUN_SOCKET": str(tmp_path / "ctl.sock")},
                aws_endpoint_url=None if node == "a" else "http://host.docker.internal:5000",
            )
            (tmp_path / "ctl.sock").touch()
            with pytest.raises(_Recorded):
                runtime.app(spec, tmp_path / node / "console.log").start()
    finally:
        runtime.close()
    [request] = seen["a"]
    assert request["Count"] == -1 and request["Capabilities"] == [["gpu"]]
    assert not seen["b"]
    assert not seen["a-hosts"] and "AWS_ENDPOINT_URL" not in seen["a-env"]
    assert seen["b-hosts"] == ["host.docker.internal:host-gateway"]
    assert seen["b-env"]["AWS_ENDPOINT_URL"] == "http://host.docker.internal:5000"
    assert seen["b-env"]["AWS_ACCESS_KEY_ID"] == "test"


class _Client:
    """The real client with ``containers.create`` replaced (everything else passes through)."""

    def __init__(self, client: Any, create: Any):
        self._client = client
        self.containers = _Containers(create)
        self.api = client.api

    def close(self) -> None:
        return None


class _Containers:
    def __init__(self, create: Any):
        self.create = create
