"""``panorama-cli run --in-container`` against the real Docker engine: the app in its image.

An app package whose Dockerfile builds FROM the local Debian base (python3, plus
python3-numpy from apt: the SDK's only dependency) is built for linux/amd64 by
``panorama-cli build-container`` (so the run finds its image by default) and for linux/arm64
(run under qemu, named with --image). Each run reads vtest.avi; the app writes what it saw into
/opt/aws/panorama/storage, which is the run folder's storage/. After every run (frames,
crash, SIGINT, SIGTERM, a failed start) no container labelled with the run folder is left; a
SIGKILLed runner's container is removed by the next run. An app serving HTTP answers on the
routing rule's hostPort.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from panorama_cli.build import containers, docker_engine
from panorama_cli.localrun.apps.container_app import RUN_LABEL
from panorama_cli.localrun.models import devices
from panorama_cli.project.project import Project
from tests.localrun.helpers import ACCOUNT, PACKAGE, make_project, video
from tests.localrun.helpers import APP_ENV as HOST_APP_ENV
from tests.support.cli_runner import run_cli_subprocess
from tests.support.paths import REPO
from tests.support.signals import popen_interruptible

ASSET = "code_asset"
ARM64_TAG = "panorama-cli-test/run-app:arm64"
DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends python3-numpy \\
    && rm -rf /var/lib/apt/lists/*
ENV IMAGE_ONLY=from-the-image \\
    PYTHONPATH=/nowhere
WORKDIR /panorama
COPY src /panorama
USER 1000
ENTRYPOINT ["/bin/false"]
CMD ["the appliance never runs this"]
"""
#: What the start note names of DOCKERFILE (the appliance ignores them; so does the run).
IGNORED = "ENV (line 5), WORKDIR (line 7), USER (line 9), ENTRYPOINT (line 10), CMD (line 11)"
#: The entry's whole environment (the appliance's allow-list, nothing of the image's ENV).
APP_ENV = [name for name in HOST_APP_ENV if name != "PWD"]

APP = """
import json, os, platform, sys, threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy
import panoramasdk

STATE = "/opt/aws/panorama/storage/state.json"
seen = []


def attempt(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        return "written"
    except OSError as e:
        return e.errno


status = dict(line.split(":", 1) for line in open("/proc/self/status"))
world = {
    "env": sorted(os.environ), "image_only": os.environ.get("IMAGE_ONLY"),
    "user": [os.getuid(), os.getgid()], "cap_eff": status["CapEff"].strip(),
    "writes": {p: attempt(p) for p in ("/panorama/x", "/x", "/etc/x", "/tmp/x",
                                       "/opt/aws/panorama/logs/x")},
}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"frames": len(seen), "machine": platform.machine()}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Application(panoramasdk.node):
    def __init__(self):
        self.mode = self.inputs.mode.get()
        if self.mode == "http":
            server = HTTPServer(("0.0.0.0", 8080), Handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def process(self):
        streams = self.inputs.video_in.get()
        for stream in streams:
            stream.image[:8, :8] = 255
            stream.add_label("in the image", 0.1, 0.1)
            seen.append(stream.image.shape[:2])
        if self.mode == "crash" and len(seen) == 2:
            1 / 0
        if self.mode == "hog" and len(seen) == 2:  # past --node-memory
            hog = [bytearray(32 << 20) for _ in range(64)]
        self.outputs.video_out.put(streams)
        with open(STATE, "w") as f:
            json.dump({"frames": len(seen), "shape": list(seen[0]), "baked": True,
                       "machine": platform.machine(), "python": sys.version_info[:2],
                       "numpy": numpy.__version__, "sdk": panoramasdk.__file__,
                       "uid": os.environ.get("AppGraph_Uid"), "cwd": os.getcwd(),
                       "world": world}, f)


app = Application()
while True:
    app.process()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _left(docker_client: Any, run_dir: Path) -> list[Any]:
    """Containers (any state) of the run whose run folder is ``run_dir``."""
    return docker_client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_dir}"})


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The app project: src/ is the app (parameter ``mode`` picks frames / crash / http), the
    package has the Dockerfile and declares inboundPorts 8080 and 9090."""
    root = make_project(
        tmp_path_factory.mktemp("run-container"), APP, params={"mode": ("string", "frames")}
    )
    package_dir = root / "packages" / f"{ACCOUNT}-{PACKAGE}-1.0"
    (package_dir / "Dockerfile").write_text(DOCKERFILE)
    manifest = json.loads((package_dir / "package.json").read_text())
    manifest["nodePackage"]["interfaces"][0]["network"] = {
        "inboundPorts": [{"port": 8080}, {"port": 9090}]
    }
    (package_dir / "package.json").write_text(json.dumps(manifest, indent=4))
    return root


