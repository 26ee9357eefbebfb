"""Shared by the converters' end-to-end tests (test_convert_mxnet/tensorflow/pytorch.py): the
app that calls model node ``detector`` once with a fixed input, the project that registers an
archive for it with add-raw-model, running it, and comparing outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.localrun.helpers import ACCOUNT, add_model_node, make_project, video
from tests.support.cli_runner import run_cli_subprocess
from tests.support.project_helpers import run

MODEL_PKG = f"packages/{ACCOUNT}-MODEL-1.0"


def app_source(shape: tuple[int, ...], input_name: str) -> str:
    """An app that calls node ``detector`` once with :func:`fixed_input` as ``input_name`` and
    writes its outputs (a list of nested lists) to storage/out.json."""
    return f"""
import json
import numpy as np
import panoramasdk

node = panoramasdk.node()
node.inputs.video_in.get()
shape = {shape}
x = ((np.arange(np.prod(shape)) % 17) / 17.0).astype(np.float32).reshape(shape)
out = node.call({{"{input_name}": x}}, "detector")
json.dump([np.asarray(o).tolist() for o in out], open("/opt/aws/panorama/storage/out.json", "w"))
"""


def fixed_input(shape: tuple[int, ...]) -> np.ndarray:
    """The input the apps and the BUILD scripts use: float32 of ``shape``, values in [0, 1)."""
    return ((np.arange(np.prod(shape)) % 17) / 17.0).astype(np.float32).reshape(shape)


def rel_error(expected, got) -> float:
    """Max absolute difference over the expected output's max magnitude (same shapes)."""
    a, b = np.asarray(expected, np.float64), np.asarray(got, np.float64)
    assert a.shape == b.shape
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-12))


def project(
    tmp_path: Path,
    app: str,
    archive: Path,
    framework: str,
    input_name: str,
    shape: tuple[int, ...],
) -> Path:
    """A project whose ``app`` calls model node ``detector`` (a ``framework`` descriptor taking
    ``input_name`` of ``shape``), with ``archive`` registered by add-raw-model."""
    root = make_project(tmp_path, app, params={}, hdmi=False)
    add_model_node(root, "detector", input_name, shape)
    descriptor = root / MODEL_PKG / "descriptor.json"
    body = json.loads(descriptor.read_text())
    body["mlModelDescriptor"]["framework"] = framework
    descriptor.write_text(json.dumps(body))
    result = run(
        root, "add-raw-model", "--model-asset-name", "model_asset",
        "--model-local-path", str(archive),
        "--descriptor-path", f"{MODEL_PKG}/descriptor.json", "--packages-path", MODEL_PKG,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return root


def run_app(root: Path, out: Path, cache: Path, *more: str):
    """``run`` one frame (--fast --json) into ``out``, converting into ``cache``."""
    args = ["run", "--camera", f"front_camera={video()}", "--frames", "1", "--fast",
            "--json", "--output-dir", str(out), *more]  # fmt: skip
    return run_cli_subprocess(args, cwd=root, env={"PANORAMA_CLI_CONVERTED_DIR": str(cache)})
