"""``deploy --target compose`` on the real Docker engine seeing what the engine sees:

* an app whose node crashes at import (an official sample's missing ``onnxruntime``), built
  by build-container, exported and deployed with ``--wait --timeout 120``: the deploy fails
  within about 30 s naming the node's container, its exit code and its last log line (not
  the timeout's ``node code_node is starting``, not serve's log);
* the engine's own error as it is (``could not select device driver "nvidia"`` for a GPU
  reservation on this engine, which has no NVIDIA runtime), not a generic line;
* a relative ``--bundle`` from another folder (``--bundle sub/fleet`` was run by Compose in
  the bundle's parent with the relative ``-f``: ``FileNotFoundError: './fleet/compose.yaml'``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from tests.fleet.engine_support import LABEL_APP, cli, free_port
from tests.localrun.helpers import ACCOUNT, PACKAGE, make_project, video
from tests.support.cli_runner import run_cli_subprocess

pytestmark = pytest.mark.docker

CRASHING_APP = """
import onnxruntime_is_not_in_this_image  # noqa: F401 - the crash at import

import panoramasdk
"""
DOCKERFILE = "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY src /panorama\n"


def _containers(client: Any, app: str) -> list[Any]:
    return client.containers.list(all=True, filters={"label": f"{LABEL_APP}={app}"})


def _plain_bundle(folder: Path, image: str, *, gpu: bool = False) -> Path:
    """A bundle shaped as export writes it (serve's labels and published port) whose serve
    only sleeps; with ``gpu``, serve reserves every GPU as ``export --device cuda`` does."""
    folder.mkdir(parents=True)
    serve: dict[str, Any] = {
        "image": image,
        "command": ["sleep", "600"],
        "ports": [f"127.0.0.1:{free_port()}:8765"],
        "labels": {LABEL_APP: folder.parent.name},
    }
    if gpu:
        devices = [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
        serve["deploy"] = {"resources": {"reservations": {"devices": devices}}}
    document = {"version": "3.8", "services": {"serve": serve}}
    (folder / "compose.yaml").write_text(yaml.safe_dump(document))
    return folder


def test_a_relative_bundle_from_another_folder(
    tmp_path: Path, docker_client: Any, base_image_amd64: str
) -> None:
    bundle = _plain_bundle(tmp_path / "relbundle" / "fleet", base_image_amd64)
    app = "relbundle"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    relative = "../relbundle/fleet"
    try:
        result = run_cli_subprocess(["deploy", "--target", "compose", "--bundle", relative],
                                    cwd=elsewhere, timeout_s=180)  # fmt: skip
        assert result.exit_code == 0, result.describe()
        assert [c.status for c in _containers(docker_client, app)] == ["running"]
    finally:
        down = run_cli_subprocess(["deploy", "--target", "compose", "--bundle", relative,
                                   "--down"], cwd=elsewhere, timeout_s=180)  # fmt: skip
    assert down.exit_code == 0, down.describe()
    assert _containers(docker_client, app) == [] and (bundle / "compose.yaml").is_file()


def test_the_engines_own_error_is_shown(
    tmp_path: Path, docker_client: Any, base_image_amd64: str
) -> None:
    bundle = _plain_bundle(tmp_path / "gpubundle" / "fleet", base_image_amd64, gpu=True)
    try:
        result = run_cli_subprocess(["deploy", "--target", "compose", "--bundle", str(bundle)],
                                    cwd=tmp_path, timeout_s=180)  # fmt: skip
        assert result.exit_code == 1, result.describe()
        assert 'could not select device driver "nvidia"' in result.stderr, result.describe()
        assert result.stderr.count("could not select device driver") == 1  # said once
        assert "Traceback" not in result.stderr
    finally:
        run_cli_subprocess(["deploy", "--target", "compose", "--bundle", str(bundle), "--down"],
                           cwd=tmp_path, timeout_s=180)  # fmt: skip


def test_a_node_that_crashes_at_import_fails_the_wait_fast(
    tmp_path: Path, docker_client: Any, base_image_amd64: str
) -> None:
    root = make_project(tmp_path, CRASHING_APP, name="crash_app", params={}, hdmi=False)
    package = root / "packages" / f"{ACCOUNT}-{PACKAGE}-1.0"
    (package / "Dockerfile").write_text(DOCKERFILE)
    cli(root, "build-container", "--container-asset-name", "code_asset", "--package-path",
        str(package.relative_to(root)), "--platform", "linux/amd64", "--base-image",
        base_image_amd64)  # fmt: skip
    out = tmp_path / "fleet"
    cli(root, "export", "--target", "compose", "--output-dir", str(out), "--camera",
        f"front_camera={video()}", "--listen", f"127.0.0.1:{free_port()}", "--rtsp-port", "0",
        "--runtime-base", base_image_amd64)  # fmt: skip
    app = yaml.safe_load((out / "compose.yaml").read_text())["services"]["serve"]["labels"][
        LABEL_APP
    ]
    try:
        t0 = time.monotonic()
        result = run_cli_subprocess(["deploy", "--target", "compose", "--bundle", str(out),
                                     "--wait", "--timeout", "120"], cwd=root, timeout_s=300)  # fmt: skip
        took = time.monotonic() - t0
        assert result.exit_code == 1, result.describe()
        err = result.stderr
        assert took < 45, f"{took:.1f} s\n{result.describe()}"  # not the 120 s timeout
        assert f"container {app}_code-node_1 (service code-node) keeps restarting" in err or (
            f"container {app}-code-node-1 (service code-node) keeps restarting" in err
        ), result.describe()
        assert "last exit code 1" in err
        assert "No module named 'onnxruntime_is_not_in_this_image'" in err
        assert "is starting" not in err and "logs serve" not in err
        assert "logs code-node" in err  # the hint names the node's log, not serve's
    finally:
        cli(root, "deploy", "--target", "compose", "--bundle", str(out), "--down", "--volumes")
    assert _containers(docker_client, app) == []
