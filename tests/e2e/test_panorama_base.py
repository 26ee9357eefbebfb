"""Official-sample-shaped Dockerfiles, built offline and run: ``FROM
public.ecr.aws/panorama/panorama-application`` (literal, with tags, through ARG BASE_IMAGE,
multi-stage) on the local stand-in of ``panorama-cli base-image --flavor panorama``.

Real Docker engine (DOCKER_HOST), no registry: the stand-in is bootstrapped from the Debian
mirror (CI builds it before the tests, python -m tests.support.base_images); the sample's
``pip3 install opencv-python boto3`` reaches PyPI from the build (the OpenCV wheel, about
60 MB, once: Docker caches the layer). The sample's entry is ``python3.8 /panorama/app.py``
and its code uses numpy 1 APIs (``tostring()``) and OpenCV on vtest.avi frames in
``run --in-container``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from panorama_cli.build import containers
from panorama_cli.build.base_flavors import host_certificates
from panorama_cli.project.project import Project
from tests.localrun.helpers import ACCOUNT, PACKAGE, make_project, video
from tests.support.cli_runner import CliResult, run_cli

pytestmark = pytest.mark.docker

PANORAMA = "public.ecr.aws/panorama/panorama-application"
STAND_IN = "panorama-cli/base:panorama-amd64"
ASSET = "code_asset"

#: The shape of the official samples' Dockerfiles.
SAMPLE_DOCKERFILE = f"""\
FROM {PANORAMA}
RUN pip3 install opencv-python boto3
COPY src /panorama
"""

SAMPLE_APP = """
import json, sys

import boto3
import cv2
import numpy as np
import panoramasdk


class Application(panoramasdk.node):
    def __init__(self):
        self.frames = 0
        self.sizes = []

    def process(self):
        streams = self.inputs.video_in.get()
        for stream in streams:
            gray = cv2.cvtColor(stream.image, cv2.COLOR_BGR2GRAY)
            small = cv2.resize(gray, (64, 48))
            self.sizes.append(len(small.tostring()))  # numpy 1.x only
            stream.add_label("frame %d" % self.frames, 0.1, 0.1)
            self.frames += 1
        self.outputs.video_out.put(streams)
        with open("/opt/aws/panorama/storage/state.json", "w") as f:
            json.dump({"frames": self.frames, "sizes": self.sizes, "cv2": cv2.__version__,
                       "numpy": np.__version__, "boto3": boto3.__version__,
                       "python": list(sys.version_info[:2]), "argv0": sys.executable}, f)


app = Application()
while True:
    app.process()
