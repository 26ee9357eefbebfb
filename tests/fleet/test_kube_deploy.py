"""deploy to Kubernetes: server-side apply through the kubernetes client and the readiness wait,
against the API server double (tests/support/kube_api.py: real HTTP, 1.30 schema checks)."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from panorama_cli.errors import UserError
from panorama_cli.fleet.kube_deploy import deploy
from panorama_cli.fleet.kubernetes import render
from tests.fleet.sample_app import sample_app, without_camera_files
from tests.support.kube_api import KubeApi

DEPLOYMENT = "Deployment/people-counter-edge-1"


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KubeApi]:
    with KubeApi() as server:
        monkeypatch.setenv("KUBECONFIG", str(server.write_kubeconfig(tmp_path / "kubeconfig")))
        yield server


def export(tmp_path: Path, **options: Any) -> list[Path]:
    """The sample app rendered into tmp_path; the secret's file first."""
    options = options or {"device_names": ["edge-1"]}
    paths = []
    for file in sorted(
        render(without_camera_files(sample_app()), **options), key=lambda f: not f.private
    ):
        path = tmp_path / file.path
        path.write_bytes(file.content)
        paths.append(path)
    return paths


def test_apply_then_wait_until_ready(api: KubeApi, tmp_path: Path) -> None:
    lines: list[str] = []
    report = deploy(export(tmp_path), notify=lines.append, poll_s=0.01)
    assert report["applied"] == [
        "Secret/people-counter-secrets",
        "ConfigMap/people-counter-params",
        "PersistentVolumeClaim/people-counter-edge-1-logs-people-counter",
        "PersistentVolumeClaim/people-counter-edge-1-state",
        "PersistentVolumeClaim/people-counter-edge-1-storage-people-counter",
        DEPLOYMENT,
        "Service/people-counter-edge-1",
    ]
    assert report["ready"] == [DEPLOYMENT]
    assert isinstance(report["seconds"], float)
    assert lines == [f"applied {o}" for o in report["applied"]] + [f"ready {DEPLOYMENT}"]
    patches = [c for c in api.calls if c.method == "PATCH"]
    assert len(patches) == 7
    for call in patches:
        assert call.content_type == "application/apply-patch+yaml"
        assert call.query == {"fieldManager": "panorama-cli", "force": "true"}
        assert call.status == 201
    assert "/apis/apps/v1/namespaces/default/deployments/people-counter-edge-1" in {
        c.path for c in patches
    }
    secret = api.objects[("Secret", "default", "people-counter-secrets")]
    assert base64.b64decode(secret["data"]["lobby"]).decode().startswith("rtsp://admin:")
    assert (
        api.objects[("Deployment", "default", "people-counter-edge-1")]["metadata"]["generation"]
        == 1
    )


def test_waits_for_the_workloads_then_a_second_apply_changes_nothing(
    api: KubeApi, tmp_path: Path
) -> None:
    api.ready_after = 3
    manifests = export(tmp_path, node_selector={"panorama-cli/edge": "true"})
    report = deploy(manifests, poll_s=0.01)
    assert report["ready"] == ["DaemonSet/people-counter"]
    assert api.gets[("DaemonSet", "default", "people-counter")] == 4
    deploy(manifests, poll_s=0.01)
    daemonset = api.objects[("DaemonSet", "default", "people-counter")]
    assert daemonset["metadata"]["generation"] == 1  # the same spec: no new generation
    assert [c.status for c in api.calls if c.method == "PATCH"][-1] == 200


