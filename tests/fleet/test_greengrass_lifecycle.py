"""The rendered recipe's lifecycle, run for real with /bin/sh against the local Docker engine.

The test plays the Greengrass nucleus: it downloads nothing but lays the artifacts into a
folder (``{artifacts:path}``), resolves the recipe variables of each step's ``Setenv`` as the
nucleus does (``{artifacts:path}``, ``{work:path}``, ``{configuration:/...}`` against the
default configuration merged with the deployment's ``configurationUpdate.merge``,
``{iot:thingName}``), and runs Install, Run (in the background, as the nucleus keeps it) and
Shutdown with ``/bin/sh -c``. The images are tiny ones built FROM the test base image (no
registry): a "serve" that reports its argv, the secret file and the camera file, and a
"node" that sleeps. The node image travels as a ``docker save`` archive (removed from the
engine first, so Install must load it); the serve image is present, so Install must skip its
(unreadable) archive.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import socket
import subprocess
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest

from panorama_cli.fleet import greengrass, model
from panorama_cli.fleet.greengrass import ImageArchive
from tests.fleet.sample_app import sample_app
from tests.support.polling import until

SECRET = "rtsp://admin:s3cret@10.0.0.5:554/stream1"
#: What a site merges at deployment: shell metacharacters must reach serve as they are.
TRICKY = "rtsp://admin:s3cret'$(id)`id`\"; x@10.0.0.5:554/stream1"

SERVE_PY = r"""
import json, signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
args = sys.argv[1:]
report = {"argv": args, "files": {}}
for i, arg in enumerate(args):
    if arg == "--camera":
        node, _, source = args[i + 1].partition("=")
        path = source[1:] if source.startswith("@") else source
        if path.startswith("/"):
            with open(path) as f:
                report["files"][node] = f.read()
print("REPORT " + json.dumps(report), flush=True)
while True:
    time.sleep(1)
"""

NODE_PY = r"""
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
open("/opt/aws/panorama/storage/started", "w").write("yes")
print("node up", flush=True)
while True:
    time.sleep(1)
"""


def _image(client: Any, base: str, tag: str, script: str, entrypoint: list[str] | None) -> str:
    lines = [f"FROM {base}", "COPY app.py /panorama/app.py"]
    if entrypoint:
        lines.append(f"ENTRYPOINT {json.dumps(entrypoint)}")
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, text in (("Dockerfile", "\n".join(lines) + "\n"), ("app.py", script)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    client.images.build(fileobj=context, custom_context=True, tag=tag, pull=False, rm=True)
    return tag


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_VARIABLE = re.compile(r"\{(artifacts|work|configuration|iot):([^}]*)\}")


def resolve(text: str, *, artifacts: Path, work: Path, config: dict[str, Any], thing: str) -> str:
    """What the nucleus does to a recipe string (the Greengrass v2 recipe variables)."""

    def one(match: re.Match[str]) -> str:
        namespace, key = match.groups()
        if namespace == "artifacts" and key == "path":
            return str(artifacts)
        if namespace == "work" and key == "path":
            return str(work)
        if namespace == "iot" and key == "thingName":
            return thing
        if namespace == "configuration":
            value: Any = config
            for part in key.lstrip("/").split("/"):
                value = value[part.replace("~1", "/").replace("~0", "~")]
            return value if isinstance(value, str) else json.dumps(value)
        raise AssertionError(f"unknown recipe variable {match.group(0)}")

    return _VARIABLE.sub(one, text)


def _merge(default: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(default)
    for key, value in update.items():
        out[key] = (
            _merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


@pytest.fixture
def component(docker_client, base_image_amd64, tmp_path):
    """Images, the app, its rendered files and the nucleus' folders; everything removed after."""
    tag = uuid.uuid4().hex[:8]
    serve_image = f"panorama-cli-test/gg-serve:{tag}"
    node_image = f"panorama-cli-test/gg-node:{tag}"
    name = greengrass.component_name_for("123456789012", f"ggtest-{tag}")
    created_images = [serve_image, node_image]

    def cleanup() -> None:
        for container in docker_client.containers.list(
            all=True, filters={"label": f"{greengrass.LABEL_COMPONENT}={name}"}
        ):
            container.remove(force=True)
        for volume in docker_client.volumes.list():
            if volume.name.startswith(name + "-"):
                volume.remove(force=True)
        for image in created_images:
            try:
                docker_client.images.remove(image, force=True)
            except Exception:
                pass

    try:
        _image(
            docker_client, base_image_amd64, serve_image, SERVE_PY, ["python3", "/panorama/app.py"]
        )
        _image(docker_client, base_image_amd64, node_image, NODE_PY, None)
        base = sample_app(tmp_path)
        port = _free_port()
        serve = dataclasses.replace(base.serve, image=serve_image, ports=((model.HTTP_PORT, port),))
        node = dataclasses.replace(
            base.nodes[0],
            image=node_image,
            command=("/usr/bin/env", "-i", "PATH=/usr/bin:/bin", "python3", "/panorama/app.py"),
        )
        app = dataclasses.replace(base, name=f"ggtest-{tag}", serve=serve, nodes=(node,))

        artifacts = tmp_path / "artifacts"
        artifacts.mkdir()
        archives: dict[str, ImageArchive] = {}
        # the node image as a docker save archive, then gone from the engine
        rel = greengrass.archive_path(name, app.semver, node_image)
        tar_path = artifacts / rel.rsplit("/", 1)[-1]
        with tar_path.open("wb") as out:
            for chunk in docker_client.images.get(node_image).save(named=True):
                out.write(chunk)
        data = tar_path.read_bytes()
        archives[node_image] = ImageArchive(
            node_image, rel, hashlib.sha256(data).hexdigest(), len(data)
        )
        docker_client.images.remove(node_image, force=True)
        # the serve image is there already: its "archive" must not be read
        rel = greengrass.archive_path(name, app.semver, serve_image)
        junk = artifacts / rel.rsplit("/", 1)[-1]
        junk.write_bytes(b"not an image archive")
        archives[serve_image] = ImageArchive(serve_image, rel, hashlib.sha256(b"x").hexdigest(), 1)
        for bundle_file in app.files:
            (artifacts / bundle_file.path.rsplit("/", 1)[-1]).write_bytes(
                bundle_file.source.read_bytes()
            )

        files = {f.path: f for f in greengrass.render(app, component_name=name, archives=archives)}
        recipe = json.loads(files[greengrass.recipe_path(name, app.semver)].content)
        assert json.loads(files[greengrass.SECRETS_FILE].content) == {"lobby": SECRET}
        merge = {"cameras": {"lobby": TRICKY}}
        work = tmp_path / "work"
        work.mkdir()
        yield {
            "app": app, "name": name, "recipe": recipe, "artifacts": artifacts, "work": work,
            "config": _merge(recipe["ComponentConfiguration"]["DefaultConfiguration"], merge),
            "port": port, "node_image": node_image,
        }  # fmt: skip
    finally:
        cleanup()


