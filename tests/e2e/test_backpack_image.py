"""A generated ``--gstreamer --rtsp`` package builds on the local Debian base and runs backpack.

* ``create-package --gstreamer --rtsp`` → the Docker engine builds the package folder (the
  build step of build-container, ``docker_engine.build_image``, linux/amd64, ``BASE_IMAGE`` =
  the debootstrap base; apt inside the build reaches Debian). Built once per module.
* In the image: ``import backpack, gi`` with ``Gst`` 1.0, gst-rtsp-server's typelib, the
  starter app's local check, and a short SkyLine run (frames through backpack.skyline into an
  H.264 file, decoded back with the expected count and size).
* A second build after changing only the app code reuses the heavy layers ("Using cache").
* ``--kvs``: the producer SDK comes from github.com, which no registry here serves. When it
  is reachable the whole image is built and kvssink loads; when it is not, the rendered
  Dockerfile is still checked and the builder stage is built up to the clone (its apt step).
"""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
import socket
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest
from dockerfile_parse import DockerfileParser

from panorama_cli.build import docker_engine, dockerfile_stages
from tests.support.cli_runner import run_cli

PLATFORM = "linux/amd64"
ACCOUNT = "210987654321"
APT_STEP = re.compile(r"^Step (\d+)/\d+ : RUN apt-get update")


@dataclass
class BuiltImage:
    """One build of a package folder."""

    tag: str
    image_id: str
    seconds: float
    log: list[str] = field(default_factory=list)

    def steps(self) -> list[tuple[str, bool]]:
        """``(step line, came from cache)`` for each build step, in order."""
        found: list[tuple[str, bool]] = []
        for line in self.log:
            if line.startswith("Step "):
                found.append((line, False))
            elif line.strip() == "---> Using cache" and found:
                found[-1] = (found[-1][0], True)
        return found


@dataclass
class Images:
    """Tags made by this module, removed at the end."""

    client: Any
    tags: list[str] = field(default_factory=list)

    def build(self, folder: Path, base_image: str, kind: str) -> BuiltImage:
        tag = f"panorama-cli-test/backpack-{kind}-{secrets.token_hex(4)}:1"
        self.tags.append(tag)
        log: list[str] = []
        start = time.monotonic()
        image_id = docker_engine.build_image(
            folder,
            tag=tag,
            platform=PLATFORM,
            build_args={"BASE_IMAGE": base_image},
            on_log=log.append,
            client=self.client,
        )
        return BuiltImage(tag, image_id, time.monotonic() - start, log)

    def remove_all(self) -> None:
        for tag in reversed(self.tags):
            with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.APIError):
                self.client.images.remove(tag, force=True)


def make_package(root: Path, *flags: str) -> Path:
    """init-project + create-package --name app <flags>; the package folder."""
    root.mkdir(parents=True, exist_ok=True)
    result = run_cli(["init-project", "--name", "proj", "--account-id", ACCOUNT], cwd=root)
    assert result.exit_code == 0, result.describe()
    result = run_cli(["create-package", "--name", "app", *flags], cwd=root / "proj")
    assert result.exit_code == 0, result.describe()
    return root / "proj" / "packages" / f"{ACCOUNT}-app-1.0"


@pytest.fixture(scope="module")
def images(docker_client) -> Iterator[Images]:
    made = Images(docker_client)
    yield made
    made.remove_all()


@pytest.fixture(scope="module")
def gst_package(tmp_path_factory) -> Path:
    return make_package(tmp_path_factory.mktemp("gst"), "--gstreamer", "--rtsp")


@pytest.fixture(scope="module")
def gst_image(images: Images, gst_package: Path, base_image_amd64: str) -> BuiltImage:
    built = images.build(gst_package, base_image_amd64, "gst")
    print(f"\n[build] --gstreamer --rtsp image: {built.seconds:.1f} s")
    return built


def run_in(image: BuiltImage, command: list[str], **env: str) -> str:
    code, logs = docker_engine.run_once(
        image.tag,
        command,
        platform=PLATFORM,
        environment=env,
        network_disabled=True,
        timeout_s=180,
    )
    assert code == 0, f"{command!r} exited {code}:\n{logs}"
    return logs


def test_backpack_and_gi_import_in_the_image(gst_image):
    run_in(gst_image, ["python3", "-c", "import backpack, gi; gi.require_version('Gst', '1.0')"])
    out = run_in(
        gst_image,
        [
            "python3",
            "-c",
            "import backpack, cv2, gi; gi.require_version('GstRtspServer', '1.0'); "
            "from gi.repository import GstRtspServer; "
            "print(backpack.__file__, 'GStreamer' in cv2.getBuildInformation())",
        ],
    )
    assert out.split() == ["/panorama/backpack/__init__.py", "True"], out


def test_starter_app_local_check_in_the_image(gst_image, gst_package):
    out = run_in(gst_image, ["python3", "/panorama/app.py"], PANORAMA_LOCAL_CHECK="1")
    assert "app ready (local check" in out and "backpack " in out, out
    if (gst_package / "src" / "backpack" / "rtsp.py").is_file():
        run_in(gst_image, ["python3", "-c", "from backpack.rtsp import RTSPSkyLine"])