def _build(root: Path, tag: str, arch: str, base: str) -> str:
    package_dir = root / "packages" / f"{ACCOUNT}-{PACKAGE}-1.0"
    docker_engine.build_image(
        package_dir, tag=tag, platform=f"linux/{arch}", build_args={"BASE_IMAGE": base}
    )
    return tag


@pytest.fixture(scope="module")
def amd64_image(project: Path, base_image_amd64: str) -> str:
    """The image ``panorama-cli build-container`` makes (and registers as asset code_asset)."""
    package_dir = project / "packages" / f"{ACCOUNT}-{PACKAGE}-1.0"
    result = run_cli_subprocess(
        ["build-container", "--container-asset-name", ASSET, "--json",
         "--package-path", str(package_dir.relative_to(project)), "--platform", "linux/amd64",
         "--base-image", base_image_amd64],
        cwd=project,
    )  # fmt: skip
    assert result.exit_code == 0, result.describe()
    package = Project(project).load_package(package_dir)
    assert result.json()["image"] == containers.image_tag(package, ASSET)
    return str(result.json()["image"])


@pytest.fixture(scope="module")
def arm64_image(project: Path, base_image_arm64: str) -> str:
    return _build(project, ARM64_TAG, "arm64", base_image_arm64)


@pytest.fixture
def app_project(project: Path, amd64_image: str, tmp_path: Path) -> Iterator[Path]:
    """A copy of the built project (without the exported filesystem asset, which run does
    not read) whose src/ no longer runs: the image's /panorama must."""
    root = tmp_path / "proj"
    shutil.copytree(project, root, ignore=shutil.ignore_patterns("*.tar.gz"))
    src = root / "packages" / f"{ACCOUNT}-{PACKAGE}-1.0" / "src" / "app.py"
    src.write_text("raise SystemExit('src/ is not what runs in the container')\n")
    yield root


def _run(root: Path, out: Path, *extra: str) -> Any:
    return run_cli_subprocess(
        ["run", "--camera", f"front_camera={video()}", "--in-container", "--fast",
         "--output-dir", str(out), *extra],
        cwd=root,
    )  # fmt: skip


def test_amd64_image_runs_video_frames_with_the_run_folder_mounted(
    app_project, amd64_image, docker_client, tmp_path
):
    out = tmp_path / "out"
    result = _run(app_project, out, "--frames", "8", "--json")
    assert result.exit_code == 0, result.describe()
    report = result.json()
    assert report["exit_reason"] == "frames"
    assert report["cameras"]["front_camera"]["frames"] == 8
    assert report["hdmi"]["front_camera"]["frames"] == 8
    state = json.loads((out / "storage" / "state.json").read_text())
    assert state["frames"] == 8 and state["shape"] == [576, 768] and state["baked"]
    assert state["machine"] == "x86_64" and state["cwd"] == "/"  # not the image's WORKDIR
    # the appliance's world: the image's ENV/USER/ENTRYPOINT/CMD not applied, read-only root
    world = state["world"]
    assert world["env"] == APP_ENV and world["image_only"] is None
    assert world["user"] == [0, 0] and world["cap_eff"] == "0000000000000000"
    assert world["writes"] == {
        "/panorama/x": 30, "/x": 30, "/etc/x": 30,  # EROFS
        "/tmp/x": "written", "/opt/aws/panorama/logs/x": "written",
    }  # fmt: skip
    assert f"the appliance ignores the Dockerfile's {IGNORED}" in " ".join(result.stderr.split())
    assert state["sdk"].startswith("/opt/panorama-cli/sdk/panoramasdk/")
    assert state["numpy"].startswith("1.")  # Debian's numpy, not the runner's
    assert state["uid"].startswith("applicationInstance-")
    assert (out / "hdmi" / "front_camera.mp4").stat().st_size > 1000
    # a quiet, honest ending in the container too: one line, the stop traceback in console.log
    assert "node code_node stopped" in result.stderr, result.stderr
    assert "KeyboardInterrupt" not in result.stderr and "Traceback" not in result.stderr
    assert "KeyboardInterrupt" in (out / "logs" / "console.log").read_text()
    assert _left(docker_client, out) == []


