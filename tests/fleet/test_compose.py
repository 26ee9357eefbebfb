"""The Compose export as files: each container's limits in ``compose.yaml`` (Compose) and
``stack.yaml`` (Swarm), accepted by the real readers; who gets which secret (serve the control
key and its login token, each node only its own token); the bundle's key and token kept across
exports; ports published on the --listen host only; no container runs as root."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from panorama_cli.errors import UserError
from panorama_cli.fleet import compose, model
from panorama_cli.fleet.app import control_secrets
from panorama_cli.fleet.export import (
    bundle_key,
    bundle_serve_token,
    key_file,
    serve_token_file,
    write_bundle,
)
from panorama_cli.fleet.model import FleetApp
from panorama_cli.localrun.apps.limits import NodeLimits
from panorama_cli.localrun.frames import identity
from tests.fleet.sample_app import KEY, SERVE_TOKEN, cuda_app, sample_app
from tests.support.cli_runner import run_cli


def _documents(app: FleetApp) -> tuple[dict[str, Any], dict[str, Any]]:
    files = {f.path: f for f in compose.render(app)}
    return (
        yaml.safe_load(files[compose.FILE_NAME].content),
        yaml.safe_load(files[compose.STACK_FILE_NAME].content),
    )


def _two_nodes(tmp: Path | None = None) -> FleetApp:
    """The sample with a second node, ``other_node``, with its own token."""
    app = sample_app(tmp)
    control, tokens = control_secrets(KEY, ["people_counter", "other_node"])
    other = dataclasses.replace(
        app.nodes[0],
        name="other-node",
        node="other_node",
        mounts=model.node_mounts("other-node"),
        secrets=(tokens["other_node"],),
        user=(model.NODE_UID_BASE + 1, model.APP_GID),
    )
    volumes = tuple(sorted({*app.volumes, *(m.volume for m in other.mounts)}))
    return dataclasses.replace(
        app, nodes=(*app.nodes, other), secrets=(*app.secrets, tokens["other_node"]),
        volumes=volumes,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("limits", "memory", "pids", "log_size", "tmp"),
    [
        (None, "4g", 512, "64m", 256 << 20),
        (NodeLimits(memory=768 << 20, pids=64, storage=512 << 20), "768m", 64, "16m", 64 << 20),
    ],
    ids=["defaults", "explicit"],
)
def test_node_limits_in_both_files(
    limits: NodeLimits | None, memory: str, pids: int, log_size: str, tmp: int
) -> None:
    plain, stack = _documents(sample_app(limits=limits))
    node = plain["services"]["people-counter"]
    assert (node["mem_limit"], node["memswap_limit"], node["pids_limit"]) == (memory, memory, pids)
    assert "resources" not in node["deploy"]  # 1.29 would let deploy limits replace mem_limit
    swarm = stack["services"]["people-counter"]
    assert swarm["deploy"]["resources"] == {"limits": {"memory": memory, "pids": pids, "cpus": "1"}}
    assert node["cpus"] == 1.0
    assert not {"mem_limit", "memswap_limit", "pids_limit", "cpus"} & set(swarm)
    assert stack["version"] == "3.9" and plain["version"] == "3.8"
    for service in (node, swarm):
        assert service["logging"] == {
            "driver": "json-file",
            "options": {"max-size": log_size, "max-file": "2"},
        }
        assert {"type": "tmpfs", "target": "/tmp", "tmpfs": {"size": tmp}} in service["volumes"]
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
        assert service["security_opt"] == ["no-new-privileges:true"]
    # serve runs the models: its own limits, larger than a node's
    serve = plain["services"]["serve"]
    assert (serve["mem_limit"], serve["pids_limit"], serve["cpus"]) == ("8g", 1024, 2.0)
    assert stack["services"]["serve"]["deploy"]["resources"]["limits"]["memory"] == "8g"
    # the two files differ only in the limits, the ports and the secrets' owners
    for document in (plain, stack):
        for service in document["services"].values():
            for key in ("mem_limit", "memswap_limit", "pids_limit", "cpus", "ports", "secrets"):
                service.pop(key, None)
            service["deploy"].pop("resources", None)
    assert {**plain, "version": ""} == {**stack, "version": ""}


def test_every_container_is_hardened() -> None:
    """No container runs as root, with capabilities, new privileges or a writable root."""
    for document in _documents(sample_app()):
        services = document["services"]
        users = {name: service["user"] for name, service in services.items()}
        assert users == {
            "serve": f"{model.SERVE_UID}:{model.APP_GID}",
            "people-counter": f"{model.NODE_UID_BASE}:{model.APP_GID}",
        }
        for service in services.values():
            assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
            assert service["security_opt"] == ["no-new-privileges:true"]
            assert service["logging"]["driver"] == "json-file"
            assert "privileged" not in service and "cap_add" not in service


def test_published_on_the_listen_host_only(tmp_path: Path) -> None:
    """--listen 127.0.0.1:PORT publishes HTTP and RTSP on 127.0.0.1 only (it was 0.0.0.0 and
    [::]), as docker-compose 1.29 reads the file; Swarm, which cannot, says so."""
    app = sample_app(tmp_path, listen_host="127.0.0.1")
    plain, stack = _documents(app)
    assert plain["services"]["serve"]["ports"] == ["127.0.0.1:8765:8765", "127.0.0.1:8554:8554"]
    bundle = tmp_path / "bundle"
    write_bundle(bundle, compose.render(app), app)
    assert "Swarm publishes on every address" in (bundle / compose.STACK_FILE_NAME).read_text()
    assert "Swarm" not in (bundle / compose.FILE_NAME).read_text()
    done = subprocess.run([_tool("docker-compose"), "-f", "compose.yaml", "config"], cwd=bundle,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    ports = yaml.safe_load(done.stdout)["services"]["serve"]["ports"]
    assert ports == ["127.0.0.1:8765:8765/tcp", "127.0.0.1:8554:8554/tcp"]
    ipv6 = _documents(sample_app(listen_host="::1"))[0]["services"]["serve"]["ports"]
    assert ipv6[0] == "[::1]:8765:8765"
    every = _documents(sample_app())[0]["services"]["serve"]["ports"]
    assert every == ["8765:8765", "8554:8554"]


def _tool(name: str) -> str:
    program = shutil.which(name)
    if program is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed (.ci/run installs it)")
        pytest.skip(f"{name} is not installed")
    return program


def test_the_real_readers_accept_the_files(tmp_path: Path) -> None:
    """docker-compose 1.29 validates compose.yaml against the Compose Specification, docker
    stack against docker/cli's 3.9 schema (which refuses compose.yaml's limits)."""
    app = _two_nodes(tmp_path)
    bundle = tmp_path / "bundle"
    write_bundle(bundle, compose.render(app), app)
    legacy = _tool("docker-compose")
    done = subprocess.run([legacy, "-f", "compose.yaml", "config"], cwd=bundle,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)["services"]["people-counter"]
    assert resolved["mem_limit"] in ("4g", 4 << 30) and resolved["pids_limit"] == 512
    docker = _tool("docker")
    done = subprocess.run([docker, "stack", "config", "-c", "stack.yaml"], cwd=bundle,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    limits = yaml.safe_load(done.stdout)["services"]["other-node"]["deploy"]["resources"]
    assert limits["limits"]["pids"] == 512
    refused = subprocess.run([docker, "stack", "config", "-c", "compose.yaml"], cwd=bundle,
                             capture_output=True, text=True, check=False)  # fmt: skip
    assert refused.returncode != 0  # why stack.yaml exists


def test_cuda_gives_the_app_container_its_gpus(tmp_path: Path) -> None:
    """An app that runs its models itself gets the GPU in its own service: every GPU as a
    device reservation in compose.yaml, a Swarm generic resource in stack.yaml (docker/cli
    refuses device reservations), both accepted by the real readers; serve, with no model node
    to run, gets none; a CPU export gives nobody one."""
    app = cuda_app(tmp_path, serve=False, node=True)
    bundle = tmp_path / "bundle"
    write_bundle(bundle, compose.render(app), app)
    gpus = [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    done = subprocess.run([_tool("docker-compose"), "-f", "compose.yaml", "config"], cwd=bundle,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    reservations = services["people-counter"]["deploy"]["resources"]["reservations"]
    assert reservations["devices"] == gpus
    assert "resources" not in services["serve"]["deploy"]
    done = subprocess.run([_tool("docker"), "stack", "config", "-c", "stack.yaml"], cwd=bundle,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    reservations = services["people-counter"]["deploy"]["resources"]["reservations"]
    assert reservations == {
        "generic_resources": [{"discrete_resource_spec": {"kind": "NVIDIA-GPU", "value": 1}}]
    }
    assert "reservations" not in services["serve"]["deploy"]["resources"]
    assert "node-generic-resources" in (bundle / "stack.yaml").read_text()  # how to set it up
    # serve runs the model nodes: its service has the GPU, the node's not
    compose_doc, stack_doc = _documents(cuda_app(serve=True, node=False))
    assert compose_doc["services"]["serve"]["deploy"]["resources"]["reservations"] == {
        "devices": gpus
    }
    assert "resources" not in compose_doc["services"]["people-counter"]["deploy"]
    assert "generic_resources" in str(stack_doc["services"]["serve"]["deploy"])
    assert "nvidia" not in str(_documents(sample_app())) and "GPU" not in str(
        _documents(sample_app())
    )


def test_each_service_gets_only_its_own_secret(tmp_path: Path) -> None:
    app = _two_nodes(tmp_path)
    plain, stack = _documents(app)
    for document in (plain, stack):
        services = document["services"]
        owner = (
            {"uid": str(model.SERVE_UID), "gid": str(model.APP_GID), "mode": 0o400}
            if document is stack
            else {}
        )
        assert services["serve"]["secrets"] == [
            {"source": "camera-lobby", "target": "camera-lobby", **owner},
            {"source": "control.key", "target": "control.key", **owner},
            {"source": "serve-token", "target": "serve-token", **owner},
        ]
        node_owner = {**owner, "uid": str(model.NODE_UID_BASE)} if owner else {}
        assert services["people-counter"]["secrets"] == [
            {"source": "node-people-counter.token", "target": "node.token", **node_owner}
        ]
        other_owner = {**owner, "uid": str(model.NODE_UID_BASE + 1)} if owner else {}
        assert services["other-node"]["secrets"] == [
            {"source": "node-other-node.token", "target": "node.token", **other_owner}
        ]
        for name in ("people-counter", "other-node"):
            entry = services[name]["entrypoint"]
            assert f"PANORAMA_LOCALRUN_TOKEN_FILE={model.NODE_TOKEN_FILE}" in entry
    serve_args = plain["services"]["serve"]["command"]
    assert serve_args[serve_args.index("--control-key") + 1] == model.CONTROL_KEY_FILE
    assert serve_args[serve_args.index("--auth-token-file") + 1] == model.SERVE_TOKEN_FILE

    bundle = tmp_path / "bundle"
    write_bundle(bundle, compose.render(app), app)
    secrets = bundle / "secrets"
    assert secrets.stat().st_mode & 0o777 == 0o700
    key = identity.read_key(secrets / "control.key")
    # Compose bind-mounts each file as it is: 0644 for serve's user without capabilities,
    # in the 0700 folder that keeps the box's other users out
    assert key == KEY and (secrets / "control.key").stat().st_mode & 0o777 == 0o644
    assert (secrets / "serve-token").read_text() == SERVE_TOKEN + "\n"
    assert (secrets / "serve-token").stat().st_mode & 0o777 == 0o644
    for node, label in (("people_counter", "people-counter"), ("other_node", "other-node")):
        path = secrets / f"node-{label}.token"
        token = path.read_text()
        assert identity.token_matches(key, node, token)
        other = "other_node" if node == "people_counter" else "people_counter"
        assert not identity.token_matches(key, other, token)
        # the node's root has no capabilities: readable by it, the folder keeps others out
        assert path.stat().st_mode & 0o777 == 0o644
    # no key or token in the files the engine reads or anyone may read
    values = [KEY.hex(), SERVE_TOKEN,
              *(identity.node_token(KEY, n) for n in ("people_counter", "other_node"))]  # fmt: skip
    for name in (compose.FILE_NAME, compose.STACK_FILE_NAME):
        text = (bundle / name).read_text()
        assert not [v for v in values if v in text]


def test_the_bundle_key_is_kept_across_exports(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    first = bundle_key(bundle)  # no bundle yet: a new key
    assert len(first) == identity.KEY_BYTES and first != bundle_key(tmp_path / "elsewhere")
    app = sample_app(files=())
    write_bundle(bundle, [key_file(app)], app)
    assert bundle_key(bundle) == KEY  # export again: the same key, the same tokens
    (bundle / model.CONTROL_KEY_BUNDLE_FILE).unlink()
    os.symlink("/etc/hostname", bundle / model.CONTROL_KEY_BUNDLE_FILE)
    with pytest.raises(UserError, match="control key"):
        bundle_key(bundle)  # never followed


def test_the_serve_token_is_kept_across_exports(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    first = bundle_serve_token(bundle)  # no bundle yet: a new token
    assert len(first) >= 43 and first != bundle_serve_token(tmp_path / "elsewhere")
    app = sample_app(files=())
    write_bundle(bundle, [serve_token_file(app)], app)
    assert (bundle / model.SERVE_TOKEN_BUNDLE_FILE).stat().st_mode & 0o777 == 0o600
    assert bundle_serve_token(bundle) == SERVE_TOKEN  # export again: the same token
    (bundle / model.SERVE_TOKEN_BUNDLE_FILE).write_text("short\n")
    with pytest.raises(UserError, match="holds no token"):
        bundle_serve_token(bundle)


def test_a_bad_size_is_one_line(tmp_path: Path) -> None:
    result = run_cli(["export", "--target", "compose", "--output-dir", str(tmp_path / "o"),
                      "--node-memory", "lots"], cwd=tmp_path)  # fmt: skip
    assert result.exit_code == 2
    assert "--node-memory" in result.stderr and "a size such as 512M" in result.stderr
    assert "Traceback" not in result.stderr