SKYLINE_RUN = textwrap.dedent(
    """
    import numpy as np
    import gi
    gi.require_version("Gst", "1.0")
    from gi.repository import Gst
    from backpack.skyline import FileSkyLine

    sky = FileSkyLine("/tmp/out.mkv", fps=10, width=320, height=240, block=True)
    assert sky.start_streaming(), sky.last_error
    frames = [np.full((240, 320, 3), 8 * i, np.uint8) for i in range(18)]
    frames += [np.zeros((480, 640, 3), np.uint8)] * 2  # resized to 320x240 by SkyLine
    sent = [sky.put(frame) for frame in frames]
    sky.stop_streaming()
    assert all(sent), sent

    Gst.init(None)
    pipeline = Gst.parse_launch(
        "filesrc location=/tmp/out.mkv ! matroskademux ! h264parse ! avdec_h264 ! "
        "videoconvert ! video/x-raw,format=BGR ! appsink name=sink sync=false"
    )
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    count, size = 0, None
    while True:
        sample = sink.emit("try-pull-sample", 10 * Gst.SECOND)
        if sample is None:
            break
        caps = sample.get_caps().get_structure(0)
        count, size = count + 1, (caps.get_value("width"), caps.get_value("height"))
    pipeline.set_state(Gst.State.NULL)
    print("decoded", count, size[0], size[1])
    """
)


def test_short_skyline_run_in_the_image(gst_image):
    out = run_in(gst_image, ["python3", "-c", SKYLINE_RUN])
    assert "decoded 20 320 240" in out, out


def test_code_change_reuses_the_heavy_layers(
    images, gst_image, gst_package, base_image_amd64, tmp_path
):
    changed = tmp_path / "pkg"
    shutil.copytree(gst_package, changed)
    with open(changed / "src" / "app.py", "a", encoding="utf-8") as fh:
        fh.write(f"\n# code change {secrets.token_hex(4)}\n")
    again = images.build(changed, base_image_amd64, "re")
    print(f"\n[build] rebuild after a code change: {again.seconds:.1f} s")
    steps = again.steps()
    apt = [(line, cached) for line, cached in steps if APT_STEP.match(line)]
    assert len(apt) == 2, steps  # gstreamer, rtsp
    assert all(cached for _, cached in apt), apt
    copy_src = [cached for line, cached in steps if line.endswith("COPY src /panorama")]
    assert copy_src == [False]
    assert again.image_id != gst_image.image_id
    client = images.client
    first_layers = client.images.get(gst_image.tag).attrs["RootFS"]["Layers"]
    new_layers = client.images.get(again.tag).attrs["RootFS"]["Layers"]
    assert new_layers[:-1] == first_layers[:-1] and new_layers[-1] != first_layers[-1]


# --------------------------------------------------------------------------- kvs


def github_reachable(timeout_s: float = 3.0) -> bool:
    """Whether github.com answers on 443 (the KVS producer SDK is cloned from there)."""
    try:
        with socket.create_connection(("github.com", 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def final_stage_kvs_copies(dockerfile: Path) -> dict[str, str]:
    """COPY --from=kvs-builder sources → destinations in the last stage."""
    parser = DockerfileParser(str(dockerfile))
    last_from = max(i for i, item in enumerate(parser.structure) if item["instruction"] == "FROM")
    copies = {}
    for item in parser.structure[last_from:]:
        words = item["value"].split()
        if item["instruction"] == "COPY" and words[0] == "--from=kvs-builder":
            copies[words[1]] = words[2]
    return copies


def test_kvs_stage(images, gst_image, base_image_amd64, tmp_path):
    """gst_image first: the final stage's GStreamer layers are then cached."""
    package = make_package(tmp_path / "kvs", "--kvs")
    dockerfile = package / "Dockerfile"
    copies = final_stage_kvs_copies(dockerfile)
    plugin_dir = dockerfile_stages.KVS["kvs_plugin_dir"]
    assert copies[f"{plugin_dir}/libgstkvssink.so"] == f"{plugin_dir}/libgstkvssink.so"
    assert f"{dockerfile_stages.KVS['kvs_lib_dir']}/" in copies.values()
    if github_reachable():
        built = images.build(package, base_image_amd64, "kvs")
        print(f"\n[build] --kvs image: {built.seconds:.1f} s")
        env = run_in(built, ["cat", "/panorama/.env"])
        assert f"GST_PLUGIN_PATH={plugin_dir}" in env, env
        assert f"LD_LIBRARY_PATH={dockerfile_stages.KVS['kvs_lib_dir']}" in env, env
        run_in(
            built,
            [
                "python3",
                "-c",
                "import dotenv, gi; gi.require_version('Gst', '1.0'); "
                "from gi.repository import Gst; Gst.init(None); "
                "assert Gst.ElementFactory.make('kvssink', None)",
            ],
        )
        return
    # No github.com here: build the builder stage up to the clone (its toolchain packages
    # install from Debian on this base), and the final stage up to the first COPY from the
    # builder (python3-dotenv for backpack.kvs on top of the GStreamer layers).
    text = dockerfile.read_text()
    clone = text.index("RUN git clone")
    builder_start = text.index("FROM ${BASE_IMAGE} AS kvs-builder")
    final_start = text.index("FROM ${BASE_IMAGE}\n", builder_start + 1)
    first_copy = text.index("COPY --from=kvs-builder")
    parts = {
        "kvs-builder": text[:clone],
        "kvs-final": text[:builder_start] + text[final_start:first_copy],
    }
    for kind, head in parts.items():
        partial = tmp_path / kind
        partial.mkdir()
        (partial / "Dockerfile").write_text(head)
        built = images.build(partial, base_image_amd64, kind)
        print(f"\n[build] {kind} up to the github.com step (unreachable): {built.seconds:.1f} s")
        check = {
            "kvs-builder": "cmake --version && git --version && pkg-config gstreamer-app-1.0",
            "kvs-final": "python3 -c 'import dotenv, gi'",
        }[kind]
        run_in(built, ["sh", "-c", check])
