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
(unreadable) archive. The serve image also holds what the Run step's secret fetcher needs of
the runtime image: ``panorama_cli.fleet.greengrass_fetch`` (the real module) under the
runtime's Python path, with the SDK stand-in (``tests/support/fake_awsiot``) in place of the
AWS IoT Device SDK; the nucleus' IPC socket is the stand-in's file
(:func:`tests.support.greengrass_ipc.write_nucleus`), holding the app's secret as deploy makes
it.
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

import panorama_cli
from panorama_cli.fleet import greengrass, greengrass_secret, model, runtime_image
from panorama_cli.fleet.greengrass import ImageArchive
from panorama_cli.localrun.frames import identity
from tests.fleet.sample_app import KEY, SERVE_TOKEN, sample_app
from tests.support.greengrass_ipc import FAKE_AWSIOT, write_nucleus
from tests.support.polling import until

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:panorama-cli/ggtest-AbCdEf"

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
    if arg == "--control-key":
        with open(args[i + 1]) as f:
            report["files"]["control-key"] = f.read()
    if arg == "--auth-token-file":
        with open(args[i + 1]) as f:
            report["files"]["serve-token"] = f.read()
print("REPORT " + json.dumps(report), flush=True)
while True:
    time.sleep(1)
"""

NODE_PY = r"""
import os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
open("/opt/aws/panorama/storage/started", "w").write("yes")
token = open(os.environ["PANORAMA_LOCALRUN_TOKEN_FILE"]).read()
print("TOKEN " + token, flush=True)
print("SECRETS " + " ".join(sorted(os.listdir("/run/secrets"))), flush=True)
print("node up", flush=True)
while True:
    time.sleep(1)
