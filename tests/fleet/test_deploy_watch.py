"""``deploy`` that sees what the engine sees, without an engine of its own: a Kubernetes
crash loop and a stuck image through the API double (the Pods as a kubelet reports them), a
Ctrl-C of a real ``python -m panorama_cli deploy`` process (what was applied, not the Panorama
service's message), ``--target`` without a default, the engine's own error lines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from panorama_cli.fleet import kubernetes
from panorama_cli.fleet.applied import Applied
from panorama_cli.fleet.compose_deploy import engine_error
from panorama_cli.fleet.compose_watch import clean_line
from panorama_cli.fleet.deploy import _greengrass_steps
from tests.fleet.sample_app import sample_app, without_camera_files
from tests.support.cli_runner import run_cli
from tests.support.kube_api import KubeApi
from tests.support.paths import REPO
from tests.support.signals import popen_interruptible

WORKLOAD = ("Deployment", "default", "people-counter-edge-1")
CRASH_LOG = (
    "Traceback (most recent call last):\n"
    '  File "/panorama/app.py", line 1, in <module>\n'
    "    import onnxruntime\n"
    "ModuleNotFoundError: No module named 'onnxruntime'\x1b[2J\n"
)


def _kube_bundle(tmp_path: Path) -> Path:
    bundle = tmp_path / "k8s"
    bundle.mkdir()
    app = without_camera_files(sample_app(tmp_path))
    for out in kubernetes.render(app, device_names=["edge-1"]):
        (bundle / out.path).write_bytes(out.content)
    return bundle


def _deploy_kube(tmp_path: Path, server: KubeApi, *extra: str) -> Any:
    config = server.write_kubeconfig(tmp_path / "kubeconfig")
    return run_cli(
        ["deploy", "--target", "kubernetes", "--bundle", str(_kube_bundle(tmp_path)), "--wait",
         "--poll-interval", "0.1", *extra],
        cwd=tmp_path, env={"KUBECONFIG": str(config)},
    )  # fmt: skip


class _CrashingApi(KubeApi):
    """The double whose workload's Pod crash-loops as soon as the Deployment exists."""

    def __init__(self, container: str, **crash: Any) -> None:
        super().__init__(ready_after=None)
        self.container, self.crash = container, crash

    def _with_status(self, kind: str, stored: dict[str, Any], gets: int) -> dict[str, Any]:
        if kind == "Deployment" and not self.pods:
            self.crash_loop(stored, self.container, **self.crash)
        return super()._with_status(kind, stored, gets)


def test_a_kubernetes_crash_loop_fails_fast_with_the_container_its_exit_and_log(
    tmp_path: Path,
) -> None:
    t0 = time.monotonic()
    with _CrashingApi("people-counter", restarts=4, exit_code=1, log=CRASH_LOG) as server:
        result = _deploy_kube(tmp_path, server, "--timeout", "120")
    assert result.exit_code == 1, result.describe()
    assert time.monotonic() - t0 < 20  # not the 120 s timeout
    err = result.stderr
    assert "Deployment/people-counter-edge-1 does not start" in err
    assert "container people-counter of Pod people-counter-edge-1-5d9c7b-x2k4p crash-loops" in err
    assert "4 restarts, last exit code 1 (Error)" in err
    assert "ModuleNotFoundError: No module named 'onnxruntime'" in err
    assert "\x1b" not in err  # the app's escape sequence never reaches the terminal
    assert "Traceback" in err and "kubectl logs --previous" in err


def test_a_kubernetes_image_that_cannot_be_pulled_is_the_kubelets_words(tmp_path: Path) -> None:
    message = 'Back-off pulling image "registry.example/pc-serve:0123"'
    with _CrashingApi("serve", restarts=0, waiting="ImagePullBackOff", message=message) as server:
        result = _deploy_kube(tmp_path, server, "--timeout", "120")
    assert result.exit_code == 1, result.describe()
    assert f"container serve of Pod people-counter-edge-1-5d9c7b-x2k4p cannot start: " \
           f"ImagePullBackOff ({message})" in result.stderr  # fmt: skip


def test_a_few_restarts_while_serve_starts_are_not_a_crash_loop(tmp_path: Path) -> None:
    """A node restarted twice (serve's socket was not up yet) and running again: the wait goes
    on to the workload's readiness."""
    with _CrashingApi("people-counter", restarts=2) as server:
        server.ready_after = 3
        result = _deploy_kube(tmp_path, server, "--timeout", "30")
    assert result.exit_code == 0, result.describe()