def _step_env(step: dict[str, Any], c: dict[str, Any]) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in (step.get("Setenv") or {}).items():
        env[key] = resolve(
            value, artifacts=c["artifacts"], work=c["work"], config=c["config"], thing="edge-1"
        )
    return env


def _run(step: dict[str, Any], c: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", "-c", step["Script"]],
        env=_step_env(step, c),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _wait_for(predicate, timeout: float = 60.0, what: str = "condition") -> Any:
    return until(predicate, timeout, what)


def test_install_run_shutdown(docker_client, component):
    c = component
    name, app = c["name"], c["app"]
    lifecycle = c["recipe"]["Manifests"][0]["Lifecycle"]
    label = {"label": f"{greengrass.LABEL_COMPONENT}={name}"}

    # Install: loads the node image from its archive, skips the serve image's
    install = _run(lifecycle["Install"], c)
    assert install.returncode == 0, install.stderr
    assert docker_client.images.get(c["node_image"]).tags == [c["node_image"]]
    assert _run(lifecycle["Install"], c).returncode == 0  # again: nothing to load

    # Run: in the background, as the nucleus keeps it
    run = subprocess.Popen(
        ["/bin/sh", "-c", lifecycle["Run"]["Script"]],
        env=_step_env(lifecycle["Run"], c),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        serve_name, node_name = f"{name}-serve", f"{name}-{app.nodes[0].name}"

        def report() -> dict[str, Any] | None:
            try:
                logs = docker_client.containers.get(serve_name).logs().decode()
            except Exception:
                assert run.poll() is None, run.stderr.read() if run.stderr else ""
                return None
            for line in logs.splitlines():
                if line.startswith("REPORT "):
                    return dict(json.loads(line[len("REPORT ") :]))
            return None

        got = _wait_for(report, what="serve's report")
        argv = got["argv"]
        assert argv[: len(app.serve.args)] == list(app.serve.args)
        assert f"front_door={model.CAMERAS_DIR}/front_door.avi" in argv
        assert "lobby=@/run/secrets/camera-lobby" in argv
        assert argv[argv.index("--param") + 1] == "threshold=0.6"
        # serve got the camera from the secret file, and the bundle's camera file
        assert got["files"]["lobby"] == TRICKY
        assert got["files"]["front_door"] == "not really a video"
        secret_file = c["work"] / "secrets" / "camera-lobby"
        assert secret_file.stat().st_mode & 0o777 == 0o600

        node = docker_client.containers.get(node_name)
        _wait_for(lambda: node.reload() or node.status == "running", what="the node container")
        assert "node up" in _wait_for(lambda: node.logs().decode(), what="node logs")
        host = node.attrs["HostConfig"]
        assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"]
        assert host["RestartPolicy"]["Name"] == "unless-stopped"
        assert "no-new-privileges" in host["SecurityOpt"]
        assert node.attrs["Config"]["Labels"][model.LABEL_ROLE] == "node"
        serve = docker_client.containers.get(serve_name)
        assert serve.attrs["HostConfig"]["PortBindings"][f"{model.HTTP_PORT}/tcp"][0][
            "HostPort"
        ] == str(c["port"])
        shm = docker_client.volumes.get(f"{name}-shm")
        assert shm.attrs["Options"] == {
            "type": "tmpfs",
            "device": "tmpfs",
            "o": f"size={model.SHM_SIZE_BYTES}",
        }

        # the secret is in no container's command line or environment
        for container in docker_client.containers.list(all=True, filters=label):
            container.reload()
            seen = json.dumps([container.attrs.get("Args"), container.attrs["Config"].get("Env"),
                               container.attrs["Config"].get("Cmd"), container.attrs["Config"].get("Entrypoint")])  # fmt: skip
            assert "s3cret" not in seen, container.name

        # Shutdown: no container of the component is left; the Run step ends
        shutdown = _run(lifecycle["Shutdown"], c)
        assert shutdown.returncode == 0, shutdown.stderr
        assert docker_client.containers.list(all=True, filters=label) == []
        run.wait(timeout=60)
        # volumes are kept (state, storage, logs)
        assert docker_client.volumes.get(f"{name}-storage-{app.nodes[0].name}")
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