def test_arm64_image_runs_under_qemu(app_project, arm64_image, docker_client, tmp_path):
    out = tmp_path / "out"
    result = _run(app_project, out, "--frames", "3", "--image", arm64_image,
                  "--platform", "linux/arm64")  # fmt: skip
    assert result.exit_code == 0, result.describe()
    assert result.stderr.count("under qemu emulation") == 1
    state = json.loads((out / "storage" / "state.json").read_text())
    assert state["machine"] == "aarch64" and state["frames"] == 3 and state["cwd"] == "/"
    assert _left(docker_client, out) == []
    wrong = _run(app_project, tmp_path / "x", "--image", arm64_image, "--platform", "linux/amd64")
    assert wrong.exit_code == 1
    assert f"image {arm64_image} is linux/arm64, not linux/amd64 (--platform)" in wrong.stderr
    assert not (tmp_path / "x").exists()


def test_app_crash_removes_its_container(app_project, amd64_image, docker_client, tmp_path):
    out = tmp_path / "out"
    result = _run(app_project, out, "--frames", "20", "--param", "mode=crash")
    assert result.exit_code == 1, result.describe()
    assert "ZeroDivisionError" in result.stderr and 'File "/panorama/app.py"' in result.stderr
    assert _left(docker_client, out) == []


def test_node_limits_hold_in_the_container_too(app_project, amd64_image, docker_client, tmp_path):
    out = tmp_path / "out"
    result = _run(app_project, out, "--frames", "20", "--param", "mode=hog",
                  "--node-memory", "128M", "--node-pids", "64")  # fmt: skip
    assert result.exit_code != 0, result.describe()
    assert "node code_node stopped: memory limit 128 MiB" in result.stderr, result.stderr
    assert _left(docker_client, out) == []