def test_ctrl_c_during_a_fleet_deploy_says_what_was_applied(tmp_path: Path) -> None:
    """SIGINT to a real ``python -m panorama_cli deploy --target kubernetes --wait`` process
    (SIGINT reset to its default in the child: a background shell ignores it)."""
    bundle = _kube_bundle(tmp_path)
    with KubeApi(ready_after=None) as server:  # never ready: the deploy waits
        config = server.write_kubeconfig(tmp_path / "kubeconfig")
        env = {**os.environ, "KUBECONFIG": str(config), "PYTHONPATH": str(REPO)}
        process = popen_interruptible(
            [sys.executable, "-m", "panorama_cli", "deploy", "--target", "kubernetes",
             "--bundle", str(bundle), "--wait", "--poll-interval", "0.2", "--timeout", "300"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not any(c.method == "GET" and "deployments" in c.path for c in server.calls):
                assert time.monotonic() < deadline and process.poll() is None, "no wait"
                time.sleep(0.05)
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 130, err
    assert "CreateApplicationInstance" not in err and "Traceback" not in err
    [line] = [x for x in err.splitlines() if "interrupted" in x]
    assert "interrupted; applied: Secret/people-counter-secrets" in line
    assert "Deployment/people-counter-edge-1" in line
    assert "the cluster goes on rolling them out" in line
    assert f"to take it back: kubectl delete -f {bundle}/people-counter-secret.yaml" in line


def test_deploy_needs_a_target_and_names_them(tmp_path: Path) -> None:
    result = run_cli(["deploy", "--bundle", "fleet"], cwd=tmp_path)
    assert result.exit_code == 2, result.describe()
    assert "deploy needs --target: one of compose|swarm|kubernetes|greengrass|panorama" in (
        result.stderr
    )
    result = run_cli(["deploy", "--device-id", "device-0123", "--name", "pc"], cwd=tmp_path)
    assert result.exit_code == 2 and "--target panorama" in result.stderr, result.describe()


def test_the_engines_error_lines_are_shown_as_they_are() -> None:
    stderr = (
        'Creating network "gputest_default" with the default driver\n'
        "Creating gputest_serve_1 ... \n"
        "Creating gputest_serve_1 ... error\n\n"
        "ERROR: for gputest_serve_1  Cannot start service serve: could not select device "
        'driver "nvidia" with capabilities: [[gpu]]\n\n'
        "ERROR: for serve  Cannot start service serve: could not select device driver "
        '"nvidia" with capabilities: [[gpu]]\n'
        "Encountered errors while bringing up the project.\n"
    )
    assert engine_error(stderr) == (
        "ERROR: for gputest_serve_1  Cannot start service serve: could not select device "
        'driver "nvidia" with capabilities: [[gpu]]\n'
        "Encountered errors while bringing up the project."
    )
    assert engine_error(" [+] Running 1/1\n Container x Started\n") == ""


def test_log_lines_lose_their_control_characters() -> None:
    assert clean_line("a\x1b[31mred\x07\tb") == "a[31mred b"
    assert clean_line("x" * 1000).endswith("...") and len(clean_line("x" * 1000)) == 303


def test_what_was_applied_reads_as_one_line() -> None:
    assert Applied().note() == "nothing was applied"
    applied = Applied(undo="panorama-cli deploy --target compose --bundle fleet --down")
    applied.begin("docker compose up of project pc")
    assert applied.note() == (
        "docker compose up of project pc was under way and may be partly applied; to take it "
        "back: panorama-cli deploy --target compose --bundle fleet --down"
    )
    record = _greengrass_steps(steps := Applied(), "arn:aws:iot:us-east-1:1:thinggroup/stores")
    for line in ("uploading a.tar (3 bytes) to s3://b", "uploading b.tar (3 bytes) to s3://b",
                 "component com.x.pc@1.0.3 created", "deployment d-123 created for arn:x"):  # fmt: skip
        record(line)
    assert steps.done == [
        "artifacts uploaded to S3",
        "component com.x.pc@1.0.3",
        "deployment d-123 for arn:aws:iot:us-east-1:1:thinggroup/stores",
    ]
    assert "aws greengrassv2 cancel-deployment --deployment-id d-123" in steps.note()
    assert json.dumps(steps.note())  # one line of text


def test_a_timeout_names_the_log_of_the_node_serve_waits_for() -> None:
    from panorama_cli.fleet.compose_deploy import _service_of

    assert _service_of("node code_node is starting") == "code-node"
    assert _service_of("camera front_camera is not connected") == "serve"
    assert _service_of("starting") == "serve"