def test_namespace_from_the_option_then_the_context(
    api: KubeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy(export(tmp_path), namespace="vision", poll_s=0.01)
    assert ("Deployment", "vision", "people-counter-edge-1") in api.objects
    (tmp_path / "no-namespace").mkdir()
    manifests = export(tmp_path / "no-namespace")
    for path in manifests:  # objects without a namespace take the context's
        docs = list(yaml.safe_load_all(path.read_text()))
        for doc in docs:
            doc["metadata"].pop("namespace")
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    config = api.write_kubeconfig(tmp_path / "other", context="edge", namespace="factory")
    deploy(manifests, kubeconfig=config, context="edge", poll_s=0.01)
    assert ("ConfigMap", "factory", "people-counter-params") in api.objects


def test_an_object_the_server_rejects_is_named(api: KubeApi, tmp_path: Path) -> None:
    manifests = export(tmp_path)
    docs = list(yaml.safe_load_all(manifests[1].read_text()))
    workload = next(d for d in docs if d["kind"] == "Deployment")
    workload["spec"]["template"]["spec"]["containers"][0]["gpus"] = 1  # no such field
    manifests[1].write_text(yaml.safe_dump_all(docs, sort_keys=False))
    with pytest.raises(UserError) as caught:
        deploy(manifests, poll_s=0.01)
    message = str(caught.value)
    assert "\n" not in message
    assert f"applying {DEPLOYMENT}" in message and "answered 422" in message
    assert "gpus" in message
    assert ("Deployment", "default", "people-counter-edge-1") not in api.objects


def test_timeout_names_the_unready_object_and_why(api: KubeApi, tmp_path: Path) -> None:
    api.ready_after_for["people-counter-edge-2"] = None
    manifests = export(tmp_path, device_names=["edge-1", "edge-2"])
    with pytest.raises(UserError) as caught:
        deploy(manifests, timeout_s=0.3, poll_s=0.05)
    message = caught.value.message
    assert message.startswith("Deployment/people-counter-edge-2 not ready after 0.3 s: 0/1 ready")
    assert "MinimumReplicasUnavailable" in message and "edge-1" not in message
    assert "\n" not in str(caught.value)
    assert caught.value.hint and "people-counter-edge-2" in caught.value.hint


def test_an_api_server_that_does_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    config = KubeApi().write_kubeconfig(tmp_path / "kubeconfig", server=url)
    monkeypatch.setenv("KUBECONFIG", str(config))
    with pytest.raises(UserError) as caught:
        deploy(export(tmp_path), timeout_s=1)
    message = str(caught.value)
    assert "\n" not in message
    assert f"the Kubernetes API server {url} does not answer" in message
    assert "refused" in message.lower()


def test_unknown_context(api: KubeApi, tmp_path: Path) -> None:
    with pytest.raises(UserError) as caught:
        deploy(export(tmp_path), context="production")
    assert caught.value.message.startswith("no context 'production' in the kube config")
    assert caught.value.hint == "list them with: kubectl config get-contexts"


def test_no_kube_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(UserError) as caught:
        deploy(export(tmp_path))
    assert (
        "kube config" in caught.value.message and "No configuration found" in caught.value.message
    )
    assert caught.value.hint


def test_wrong_credentials(api: KubeApi, tmp_path: Path) -> None:
    api.token = "rotated"
    with pytest.raises(UserError) as caught:
        deploy(export(tmp_path))
    assert "answered 401" in caught.value.message
    assert caught.value.hint == "check the kube config's credentials"


def test_a_manifest_that_is_not_yaml(api: KubeApi, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: [unclosed\n")
    with pytest.raises(UserError, match=r"bad.yaml line \d+: not valid YAML"):
        deploy([bad])


def test_the_double_checks_what_the_real_server_checks(api: KubeApi) -> None:
    """A plain client: no fieldManager, another content type, an invalid object."""
    path = f"{api.url}/api/v1/namespaces/default/configmaps/c"
    good = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n"
    apply = {"Authorization": f"Bearer {api.token}", "Content-Type": "application/apply-patch+yaml"}
    with httpx.Client() as client:
        assert client.patch(path, content=good, headers=apply).status_code == 422  # no fieldManager
        merge = {**apply, "Content-Type": "application/merge-patch+json"}
        assert (
            client.patch(
                path, content="{}", params={"fieldManager": "t"}, headers=merge
            ).status_code
            == 415
        )
        bad = good.replace("data: {a: b}", "date: {a: b}")
        answer = client.patch(path, content=bad, params={"fieldManager": "t"}, headers=apply)
        assert answer.status_code == 422 and answer.json()["reason"] == "Invalid"
        assert (
            client.patch(
                path, content=good, params={"fieldManager": "t"}, headers=apply
            ).status_code
            == 201
        )
        assert client.get(path, headers=apply).json()["data"] == {"a": "b"}
        assert client.get(path).status_code == 401