"""


def fetcher_files() -> dict[str, str]:
    """What the secret fetcher needs of the runtime image, as files of a build context under
    ``lib/``: the real module (and its packages' ``__init__``), the SDK stand-in."""
    package = Path(panorama_cli.__file__).resolve().parent
    files = {
        f"lib/panorama_cli/{name}": (package / name).read_text()
        for name in ("__init__.py", "fleet/__init__.py", "fleet/greengrass_fetch.py")
    }
    for path in sorted(FAKE_AWSIOT.rglob("*.py")):
        files[f"lib/{path.relative_to(FAKE_AWSIOT)}"] = path.read_text()
    return files


#: Dockerfile lines that give an image the runtime's Python and the fetcher (fetcher_files).
FETCHER_LINES = [
    "COPY lib /opt/panorama-cli/fetcher",
    f"RUN mkdir -p {Path(runtime_image.PYTHON).parent} "
    f'&& ln -s "$(command -v python3)" {runtime_image.PYTHON}',
    "ENV PYTHONPATH=/opt/panorama-cli/fetcher PYTHONDONTWRITEBYTECODE=1",
    # the runtime image's control folder: serve's, closed to the fetch container's user
    f"RUN install -d -o {model.SERVE_UID} -g {model.APP_GID} -m 0750 {model.CONTROL_DIR}",
]


def build(client: Any, tag: str, lines: list[str], files: dict[str, str]) -> str:
    """``docker build`` of a Dockerfile of ``lines`` with ``files`` (name -> text) beside it."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, text in {"Dockerfile": "\n".join(lines) + "\n", **files}.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    client.images.build(fileobj=context, custom_context=True, tag=tag, pull=False, rm=True)
    return tag


def _image(client: Any, base: str, tag: str, script: str, entrypoint: list[str] | None) -> str:
    lines = [f"FROM {base}", "COPY app.py /panorama/app.py"]
    files = {"app.py": script}
    if entrypoint is None:  # a node: its storage and logs as images.node_image makes them
        folders = "/opt/aws/panorama/storage /opt/aws/panorama/logs"
        lines.append(f"RUN mkdir -p {folders} && chown 0:{model.APP_GID} {folders} "
                     f"&& chmod 2770 {folders}")  # fmt: skip
    if entrypoint:
        lines.append(f"ENTRYPOINT {json.dumps(entrypoint)}")
        lines += FETCHER_LINES  # serve's image: the runtime's, with the fetcher
        files.update(fetcher_files())
    return build(client, tag, lines, files)


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
            command=(
                "/usr/bin/env",
                "-i",
                "PATH=/usr/bin:/bin",
                f"PANORAMA_LOCALRUN_TOKEN_FILE={model.NODE_TOKEN_FILE}",
                "python3",
                "/panorama/app.py",
            ),  # fmt: skip
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
        # what deploy makes: the secret (a site's camera, the control key and the node's token)
        # on the device, the component's configuration naming it
        control = json.loads(files[greengrass.CONTROL_FILE].content)
        value = greengrass_secret.secret_value({"lobby": TRICKY}, control)
        nucleus = write_nucleus(tmp_path / "ipc.socket", {ARN: value})
        recipe = greengrass.fill_secret(recipe, ARN)
        merge = greengrass.secret_configuration(name, ARN)
        work = tmp_path / "work"
        work.mkdir()
        yield {
            "app": app, "name": name, "recipe": recipe, "artifacts": artifacts, "work": work,
            "config": _merge(recipe["ComponentConfiguration"]["DefaultConfiguration"], merge),
            "port": port, "node_image": node_image, "nucleus": nucleus,
        }  # fmt: skip
    finally:
        cleanup()


def _step_env(step: dict[str, Any], c: dict[str, Any]) -> dict[str, str]:
    env = {**os.environ, **c["nucleus"]}  # what the nucleus gives each lifecycle step
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
        assert secret_file.stat().st_mode & 0o777 == 0o644
        # serve got the control key from its secret folder
        assert identity.read_key(c["work"] / "secrets" / "control.key") == KEY
        assert bytes.fromhex(got["files"]["control-key"].strip()) == KEY
        # 0644 in the 0700 folder: serve's user (not root, no capabilities) reads it
        assert (c["work"] / "secrets" / "control.key").stat().st_mode & 0o777 == 0o644
        assert (c["work"] / "secrets").stat().st_mode & 0o777 == 0o700
        assert got["files"]["serve-token"].strip() == SERVE_TOKEN

        node = docker_client.containers.get(node_name)
        _wait_for(lambda: node.reload() or node.status == "running", what="the node container")
        logs = _wait_for(lambda: "node up" in node.logs().decode() and node.logs().decode(),
                         what="node logs")  # fmt: skip
        # the node read its own token (a root without capabilities), and sees no other secret
        token = next(line[6:] for line in logs.splitlines() if line.startswith("TOKEN "))
        assert identity.token_matches(KEY, "people_counter", token)
        assert "SECRETS node.token" in logs.splitlines()
        host = node.attrs["HostConfig"]
        # the limits the engine holds the node to
        assert host["Memory"] == host["MemorySwap"] == 4 << 30 and host["PidsLimit"] == 512
        assert host["LogConfig"] == {
            "Type": "json-file",
            "Config": {"max-size": "64m", "max-file": "2"},
        }
        assert host["Tmpfs"] == {"/tmp": f"size={256 << 20}"}
        assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"]
        assert node.attrs["Config"]["User"] == f"{model.NODE_UID_BASE}:{model.APP_GID}"
        assert host["RestartPolicy"]["Name"] == "unless-stopped"
        assert "no-new-privileges" in host["SecurityOpt"]
        assert node.attrs["Config"]["Labels"][model.LABEL_ROLE] == "node"
        serve = docker_client.containers.get(serve_name)
        assert serve.attrs["Config"]["User"] == f"{model.SERVE_UID}:{model.APP_GID}"
        assert serve.attrs["HostConfig"]["ReadonlyRootfs"] is True
        assert serve.attrs["HostConfig"]["CapDrop"] == ["ALL"]
        assert serve.attrs["HostConfig"]["PortBindings"][f"{model.HTTP_PORT}/tcp"][0][
            "HostPort"
        ] == str(c["port"])
        # nothing shares /dev/shm; the node's control folder is read-only
        assert not [v for v in docker_client.volumes.list() if v.name == f"{name}-shm"]
        control = next(m for m in node.attrs["Mounts"] if m["Destination"] == model.CONTROL_DIR)
        assert control["RW"] is False

        # the fetch container is gone; nothing of it is left
        assert [n for n in docker_client.containers.list(all=True, filters=label)
                if n.name.endswith("-secrets")] == []  # fmt: skip
        # the secret is in no container's command line or environment
        for container in docker_client.containers.list(all=True, filters=label):
            container.reload()
            seen = json.dumps([container.attrs.get("Args"), container.attrs["Config"].get("Env"),
                               container.attrs["Config"].get("Cmd"), container.attrs["Config"].get("Entrypoint")])  # fmt: skip
            assert "s3cret" not in seen, container.name
            assert KEY.hex() not in seen and token not in seen, container.name
            assert SERVE_TOKEN not in seen, container.name

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
