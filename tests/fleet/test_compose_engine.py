"""``export --target compose`` and ``deploy --target compose|swarm`` on the real Docker engine.

A pass-through app (it appends one line to its storage at each start) is built with
build-container FROM the local Debian base, exported with vtest.avi as its camera, and run:

* Compose (Debian's docker-compose 1.29, or the v2 plugin): up, ready, frames counted in
  /metrics (with the bundle's login token; without it 401); HTTP and RTSP out published on
  127.0.0.1 only, and /api/status gives the RTSP URL at the published port; serve and the node
  run as their own users, not root, read-only, without capabilities; the node's process
  SIGKILLed -> the engine restarts its container and serve counts
  the restart, storage kept; down --volumes leaves no container, network or volume;
* export again with nothing changed: no image rebuilt;
* a single-node Docker Swarm: the same compose.yaml as a stack, ready; a killed node task is
  replaced; a rolling update to a new version (a parameter changed) keeps the node's storage;
* ``--registry`` against Debian's docker-registry on 127.0.0.1: export pushes, the engine
  pulls the images back after they were removed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from tests.fleet.engine_support import LABEL_APP, READY_S, token_of
from tests.fleet.engine_support import cli as _cli
from tests.fleet.engine_support import free_port as _free_port
from tests.fleet.engine_support import get as _get
from tests.fleet.engine_support import metric as _metric
from tests.fleet.engine_support import status as _status
from tests.fleet.engine_support import until as _until
from tests.localrun.helpers import video

pytestmark = pytest.mark.docker


def _containers(client: Any, app: str) -> list[Any]:
    return client.containers.list(all=True, filters={"label": f"{LABEL_APP}={app}"})


def _storage_lines(client: Any, volume: str, base: str) -> int:
    out = client.containers.run(
        base, ["cat", "/s/starts"], volumes={volume: {"bind": "/s", "mode": "ro"}}, remove=True
    )
    return len(out.decode().split())


def _kill_node_process(client: Any, app: str) -> str:
    """SIGKILL the node container's process from the host (a crash, not a docker stop)."""
    nodes = [
        c
        for c in client.containers.list(filters={"label": f"{LABEL_APP}={app}"})
        if c.labels.get("org.panorama-cli.role") == "node"
    ]
    assert nodes, "no running node container"
    nodes[0].reload()
    os.kill(int(nodes[0].attrs["State"]["Pid"]), signal.SIGKILL)
    return str(nodes[0].id)


def _export(root: Path, out: Path, base: str, port: int, *extra: str, rtsp: int = 0) -> Any:
    return _cli(root, "export", "--target", "compose", "--output-dir", str(out), "--camera",
                f"front_camera={video()}", "--listen", f"127.0.0.1:{port}", "--rtsp-port",
                str(rtsp), "--runtime-base", base, *extra)  # fmt: skip


