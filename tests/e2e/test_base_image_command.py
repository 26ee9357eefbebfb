"""``panorama-cli base-image`` and build-container on a machine that reaches no registry.

Real Docker engine (DOCKER_HOST), real debootstrap/mmdebstrap from the machine's Debian
mirror (the first run bootstraps for a few minutes; later runs find the cached image), the
people-counter sample (ARG BASE_IMAGE=public.ecr.aws/panorama/panorama-application) built on
the Panorama stand-in (base-image --flavor panorama) and its code run in the image.
"""

from __future__ import annotations

import json

import docker
import pytest

from panorama_cli.build import base_image
from tests.support.cli_runner import run_cli
from tests.support.paths import SHARED, VIDEO

YOLOX = SHARED / "models" / "yolox_nano" / "yolox_nano.onnx"
TAG = base_image.default_tag("linux/amd64")

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def local_base(docker_client, tmp_path_factory) -> str:
    first = run_cli(["base-image", "--platform", "linux/amd64"], cwd=tmp_path_factory.mktemp("b"))
    assert first.exit_code == 0, first.describe()
    assert TAG in first.stderr
    return TAG


def test_base_image_is_cached_and_has_the_panorama_layout(local_base, docker_client, tmp_path):
    image = docker_client.images.get(local_base)
    again = run_cli(["base-image", "--platform", "linux/amd64"], cwd=tmp_path)
    assert again.exit_code == 0 and "is current" in again.stderr, again.describe()
    assert docker_client.images.get(local_base).id == image.id
    assert image.attrs["Architecture"] == "amd64"
    assert image.attrs["Config"]["WorkingDir"] == "/panorama"
    out = docker_client.containers.run(
        local_base,
        [
            "python3",
            "-c",
            "import numpy, os; print(numpy.__version__, os.getcwd(), "
            "sorted(os.listdir('/opt/aws/panorama')))",
        ],
        remove=True,
        network_disabled=True,
    )
    version, cwd, dirs = out.decode().strip().split(" ", 2)
    assert version.split(".")[0].isdigit() and cwd == "/panorama"
    assert dirs == "['logs', 'storage']"


def test_sample_builds_on_the_panorama_stand_in_when_the_default_is_absent(
    panorama_base_amd64, docker_client, tmp_path
):
    if not YOLOX.is_file():
        pytest.skip(f"{YOLOX} is not here (shared test data)")
    try:
        docker_client.images.get(base_image.PANORAMA_BASE)
        pytest.skip(f"{base_image.PANORAMA_BASE} is in this engine: no fallback to test")
    except docker.errors.ImageNotFound:
        pass
    made = run_cli(
        ["init-project", "--sample", "people-counter", "--model", str(YOLOX)], cwd=tmp_path
    )
    assert made.exit_code == 0, made.describe()
    app = tmp_path / "people-counter"
    package = "packages/123456789012-people_counter-1.0"
    built = run_cli(
        [
            "build-container",
            "--container-asset-name",
            "code_asset",
            "--package-path",
            package,
            "--platform",
            "linux/amd64",
            "--json",
        ],
        cwd=app,
    )
    assert built.exit_code == 0, built.describe()
    note = [line for line in built.stderr.splitlines() if " builds on " in line]
    assert len(note) == 1 and panorama_base_amd64 in note[0], built.stderr
    assert "--base-image IMAGE" in note[0] and base_image.PANORAMA_BASE in note[0]
    image = json.loads(built.stdout)["image"]
    validated = run_cli(["validate"], cwd=app)
    assert validated.exit_code == 0, validated.describe()
    # the sample's detector pre-processing runs in the image (numpy only, no OpenCV there)
    code = (
        "import sys; sys.path.insert(0, '/panorama'); import numpy as np; "
        "from backpack.yolox import letterbox; "
        "t, r = letterbox(np.zeros((576, 768, 3), np.uint8)); print(t.shape, r)"
    )
    out = docker_client.containers.run(
        image, ["python3", "-c", code], entrypoint=[], remove=True, network_disabled=True
    )
    assert out.decode().strip() == "(1, 3, 416, 416) 0.5416666666666666"
    # and the whole sample runs in that image (panorama-cli run --in-container)
    if VIDEO.is_file():
        ran = run_cli(
            ["run", "--camera", f"front_camera={VIDEO}", "--frames", "3", "--fast",
             "--in-container", "--platform", "linux/amd64", "--json",
             "--output-dir", str(tmp_path / "run")],
            cwd=app,
        )  # fmt: skip
        assert ran.exit_code == 0, ran.describe()
        report = json.loads(ran.stdout)
        assert report["models"]["detector"]["calls"] == 3
        log = "".join(p.read_text() for p in (tmp_path / "run" / "logs").rglob("app.log"))
        assert log.count("people in region") == 3, log


def test_missing_base_image_hint_names_the_image_and_the_command(local_base, tmp_path):
    assert run_cli(["init-project", "--name", "app"], cwd=tmp_path).exit_code == 0
    app = tmp_path / "app"
    env = {"PANORAMA_ACCOUNT_ID": "123456789012"}
    assert run_cli(["create-package", "--name", "code"], cwd=app, env=env).exit_code == 0
    result = run_cli(
        [
            "build-container",
            "--container-asset-name",
            "code",
            "--package-path",
            "packages/123456789012-code-1.0",
            "--platform",
            "linux/amd64",
            "--base-image",
            "no-such/base:1",
        ],
        cwd=app,
    )
    assert result.exit_code == 1, result.describe()
    hint = result.stderr[result.stderr.index("no-such/base:1 is not in the local engine") :]
    assert "panorama-cli base-image" in hint and "${" not in hint
    deprecated = run_cli(
        ["build-container", "--container-asset-name", "code", "--package-path",
         "packages/123456789012-code-1.0", "--platform", "linux/amd64", "--local-image",
         "--base-image", local_base],
        cwd=app,
    )  # fmt: skip
    assert deprecated.exit_code == 0, deprecated.describe()
    assert "--local-image is deprecated" in deprecated.stderr