"""


def _project(parent: Path, dockerfile: str, app: str = SAMPLE_APP) -> tuple[Path, Path]:
    root = make_project(parent, app, entry=("python3.8", "/panorama/app.py"))
    package = root / "packages" / f"{ACCOUNT}-{PACKAGE}-1.0"
    (package / "Dockerfile").write_text(dockerfile)
    return root, package


def _build(root: Path, package: Path, *extra: str, platform: str = "linux/amd64") -> CliResult:
    return run_cli(
        ["build-container", "--container-asset-name", ASSET, "--package-path",
         str(package.relative_to(root)), "--platform", platform, "--json", *extra],
        cwd=root,
    )  # fmt: skip


def _notes(result: CliResult) -> list[str]:
    return [line for line in result.stderr.splitlines() if " builds on " in line]


def _in_image(docker_client: Any, image: str, script: str) -> str:
    out = docker_client.containers.run(
        image, ["sh", "-c", script], entrypoint=[], remove=True, network_disabled=True
    )
    return str(out.decode())


def test_stand_in_holds_what_panorama_apps_expect(panorama_base_amd64, docker_client, tmp_path):
    assert panorama_base_amd64 == STAND_IN
    again = run_cli(
        ["base-image", "--flavor", "panorama", "--platform", "linux/amd64"], cwd=tmp_path
    )
    assert again.exit_code == 0 and "is current" in again.stderr, again.describe()
    image = docker_client.images.get(STAND_IN)
    assert image.attrs["Architecture"] == "amd64"
    assert image.attrs["Config"]["WorkingDir"] == "/panorama"
    script = (
        "python3.7 -c 'import sys; print(sys.version_info[:2])'; "
        "python3.8 -c 'import numpy; print(numpy.__version__)'; "
        "pip3.8 --version | cut -d' ' -f1; pip3 config list; "
        "for lib in libGL.so.1 libglib-2.0.so.0 libgthread-2.0.so.0 libSM.so.6 libICE.so.6 "
        "libXext.so.6 libXrender.so.1 libxcb.so.1 libX11.so.6; do "
        'ldconfig -p | grep -q "$lib " && echo "$lib ok" || echo "$lib missing"; done; '
        "ls /opt/aws/panorama"
    )
    lines = _in_image(docker_client, STAND_IN, script).splitlines()
    assert lines[0] == "(3, 9)" and lines[1].startswith("1.")
    assert lines[2] == "pip"
    assert "install.constraint='/etc/pip/constraints.txt'" in lines
    assert [line for line in lines if line.endswith(" missing")] == []
    assert lines[-2:] == ["logs", "storage"]
    bundle = _in_image(docker_client, STAND_IN, "cat /etc/ssl/certs/ca-certificates.crt")
    for name, pem in host_certificates():
        body = pem.decode().split("-----BEGIN CERTIFICATE-----", 1)[1].split("-----END")[0]
        assert body.strip() in bundle, f"{name} is not trusted in the image"


def test_official_sample_builds_offline_and_runs_in_container(
    panorama_base_amd64, docker_client, tmp_path
):
    root, package = _project(tmp_path, SAMPLE_DOCKERFILE)
    files_before = sorted(p.name for p in package.rglob("*"))
    built = _build(root, package)
    assert built.exit_code == 0, built.describe()
    notes = _notes(built)
    assert len(notes) == 1, built.stderr
    assert f"FROM {PANORAMA} (Dockerfile line 1) builds on {STAND_IN}" in notes[0]
    assert (package / "Dockerfile").read_text() == SAMPLE_DOCKERFILE  # the original untouched
    assert sorted(p.name for p in package.rglob("*")) == [*files_before]  # nothing left there
    assert built.json()["image"] == containers.image_tag(Project(root).load_package(package), ASSET)

    out = tmp_path / "out"
    ran = run_cli(
        ["run", "--camera", f"front_camera={video()}", "--frames", "3", "--fast",
         "--in-container", "--platform", "linux/amd64", "--json", "--output-dir", str(out)],
        cwd=root,
    )  # fmt: skip
    assert ran.exit_code == 0, ran.describe()
    assert ran.json()["cameras"]["front_camera"]["frames"] == 3
    state = json.loads((out / "storage" / "state.json").read_text())
    assert state["frames"] == 3 and state["sizes"] == [64 * 48] * 3
    assert state["numpy"].startswith("1.") and state["cv2"].startswith("4.")
    assert state["python"] == [3, 9] and state["argv0"].endswith("python3.8")
    assert state["boto3"]


def test_arg_default_multi_stage_and_other_froms(
    panorama_base_amd64, base_image_amd64, docker_client, tmp_path
):
    dockerfile = (
        f"ARG BASE_IMAGE={PANORAMA}:1.2.0-py3.8\n"
        "FROM ${BASE_IMAGE} AS builder\n"
        "RUN python3 -c \"import sys; open('/built', 'w').write('.'.join(map(str, sys.version_info[:2])))\"\n"
        f"FROM {base_image_amd64} AS plain\n"  # not a Panorama image: as written
        "RUN python3 -c \"import sys; open('/plain', 'w').write(sys.version[:4])\"\n"
        f"FROM {PANORAMA}/python3.8/aarch64:latest\n"
        "COPY --from=builder /built /panorama/built\n"
        "COPY --from=plain /plain /panorama/plain\n"
        "COPY src /panorama\n"
    )
    root, package = _project(tmp_path, dockerfile, app="print('ok')\n")
    built = _build(root, package)
    assert built.exit_code == 0, built.describe()
    notes = _notes(built)
    assert len(notes) == 1 and "(Dockerfile lines 2, 6)" in notes[0], built.stderr
    assert f"{PANORAMA}:1.2.0-py3.8" in notes[0] and f"{PANORAMA}/python3.8/aarch64" in notes[0]
    assert (package / "Dockerfile").read_text() == dockerfile
    image = built.json()["image"]
    out = _in_image(docker_client, image, "cat /panorama/built; echo; cat /panorama/plain; echo; "
                    "python3.8 -c 'import sys; print(sys.version[:3])'")  # fmt: skip
    assert out.splitlines() == ["3.9", "3.11", "3.9"]  # the stand-in's, bookworm's, the stand-in's

    # --base-image replaces the Panorama FROM lines (and sets ARG BASE_IMAGE)
    again = _build(root, package, "--base-image", base_image_amd64)
    assert again.exit_code == 0, again.describe()
    notes = _notes(again)
    assert len(notes) == 1 and f"builds on {base_image_amd64}, --base-image" in notes[0]
    image = again.json()["image"]
    out = _in_image(docker_client, image, "cat /panorama/built; echo")
    assert out.strip() == "3.11"  # FROM ${BASE_IMAGE} is bookworm's too


def test_arm64_build_uses_the_arm64_stand_in(panorama_base_arm64, docker_client, tmp_path):
    assert panorama_base_arm64 == "panorama-cli/base:panorama-arm64"
    dockerfile = f"FROM {PANORAMA}:latest\nCOPY src /panorama\n"
    root, package = _project(tmp_path, dockerfile, app="print('ok')\n")
    built = _build(root, package, platform="linux/arm64")
    assert built.exit_code == 0, built.describe()
    notes = _notes(built)
    assert len(notes) == 1 and f"builds on {panorama_base_arm64}" in notes[0], built.stderr
    out = docker_client.containers.run(
        built.json()["image"],
        ["python3.8", "-c", "import numpy, platform; print(platform.machine(), numpy.__version__)"],
        entrypoint=[],
        platform="linux/arm64",
        remove=True,
        network_disabled=True,
    )
    machine, numpy_version = out.decode().split()
    assert machine == "aarch64" and numpy_version.startswith("1.")
