"""The Kubernetes bundle of the sample app against Pod Security *restricted*, checked by a
scanner: checkov's Kubernetes checks (https://www.checkov.io), the ones that map to the
restricted and baseline profiles (and the resource limits), on every workload.

checkov runs from its own environment: its pins (``packaging<24``, ``boto3==1.35.x``) conflict
with the test extra's (pytest needs ``packaging>=24``), so it is not in ``.venv``. It is found
as ``$PANORAMA_CHECKOV``, ``checkov`` on ``PATH``, or ``/opt/panorama-ci/checkov-venv`` (where
``.ci/run`` installs it: ``python3 -m venv DIR && DIR/bin/pip install 'checkov>=3.2,<4'``).
checkov has no check for hostPath volumes other than the Docker socket's: that one rule is
asserted on the manifest itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from panorama_cli.fleet import kubernetes
from panorama_cli.fleet.export import write_bundle
from tests.fleet.sample_app import sample_app, without_camera_files

#: checkov's ids for what Pod Security restricted (and baseline, which it includes) demands of
#: a Pod, plus resource requests/limits: privileged (16), host PID/IPC/network (17/18/19),
#: allowPrivilegeEscalation (20), read-only root (22), runAsNonRoot (23), added capabilities
#: (25), hostPort (26), the Docker socket (27), NET_RAW (28), security contexts (29/30),
#: seccomp RuntimeDefault (31), capabilities dropped (37), service account token (38),
#: SYS_ADMIN (39), a high uid (40), CPU/memory requests and limits (10/11/12/13).
RESTRICTED = (
    "CKV_K8S_16", "CKV_K8S_17", "CKV_K8S_18", "CKV_K8S_19", "CKV_K8S_20", "CKV_K8S_22",
    "CKV_K8S_23", "CKV_K8S_25", "CKV_K8S_26", "CKV_K8S_27", "CKV_K8S_28", "CKV_K8S_29",
    "CKV_K8S_30", "CKV_K8S_31", "CKV_K8S_37", "CKV_K8S_38", "CKV_K8S_39", "CKV_K8S_40",
    "CKV_K8S_10", "CKV_K8S_11", "CKV_K8S_12", "CKV_K8S_13",
)  # fmt: skip
DEFAULT_VENV = Path("/opt/panorama-ci/checkov-venv/bin/checkov")


def _checkov() -> str:
    for found in (os.environ.get("PANORAMA_CHECKOV"), shutil.which("checkov")):
        if found:
            return found
    if DEFAULT_VENV.is_file():
        return str(DEFAULT_VENV)
    if os.environ.get("CI"):
        pytest.fail("checkov is not installed (.ci/run installs it)")
    pytest.skip("checkov is not installed (python3 -m venv V && V/bin/pip install checkov)")


def _scan(folder: Path) -> dict[str, dict[str, list[str]]]:
    """checkov on ``folder``: {"passed"|"failed": {check id: [resources]}}."""
    done = subprocess.run(
        [_checkov(), "--directory", str(folder), "--framework", "kubernetes", "--check",
         ",".join(RESTRICTED), "--output", "json", "--compact",
         "--skip-download"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr[-2000:]
    report: Any = json.loads(done.stdout) if done.stdout.strip() else {}
    if isinstance(report, list):
        report = next(r for r in report if r.get("check_type") == "kubernetes")
    results = report.get("results", {}) if isinstance(report, dict) else {}
    found: dict[str, dict[str, list[str]]] = {"passed": {}, "failed": {}}
    for kind, key in (("passed", "passed_checks"), ("failed", "failed_checks")):
        for check in results.get(key, []):
            found[kind].setdefault(check["check_id"], []).append(check["resource"])
    return found


def _bundle(folder: Path, **options: Any) -> list[dict[str, Any]]:
    app = without_camera_files(sample_app())
    write_bundle(folder, kubernetes.render(app, **options), app)
    return [d for p in sorted(folder.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text())]


def _workloads(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(
        f"{d['kind']}.{d['metadata']['namespace']}.{d['metadata']['name']}"
        for d in docs
        if d and d["kind"] in ("Deployment", "DaemonSet")
    )


@pytest.mark.parametrize(
    "options",
    [{"device_names": ["edge-1", "edge-2"]}, {"node_selector": {"panorama-cli/edge": "true"}}],
    ids=["deployments", "daemonset"],
)
def test_the_bundle_passes_the_restricted_checks(tmp_path: Path, options: dict[str, Any]) -> None:
    docs = _bundle(tmp_path / "k8s", **options)
    workloads = _workloads(docs)
    found = _scan(tmp_path / "k8s")
    assert found["failed"] == {}, found["failed"]
    for check in RESTRICTED:  # each check looked at each workload, and it passed
        assert sorted(found["passed"].get(check, [])) == workloads, check
    for doc in docs:  # the one restricted rule checkov has no check for
        volumes = (doc or {}).get("spec", {}).get("template", {}).get("spec", {}).get("volumes")
        assert not [v for v in volumes or [] if "hostPath" in v], doc["metadata"]["name"]


def test_host_network_is_what_the_scanner_catches(tmp_path: Path) -> None:
    """--host-network (hostPort) fails the scan: the scan is no formality."""
    _bundle(tmp_path / "k8s", device_names=["edge-1"], host_network=True)
    found = _scan(tmp_path / "k8s")
    assert list(found["failed"]) == ["CKV_K8S_26"]
