"""Fixtures of the fleet's engine tests: the built project (once per session), a registry."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet.engine_support import APP, DOCKERFILE
from tests.fleet.engine_support import cli as _cli
from tests.fleet.engine_support import free_port as _free_port
from tests.fleet.engine_support import get as _get
from tests.fleet.engine_support import until as _until
from tests.localrun.helpers import ACCOUNT, PACKAGE, make_project


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory, base_image_amd64: str) -> Path:
    """The pass-through app, built by build-container for linux/amd64."""
    root = make_project(tmp_path_factory.mktemp("fleet"), APP, name="fleet_app")
    package = root / "packages" / f"{ACCOUNT}-{PACKAGE}-1.0"
    (package / "Dockerfile").write_text(DOCKERFILE)
    _cli(root, "build-container", "--container-asset-name", "code_asset", "--package-path",
         str(package.relative_to(root)), "--platform", "linux/amd64", "--base-image",
         base_image_amd64)  # fmt: skip
    return root


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    program = shutil.which("docker-registry")
    if program is None:
        if os.environ.get("CI"):
            pytest.fail("docker-registry is not installed (.ci/run installs it)")
        pytest.skip("docker-registry (Debian's) is not installed")
    port = _free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    process = subprocess.Popen([program, "serve", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _until(lambda: _get(port, "/v2/")[0] == 200, 30, "registry up", every=0.2)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)