def _start(root: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), NO_COLOR="1")
    return popen_interruptible(
        [sys.executable, "-m", "panorama_cli", "run", "--camera", f"front_camera={video()}",
         "--in-container", "--loop", "--output-dir", str(out), *extra],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_real_signal_leaves_no_container(app_project, amd64_image, docker_client, tmp_path, sig):
    out = tmp_path / "out"
    proc = _start(app_project, out)
    try:
        _wait_for(out / "storage" / "state.json", proc)
        assert len(_left(docker_client, out)) == 1
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    if sig == signal.SIGINT:
        assert proc.returncode == 0, stderr
    assert json.loads((out / "report.json").read_text())["exit_reason"] == "interrupted"
    assert _left(docker_client, out) == []


def test_a_killed_runners_container_is_removed_by_the_next_run(
    app_project, amd64_image, docker_client, tmp_path
):
    out = tmp_path / "killed"
    proc = _start(app_project, out)
    try:
        _wait_for(out / "storage" / "state.json", proc)
        proc.kill()  # SIGKILL: no clean-up at all
        proc.communicate(timeout=30)  # reaped: its pid is gone
        assert len(_left(docker_client, out)) == 1
        result = _run(app_project, tmp_path / "next", "--frames", "2")
    finally:
        for container in _left(docker_client, out):
            container.remove(force=True)
    assert result.exit_code == 0, result.describe()
    assert "removed 1 container(s) left by a killed run" in result.stderr
    assert _left(docker_client, out) == []


def test_http_app_answers_on_the_routing_rules_host_port(
    app_project, amd64_image, docker_client, tmp_path
):
    port = _free_port()
    graph_path = app_project / "graphs" / "app" / "graph.json"
    graph = json.loads(graph_path.read_text())
    graph["nodeGraph"]["networkRoutingRules"] = [
        {"node": "code_node", "containerPort": 8080, "hostPort": port}
    ]
    graph_path.write_text(json.dumps(graph))
    out = tmp_path / "out"
    proc = _start(app_project, out, "--param", "mode=http")
    try:
        deadline, answer = time.monotonic() + 60, None
        while answer is None:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no answer on the hostPort"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    answer = json.loads(response.read())
            except OSError:
                time.sleep(0.2)
        [container] = _left(docker_client, out)
        bindings = container.attrs["HostConfig"]["PortBindings"]
        assert bindings == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert answer["machine"] == "x86_64" and answer["frames"] >= 0
    assert f"containerPort 8080 -> 127.0.0.1:{port}" in stderr
    assert "inboundPorts 9090 have no networkRoutingRule: closed" in stderr
    assert _left(docker_client, out) == []


def test_missing_image_and_gpu_request_are_one_line(
    app_project, amd64_image, docker_client, tmp_path
):
    missing = _run(app_project, tmp_path / "a", "--image", "panorama-cli-test/nope:1")
    assert missing.exit_code == 1 and "--image panorama-cli-test/nope:1: not in the" in (
        missing.stderr
    )
    assert not (tmp_path / "a").exists()
    unbuilt = make_project(tmp_path / "unbuilt", APP, params={"mode": ("string", "frames")})
    manifest_path = unbuilt / "packages" / f"{ACCOUNT}-{PACKAGE}-1.0" / "package.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["nodePackage"]["interfaces"][0]["asset"] = "never_built"  # no such image
    manifest_path.write_text(json.dumps(manifest))
    none = _run(unbuilt, tmp_path / "b")
    assert none.exit_code == 1
    assert "node code_node: no image of packages/123456789012-APP-1.0 in the Docker engine" in (
        none.stderr
    )
    assert "panorama-cli build-container --container-asset-name never_built" in none.stderr
    assert "Traceback" not in none.stderr and not (tmp_path / "b").exists()
    out = tmp_path / "gpu"
    gpu = _run(app_project, out, "--frames", "2", "--device", "cuda")
    if gpu.exit_code == 0:  # an engine with the NVIDIA runtime: the app simply ran
        assert json.loads((out / "storage" / "state.json").read_text())["frames"] == 2
    elif devices.nvidia_gpu_problem() is not None:  # no GPU here: said before any container
        assert "--device cuda: no GPU for node code_node" in gpu.stderr, gpu.describe()
        assert "Traceback" not in gpu.stderr
    else:  # a GPU, but an engine without the NVIDIA runtime
        assert "cannot pass a GPU to containers" in gpu.stderr, gpu.describe()
        assert "Traceback" not in gpu.stderr
    assert _left(docker_client, out) == []


FIRST = """
import json
import numpy as np
import panoramasdk

node = panoramasdk.node()
means = []
while True:
    streams = node.inputs.video_in.get()
    for stream in streams:
        data = (stream.image[:224, :224].transpose(2, 0, 1)[None] / 255.0).astype(np.float32)
        out = node.call({"data": data}, "model_node")  # 600 KB: through the call arena
        means.append(round(float(out[0].ravel()[0]), 4))
        stream.image[-8:, -8:] = 255
    node.outputs.video_out.put(streams)
    json.dump({"means": means}, open("/opt/aws/panorama/storage/first.json", "w"))
"""

SECOND = """
import json
import panoramasdk

node = panoramasdk.node()
white = []
while True:
    streams = node.inputs.video_in.get()
    white += [bool((s.image[-8:, -8:] == 255).all()) for s in streams]
    node.outputs.video_out.put(streams)
    json.dump({"white": white}, open("/opt/aws/panorama/storage/second.json", "w"))
"""


def test_two_nodes_in_two_containers_with_a_model_call(base_image_amd64, docker_client, tmp_path):
    from tests.localrun.helpers import add_model_node, make_chain_project
    from tests.support.onnx_models import pool_model

    root = make_chain_project(tmp_path, {"first": FIRST, "second": SECOND})
    add_model_node(root, "model_node", "data", (1, 3, 224, 224))
    images = []
    for index, node in enumerate(("first", "second")):
        package_dir = root / "packages" / f"{ACCOUNT}-STAGE{index}-1.0"
        (package_dir / "Dockerfile").write_text(DOCKERFILE)
        tag = f"panorama-cli-test/run-chain:{node}"
        docker_engine.build_image(
            package_dir,
            tag=tag,
            platform="linux/amd64",
            build_args={"BASE_IMAGE": base_image_amd64},
        )
        images += ["--image", f"{node}={tag}"]
    out = tmp_path / "out"
    result = run_cli_subprocess(
        ["run", "--camera", f"cam={video()}", "--in-container", "--fast", "--frames", "4",
         "--model", f"model_node={pool_model(tmp_path / 'pool.onnx')}", "--json",
         "--output-dir", str(out), *images],
        cwd=root,
    )  # fmt: skip
    assert result.exit_code == 0, result.describe()
    report = result.json()
    assert report["models"]["model_node"]["calls"] == 4
    assert report["models"]["model_node"]["device"] == "cpu"
    first = json.loads((out / "storage" / "first" / "first.json").read_text())
    second = json.loads((out / "storage" / "second" / "second.json").read_text())
    assert len(first["means"]) == 4 and all(0.0 < m < 1.0 for m in first["means"])
    assert second["white"] == [True] * 4  # first's drawing reached second through the ring
    assert (out / "logs" / "second" / "console.log").is_file()
    assert _left(docker_client, out) == []


def test_writable_app_gives_the_old_writable_image_and_workdir(
    app_project, amd64_image, docker_client, tmp_path
):
    out = tmp_path / "out"
    result = _run(app_project, out, "--frames", "2", "--writable-app")
    assert result.exit_code == 0, result.describe()
    state = json.loads((out / "storage" / "state.json").read_text())
    assert state["cwd"] == "/panorama" and state["world"]["writes"]["/panorama/x"] == "written"
    assert state["world"]["image_only"] is None  # the image's ENV still does not apply
    assert _left(docker_client, out) == []
