"""``export --device cuda``: which containers of the fleet app get the GPU, from a real project's
run plan (no engine): serve when the graph has model nodes (it runs them), a business-logic
node's container when its package asks for an accelerator (``inferenceAccelerators`` or
``nvAccelerators``) or the graph has no model node (the app runs its models itself, as nine
official samples do); and what export says about it."""

from __future__ import annotations

from pathlib import Path

import pytest

from panorama_cli.fleet.app import ExportOptions, fleet_app
from panorama_cli.fleet.export import gpu_notes
from panorama_cli.fleet.model import FleetApp
from panorama_cli.localrun.plan import RunOptions, build_plan
from panorama_cli.project.project import Project
from tests.fleet.sample_app import KEY, SERVE_TOKEN
from tests.localrun.helpers import add_model_node, make_project
from tests.localrun.test_run_gpu import APP, _ask_for_gpu


def _app(root: Path, device: str, target: str = "compose") -> tuple[FleetApp, dict[str, str]]:
    plan = build_plan(Project(root), RunOptions(device=device, cameras={"front_camera": "x"}))
    options = ExportOptions(target=target, output_dir=root / "bundle", device=device)
    app = fleet_app(plan, options, "serve:1", {"code_node": ("node:1", "")},
                    control_key=KEY, serve_token=SERVE_TOKEN)  # fmt: skip
    return app, plan.gpu_nodes


def _device_arg(app: FleetApp) -> str:
    args = list(app.serve.args)
    return args[args.index("--device") + 1]


def test_an_app_without_model_nodes_gets_the_gpu_in_its_own_container(tmp_path: Path) -> None:
    root = make_project(tmp_path, APP, params={}, hdmi=False)
    app, reasons = _app(root, "cuda")
    assert [n.gpu for n in app.nodes] == [True]
    assert app.serve.gpu is False and _device_arg(app) == "cpu"  # serve runs no model
    assert gpu_notes(app, reasons, "compose") == [
        "--device cuda: node code_node's container gets the GPU (the graph has no model node, "
        "so the app runs its models itself)"
    ]
    app, reasons = _app(root, "cpu")
    assert not any(c.gpu for c in app.containers) and _device_arg(app) == "cpu"
    assert gpu_notes(app, reasons, "compose") == []


@pytest.mark.parametrize("key", ["inferenceAccelerators", "nvAccelerators"])
def test_model_nodes_give_serve_the_gpu_and_a_node_that_asks_its_own(
    tmp_path: Path, key: str
) -> None:
    root = make_project(tmp_path, APP, params={}, hdmi=False)
    add_model_node(root, "model_node", "data", (1, 3, 224, 224))
    app, _ = _app(root, "cuda")
    assert app.serve.gpu is True and _device_arg(app) == "cuda"
    assert [n.gpu for n in app.nodes] == [False]  # the model node runs on serve's GPU
    _ask_for_gpu(root, key)
    app, reasons = _app(root, "cuda", "kubernetes")
    assert app.serve.gpu is True and [n.gpu for n in app.nodes] == [True]
    notes = gpu_notes(app, reasons, "kubernetes")
    assert notes[1] == (
        "--device cuda: node code_node's container gets the GPU (its package asks for "
        "nvhost_gpu (hardware_access))"
    )
    assert "asks for 2 nvidia.com/gpu" in notes[2]  # one Pod, two GPU containers
