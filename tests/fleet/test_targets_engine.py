"""The real app's bundles for Kubernetes and AWS IoT Greengrass v2, checked for real.

* kubernetes: export of the built project (an RTSP camera with credentials) validates against
  the official 1.30 schemas (strict); the credentials are only in the 0600 Secret file.
* greengrass: export with ``--registry`` (docker: artifacts), then the recipe's Lifecycle Run
  and Shutdown scripts run with /bin/sh against this engine with the substitutions the nucleus
  makes: the secret fetcher (the real module in the real serve image, with the SDK stand-in
  in front of the AWS IoT Device SDK and the stand-in nucleus' socket) writes the credentials,
  serve and the node start, serve gets ready and counts frames of the camera file (an
  artifact), and Shutdown leaves no container of the component.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from panorama_cli.fleet import greengrass, greengrass_secret
from tests.fleet.engine_support import cli, free_port, get, metric, until
from tests.fleet.test_greengrass_lifecycle import _merge, build, fetcher_files, resolve
from tests.localrun.helpers import video
from tests.support.greengrass_ipc import write_nucleus

pytestmark = pytest.mark.docker


def test_kubernetes_bundle_of_the_real_app_is_valid(
    project: Path, base_image_amd64: str, tmp_path: Path
) -> None:
    import kubernetes_validate

    out = tmp_path / "k8s"
    secret = "rtsp://admin:hunter2@10.0.0.9:554/stream1"
    cli(project, "export", "--target", "kubernetes", "--output-dir", str(out), "--camera",
        f"front_camera={secret}", "--device-name", "edge-box-1", "--device-name", "edge-box-2", "--param", "threshold=3",
        "--runtime-base", base_image_amd64)  # fmt: skip
    manifests = sorted(out.glob("*.yaml"))
    main = [p for p in manifests if not p.name.endswith("-secret.yaml")]
    assert len(main) == 1 and "hunter2" not in main[0].read_text()
    secret_file = next(p for p in manifests if p.name.endswith("-secret.yaml"))
    assert secret_file.stat().st_mode & 0o777 == 0o600
    kinds = []
    for path in manifests:
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                kubernetes_validate.validate(document, "1.30", strict=True)
                kinds.append(document["kind"])
    assert kinds.count("Deployment") == 2 and "Secret" in kinds and "ConfigMap" in kinds


def _step(step: dict[str, Any], where: dict[str, Any]) -> dict[str, str]:
    import os

    env = {**os.environ, **where["nucleus"]}
    for key, value in (step.get("Setenv") or {}).items():
        env[key] = resolve(
            value, thing="edge-1", **{k: v for k, v in where.items() if k != "nucleus"}
        )
    return env


def test_greengrass_lifecycle_runs_the_real_app(
    project: Path, registry: str, docker_client: Any, base_image_amd64: str, tmp_path: Path
) -> None:
    out = tmp_path / "gg"
    port = free_port()
    cli(project, "export", "--target", "greengrass", "--output-dir", str(out), "--camera",
        f"front_camera={video()}", "--listen", f"0.0.0.0:{port}", "--rtsp-port", "0",
        "--registry", f"{registry}/gg", "--runtime-base", base_image_amd64)  # fmt: skip
    (recipe_path,) = sorted((out / "recipes").glob("*.json"))
    recipe = json.loads(recipe_path.read_text())
    name = recipe["ComponentName"]
    manifest = recipe["Manifests"][0]
    uris = [a["Uri"] for a in manifest["Artifacts"]]
    assert sum(u.startswith(f"docker:{registry}/gg/") for u in uris) == 2
    artifacts = tmp_path / "artifacts"  # what the nucleus downloads: files flat by name
    artifacts.mkdir()
    for path in (out / "cameras").iterdir():
        (artifacts / path.name).write_bytes(path.read_bytes())
    work = tmp_path / "work"
    work.mkdir()
    # what deploy makes: the secret (the control key and the node's token, no secret camera
    # here) on the device, the component's configuration naming it
    control = json.loads((out / greengrass.CONTROL_FILE).read_text())
    assert len(control["tokens"]) == 1
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:panorama-cli/x-AbCdEf"
    value = greengrass_secret.secret_value({}, control)
    recipe = greengrass.fill_secret(recipe, arn)
    manifest = recipe["Manifests"][0]
    where = {
        "artifacts": artifacts,
        "work": work,
        "config": _merge(
            recipe["ComponentConfiguration"]["DefaultConfiguration"],
            greengrass.secret_configuration(name, arn),
        ),
        "nucleus": write_nucleus(tmp_path / "ipc.socket", {arn: value}),
    }
    # the serve image with the SDK stand-in in front of the AWS IoT Device SDK
    serve = next(u[len("docker:") :] for u in uris if "-serve:" in u)
    awsiot = {k: v for k, v in fetcher_files().items() if k.startswith("lib/awsiot/")}
    lines = [f"FROM {serve}", "COPY lib /opt/panorama-cli/sdk-stand-in",
             "ENV PYTHONPATH=/opt/panorama-cli/sdk-stand-in:/opt/panorama-cli/runtime/lib"]  # fmt: skip
    build(docker_client, serve, lines, awsiot)
    lifecycle = manifest["Lifecycle"]
    label = {"label": f"{greengrass.LABEL_COMPONENT}={name}"}
    for step in ("Install",):
        if step in lifecycle:
            done = subprocess.run(["/bin/sh", "-c", lifecycle[step]["Script"]],
                                  env=_step(lifecycle[step], where), capture_output=True,
                                  text=True, timeout=600)  # fmt: skip
            assert done.returncode == 0, done.stderr
    run = subprocess.Popen(["/bin/sh", "-c", lifecycle["Run"]["Script"]],
                           env=_step(lifecycle["Run"], where), stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        until(lambda: get(port, "/readyz")[0] == 200 or run.poll() is not None, 180, "ready")
        assert run.poll() is None, run.stderr.read() if run.stderr else ""
        token = control["serve"]  # what deploy merged; serve read it from its secret file
        assert get(port, "/metrics")[0] == 401
        until(lambda: metric(port, "panorama_camera_frames_total", token) > 10, 60, "frames")
        assert metric(port, "panorama_node_up", token) == 1.0
    finally:
        shutdown = subprocess.run(["/bin/sh", "-c", lifecycle["Shutdown"]["Script"]],
                                  env=_step(lifecycle["Shutdown"], where), capture_output=True,
                                  text=True, timeout=300)  # fmt: skip
        run.wait(60)
        left = docker_client.containers.list(all=True, filters=label)
        for container in left:
            container.remove(force=True)
        for volume in docker_client.volumes.list():
            if volume.name.startswith(name + "-"):
                volume.remove(force=True)
    assert shutdown.returncode == 0, shutdown.stderr
    assert left == []