@pytest.fixture(scope="module")
def bundle(project: Path, base_image_amd64: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("bundle") / "fleet"
    port = _free_port()
    result = _export(project, out, base_image_amd64, port)
    assert f"{out}/secrets/serve-token" in result.stderr  # export says where the token is
    return out, port


def _app_name(bundle_dir: Path) -> str:
    document = yaml.safe_load((bundle_dir / "compose.yaml").read_text())
    return str(document["services"]["serve"]["labels"][LABEL_APP])


def test_compose_up_ready_restart_down(
    project: Path, bundle: Any, docker_client: Any, base_image_amd64: str
) -> None:
    out, port = bundle
    app = _app_name(out)
    token = token_of(out)
    try:
        _cli(project, "deploy", "--target", "compose", "--bundle", str(out), "--wait",
             "--timeout", str(READY_S))  # fmt: skip
        assert _get(port, "/readyz")[0] == 200
        assert _get(port, "/metrics")[0] == 401 and _get(port, "/api/status")[0] == 401
        assert _get(port, "/metrics", "not-the-token")[0] == 401
        _until(lambda: _metric(port, "panorama_camera_frames_total", token) > 20, 60, "frames")
        assert _metric(port, "panorama_hdmi_frames_total", token) > 0
        for container in _containers(docker_client, app):  # nobody is root, nothing is writable
            host = container.attrs["HostConfig"]
            role = container.labels["org.panorama-cli.role"]
            user = container.attrs["Config"]["User"]
            assert user == ("10001:10001" if role == "serve" else "10100:10001"), role
            assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"], role
            assert host["Memory"] > 0 and host["PidsLimit"] > 0 and host["NanoCpus"] > 0, role
            for binding in (host.get("PortBindings") or {}).values():
                assert [b["HostIp"] for b in binding] == ["127.0.0.1"]
        storage = f"{app}_storage-code-node"
        killed = _kill_node_process(docker_client, app)

        def restarted() -> bool:
            node = _status(port, token).get("nodes", {}).get("code_node", {})
            running = node.get("restarts", 0) >= 1 and node.get("state") == "running"
            return running and isinstance(node.get("pid"), int)  # the pid its hello gave

        _until(restarted, 90, "the node restarted by the engine and running again")
        assert docker_client.containers.get(killed).attrs["RestartCount"] >= 1
        _until(lambda: _storage_lines(docker_client, storage, base_image_amd64) >= 2, 30,
               "storage kept across the restart")  # fmt: skip
    finally:
        _cli(project, "deploy", "--target", "compose", "--bundle", str(out), "--down",
             "--volumes")  # fmt: skip
    assert _containers(docker_client, app) == []
    assert not [v for v in docker_client.volumes.list() if v.name.startswith(f"{app}_")]
    assert not docker_client.networks.list(names=[f"{app}_default"])


def test_export_unchanged_builds_nothing(project: Path, bundle: Any, base_image_amd64: str) -> None:
    out, port = bundle
    before = (out / "compose.yaml").read_bytes()
    result = _export(project, out, base_image_amd64, port)
    assert "no image rebuilt" in result.stderr, result.describe()
    assert (out / "compose.yaml").read_bytes() == before


@pytest.fixture
def swarm(docker_client: Any) -> Iterator[None]:
    state = docker_client.info().get("Swarm", {}).get("LocalNodeState")
    if state == "active":
        pytest.skip("this engine is already in a swarm: not touching it")
    docker_client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
    try:
        yield
    finally:
        docker_client.swarm.leave(force=True)


def test_swarm_stack_restart_and_rolling_update(
    project: Path, bundle: Any, swarm: None, docker_client: Any, base_image_amd64: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    out, port = bundle
    app = _app_name(out)
    volume = f"{app}_storage-code-node"
    try:
        _cli(project, "deploy", "--target", "swarm", "--bundle", str(out), "--wait",
             "--timeout", str(READY_S))  # fmt: skip
        token = token_of(out)
        _until(lambda: _metric(port, "panorama_camera_frames_total", token) > 10, 60, "frames")
        first = _kill_node_process(docker_client, app)

        def replaced() -> bool:
            running = [
                c for c in _containers(docker_client, app)
                if c.status == "running" and c.labels.get("org.panorama-cli.role") == "node"
            ]  # fmt: skip
            return bool(running) and all(c.id != first for c in running)

        _until(replaced, 90, "a new node task after the kill")
        starts = _until(lambda: _storage_lines(docker_client, volume, base_image_amd64) >= 2,
                        60, "the new task's start in the same storage")  # fmt: skip
        assert starts
        version = yaml.safe_load((out / "compose.yaml").read_text())["services"]["serve"]
        old_version = version["labels"]["org.panorama-cli.version"]
        _export(project, out, base_image_amd64, port, "--param", "threshold=42")
        new = yaml.safe_load((out / "compose.yaml").read_text())["services"]["serve"]
        assert new["labels"]["org.panorama-cli.version"] != old_version
        _cli(project, "deploy", "--target", "swarm", "--bundle", str(out))

        def updated() -> bool:
            service = docker_client.services.get(f"{app}_serve")
            args = service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"].get("Args", [])
            return "threshold=42" in args and _get(port, "/readyz")[0] == 200

        _until(updated, READY_S, "serve updated to the new version and ready")
        before = _storage_lines(docker_client, volume, base_image_amd64)
        assert before >= 2  # storage of the first version is still there
    finally:
        subprocess.run(["docker", "stack", "rm", app], check=False, capture_output=True)
        _until(lambda: not _containers(docker_client, app), 60, "stack removed", every=2)
        for item in docker_client.volumes.list():
            if item.name.startswith(f"{app}_"):
                _until(lambda v=item: _remove(v), 30, f"volume {item.name} removed", every=2)


def _remove(volume: Any) -> bool:
    try:
        volume.remove(force=True)
        return True
    except Exception:  # noqa: BLE001 - still in use by a container being removed
        return False


def test_rtsp_url_names_the_published_port(
    project: Path, docker_client: Any, base_image_amd64: str, tmp_path: Path
) -> None:
    """RTSP out published on 127.0.0.1:<free port> (not 8554): /api/status gives that URL, and
    RTSP out asks for the token."""
    out = tmp_path / "fleet"
    port, rtsp = _free_port(), _free_port()
    _export(project, out, base_image_amd64, port, rtsp=rtsp)
    app, token = _app_name(out), token_of(out)
    try:
        _cli(project, "deploy", "--target", "compose", "--bundle", str(out), "--wait",
             "--timeout", str(READY_S))  # fmt: skip

        def url() -> Any:
            streams = _status(port, token).get("streams", {})
            return (streams.get("front_camera") or {}).get("rtsp")

        assert _until(url, 60, "the stream's RTSP URL") == (
            f"rtsp://panorama@127.0.0.1:{rtsp}/front_camera"
        )
        import socket

        with socket.create_connection(("127.0.0.1", rtsp), timeout=5) as sock:
            sock.sendall(
                f"DESCRIBE rtsp://127.0.0.1:{rtsp}/front_camera RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode()
            )
            assert sock.recv(200).startswith(b"RTSP/1.0 401")  # no password, no video
    finally:
        _cli(project, "deploy", "--target", "compose", "--bundle", str(out), "--down",
             "--volumes")  # fmt: skip
    assert _containers(docker_client, app) == []


def test_registry_push_then_pull(
    project: Path, registry: str, docker_client: Any, base_image_amd64: str, tmp_path: Path
) -> None:
    out = tmp_path / "fleet"
    _export(project, out, base_image_amd64, _free_port(), "--registry", f"{registry}/pcli")
    services = yaml.safe_load((out / "compose.yaml").read_text())["services"]
    images = sorted({s["image"] for s in services.values()})
    assert images and all(i.startswith(f"{registry}/pcli/") for i in images)
    status, text = _get(int(registry.rsplit(":", 1)[1]), "/v2/_catalog")
    assert status == 200 and len(json.loads(text)["repositories"]) == len(images)
    for image in images:
        docker_client.images.remove(image)
    from panorama_cli.fleet.compose_deploy import compose_command

    pulled = subprocess.run([*compose_command(), "-f", str(out / "compose.yaml"), "pull"],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert pulled.returncode == 0, pulled.stderr
    for image in images:
        assert docker_client.images.get(image)
