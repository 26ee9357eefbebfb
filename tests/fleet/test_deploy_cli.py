# ruff: noqa: F811 - the greengrass fixtures are imported by name
"""``panorama-cli deploy --target kubernetes|greengrass`` from the command line, against the
Kubernetes API double and the Greengrass v2 double (+ moto's S3): the command's flags reach the
engines, ``--wait`` waits, ``--json`` prints the report, a failure is one line and exit 1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from panorama_cli.fleet import kubernetes
from tests.fleet.sample_app import sample_app, without_camera_files
from tests.fleet.test_greengrass_deploy import (  # noqa: F401 - fixtures
    BUCKET,
    THING,
    _thing_arn,
    api,
    s3,
    session,
    write_bundle,
)
from tests.support.cli_runner import run_cli
from tests.support.greengrass_api import Outcome
from tests.support.kube_api import KubeApi


def _kube_bundle(tmp_path: Path) -> Path:
    bundle = tmp_path / "k8s"
    bundle.mkdir()
    for out in kubernetes.render(
        without_camera_files(sample_app(tmp_path)), device_names=["edge-1"]
    ):
        (bundle / out.path).write_bytes(out.content)
    return bundle


def test_kubernetes_apply_and_wait(tmp_path: Path) -> None:
    bundle = _kube_bundle(tmp_path)
    with KubeApi(ready_after=2) as server:
        config = server.write_kubeconfig(tmp_path / "kubeconfig", context="edge")
        result = run_cli(
            ["deploy", "--target", "kubernetes", "--bundle", str(bundle), "--context", "edge",
             "--wait", "--poll-interval", "0.1", "--json"],
            cwd=tmp_path, env={"KUBECONFIG": str(config)},
        )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert "Deployment/people-counter-edge-1" in report["ready"]
    assert "Secret/people-counter-secrets" in report["applied"]


def test_kubernetes_without_wait_only_applies(tmp_path: Path) -> None:
    bundle = _kube_bundle(tmp_path)
    with KubeApi(ready_after=None) as server:  # never ready: no --wait must not wait
        config = server.write_kubeconfig(tmp_path / "kubeconfig")
        result = run_cli(["deploy", "--target", "kubernetes", "--bundle", str(bundle), "--json"],
                         cwd=tmp_path, env={"KUBECONFIG": str(config)})  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["ready"] == []


def test_kubernetes_not_ready_is_one_line(tmp_path: Path) -> None:
    bundle = _kube_bundle(tmp_path)
    with KubeApi(ready_after=None) as server:
        config = server.write_kubeconfig(tmp_path / "kubeconfig")
        result = run_cli(
            ["deploy", "--target", "kubernetes", "--bundle", str(bundle), "--wait",
             "--timeout", "0.3", "--poll-interval", "0.1"],
            cwd=tmp_path, env={"KUBECONFIG": str(config)},
        )  # fmt: skip
    assert result.exit_code == 1
    assert "not ready" in result.stderr and "Traceback" not in result.stderr


def test_greengrass_deploy_and_wait(
    tmp_path: Path,
    aws_env: Any,
    api: Any,
    s3: Any,
) -> None:
    api.script(THING, Outcome(polls=2))
    bundle, name = write_bundle(tmp_path)
    result = run_cli(
        ["deploy", "--target", "greengrass", "--bundle", str(bundle), "--bucket", BUCKET,
         "--target-arn", _thing_arn(aws_env), "--wait", "--poll-interval", "0.1", "--json"],
        cwd=tmp_path,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "SUCCEEDED" and report["components"][0]["name"] == name
    assert api.calls_to("CreateDeployment")


def test_greengrass_failed_deployment_is_one_line(
    tmp_path: Path,
    aws_env: Any,
    api: Any,
    s3: Any,
) -> None:
    api.script(THING, Outcome(polls=1, status="FAILED", reason="docker load failed"))
    bundle, _ = write_bundle(tmp_path)
    result = run_cli(
        ["deploy", "--target", "greengrass", "--bundle", str(bundle), "--bucket", BUCKET,
         "--target-arn", _thing_arn(aws_env), "--wait", "--poll-interval", "0.1"],
        cwd=tmp_path,
    )  # fmt: skip
    assert result.exit_code == 1
    assert "docker load failed" in result.stderr and "Traceback" not in result.stderr
