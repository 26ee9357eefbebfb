"""The Kubernetes export: valid 1.30 objects (official schemas, strict), credentials only in the
Secret's file, the same bytes for the same app, and the usage errors."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from panorama_cli.errors import UsageError
from panorama_cli.fleet import model
from panorama_cli.fleet.kubernetes import render
from panorama_cli.fleet.model import FleetApp
from tests.fleet.sample_app import sample_app

SECRET_VALUE = "rtsp://admin:s3cret@10.0.0.5:554/stream1"


def no_secrets_app() -> FleetApp:
    app = sample_app()
    return sample_app(secrets=(), cameras={"front_door": app.cameras["front_door"]})


CASES: dict[str, tuple[FleetApp, dict[str, Any]]] = {
    "devices": (sample_app(), {"device_names": ["edge-1", "Edge.Two"]}),
    "devices-hostpath": (sample_app(), {"device_names": ["edge-1"], "storage": "hostpath"}),
    "daemonset": (sample_app(), {"node_selector": {"panorama-cli/edge": "true"}}),
    "daemonset-every-node": (sample_app(), {"node_selector": {}}),
    "cuda": (sample_app(device="cuda"), {"device_names": ["gpu-box"]}),
    "no-secrets": (no_secrets_app(), {"device_names": ["edge-1"]}),
    "bare": (
        sample_app(secrets=(), cameras={}, params={}, files=()),
        {"node_selector": {"a": "b"}},
    ),
    "namespace": (sample_app(), {"device_names": ["edge-1"], "namespace": "vision"}),
}


def documents(content: bytes) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(content) if d is not None]


def rendered(app: FleetApp, **options: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(documents of <app>.yaml, documents of <app>-secret.yaml)."""
    files = {f.path: f for f in render(app, **options)}
    main = documents(files.pop(f"{app.name}.yaml").content)
    secret = [d for f in files.values() for d in documents(f.content)]
    return main, secret


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def containers(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in workload["spec"]["template"]["spec"]["containers"]}


def volumes(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_document_is_valid_against_the_1_30_schemas(case: str) -> None:
    app, options = CASES[case]
    out = render(app, **options)
    assert [f.path for f in out] == [f"{app.name}.yaml"] + (
        [f"{app.name}-secret.yaml"] if app.secrets else []
    )
    for file in out:
        for doc in documents(file.content):
            kubernetes_validate.validate(doc, "1.30", strict=True)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_same_app_gives_the_same_bytes(case: str) -> None:
    app, options = CASES[case]
    assert render(app, **options) == render(app, **options)


def test_a_fresh_but_equal_app_gives_the_same_bytes() -> None:
    assert render(sample_app(), device_names=["a"]) == render(sample_app(), device_names=["a"])


def test_credentials_are_only_in_the_private_secret_file() -> None:
    out = {f.path: f for f in render(sample_app(), device_names=["edge-1"])}
    main, secret = out["people-counter.yaml"], out["people-counter-secret.yaml"]
    assert SECRET_VALUE.encode() not in main.content and b"s3cret" not in main.content
    assert not main.private and secret.private
    (doc,) = documents(secret.content)
    assert doc["kind"] == "Secret" and doc["metadata"]["name"] == "people-counter-cameras"
    assert doc["stringData"] == {"lobby": SECRET_VALUE}
    assert "Secret" not in {d["kind"] for d in documents(main.content)}


def test_one_deployment_per_device_pinned_to_its_node() -> None:
    main, _ = rendered(sample_app(), device_names=["edge-1", "Edge.Two"])
    deployments = by_kind(main, "Deployment")
    assert [d["metadata"]["name"] for d in deployments] == [
        "people-counter-edge-1",
        "people-counter-edge-two",
    ]
    for deployment, node in zip(deployments, ["edge-1", "Edge.Two"], strict=True):
        spec = deployment["spec"]
        assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
        assert spec["template"]["spec"]["nodeSelector"] == {"kubernetes.io/hostname": node}
        # the selector is each Deployment's own and has no version (it is immutable)
        assert spec["selector"]["matchLabels"] == {
            "app.kubernetes.io/name": "people-counter",
            "app.kubernetes.io/instance": deployment["metadata"]["name"],
        }
        labels = spec["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/version"] == "0123456789ab"
        assert labels["app.kubernetes.io/managed-by"] == "panorama-cli"
    assert by_kind(main, "DaemonSet") == []


def test_pvc_storage_gives_each_deployment_its_own_claims() -> None:
    main, _ = rendered(sample_app(), device_names=["edge-1", "edge-2"])
    claims = by_kind(main, "PersistentVolumeClaim")
    persistent = ["logs-people-counter", "state", "storage-people-counter"]
    assert sorted(c["metadata"]["name"] for c in claims) == sorted(
        f"people-counter-{d}-{v}" for d in ("edge-1", "edge-2") for v in persistent
    )
    for claim in claims:
        assert claim["spec"] == {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
        }
    deployment = by_kind(main, "Deployment")[1]
    vols = volumes(deployment)
    for volume in persistent:
        assert vols[volume]["persistentVolumeClaim"] == {
            "claimName": f"people-counter-edge-2-{volume}"
        }


@pytest.mark.parametrize(
    "options",
    [
        {"device_names": ["edge-1"], "storage": "hostpath"},
        {"node_selector": {"a": "b"}, "storage": "pvc"},
    ],
    ids=["deployment-hostpath", "daemonset-always-hostpath"],
)
def test_hostpath_storage(options: dict[str, Any]) -> None:
    main, _ = rendered(sample_app(), host_path_root="/data/pcli", **options)
    assert by_kind(main, "PersistentVolumeClaim") == []
    (workload,) = by_kind(main, "Deployment") + by_kind(main, "DaemonSet")
    vols = volumes(workload)
    for volume in ("logs-people-counter", "state", "storage-people-counter"):
        assert vols[volume]["hostPath"] == {
            "path": f"/data/pcli/people-counter/{volume}",
            "type": "DirectoryOrCreate",
        }


def test_node_selector_gives_one_daemonset() -> None:
    main, _ = rendered(sample_app(), node_selector={"panorama-cli/edge": "true"})
    assert by_kind(main, "Deployment") == []
    (daemonset,) = by_kind(main, "DaemonSet")
    assert daemonset["metadata"]["name"] == "people-counter"
    assert daemonset["spec"]["template"]["spec"]["nodeSelector"] == {"panorama-cli/edge": "true"}
    assert "replicas" not in daemonset["spec"]


def test_one_pod_holds_serve_and_every_node() -> None:
    app = sample_app()
    main, _ = rendered(app, device_names=["edge-1"], bundle_path="/srv/bundle")
    (deployment,) = by_kind(main, "Deployment")
    pod = containers(deployment)
    assert list(pod) == ["serve", "people-counter"]
    serve, node = pod["serve"], pod["people-counter"]
    assert serve["image"] == app.serve.image and "command" not in serve
    args = serve["args"]
    assert args[: len(app.serve.args)] == list(app.serve.args)
    assert "front_door=/opt/panorama-cli/cameras/front_door.avi" in args
    assert "lobby=@/run/secrets/camera-lobby" in args
    assert args[args.index("--param") + 1] == f"threshold=@{model.PARAMS_DIR}/threshold"
    assert serve["workingDir"] == model.PROJECT_DIR
    assert serve["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": model.HTTP_PORT}
    assert serve["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": model.HTTP_PORT}
    assert {(p["containerPort"], p["hostPort"]) for p in serve["ports"]} == {
        (8765, 8765),
        (8554, 8554),
    }
    assert "resources" not in serve
    assert serve["securityContext"] == {"allowPrivilegeEscalation": False}
    assert node["command"] == list(app.nodes[0].command) and node["workingDir"] == "/"
    assert node["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert "livenessProbe" not in node

    mounts = {name: {m["mountPath"]: m for m in c["volumeMounts"]} for name, c in pod.items()}
    vols = volumes(deployment)
    for name in pod:  # shared memory and the control socket in every container
        assert mounts[name]["/dev/shm"]["name"] == "shm"
        assert mounts[name][model.CONTROL_DIR]["name"] == "control"
    assert vols["shm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}
    assert vols["control"]["emptyDir"] == {}
    tmp = mounts["people-counter"]["/tmp"]["name"]
    assert vols[tmp]["emptyDir"] == {"medium": "Memory"}
    assert mounts["serve"][model.PARAMS_DIR]["readOnly"] is True
    assert vols[mounts["serve"][model.PARAMS_DIR]["name"]]["configMap"] == {
        "name": "people-counter-params"
    }
    secret = vols[mounts["serve"][model.SECRETS_DIR]["name"]]["secret"]
    assert secret == {
        "secretName": "people-counter-cameras",
        "items": [{"key": "lobby", "path": "camera-lobby"}],
    }
    cameras = mounts["serve"][model.CAMERAS_DIR]
    assert cameras["readOnly"] is True
    assert vols[cameras["name"]]["hostPath"] == {"path": "/srv/bundle/cameras", "type": "Directory"}
    (config_map,) = by_kind(main, "ConfigMap")
    assert config_map["metadata"]["name"] == "people-counter-params"
    assert config_map["data"] == {"threshold": "0.6"}


def test_default_bundle_path_and_namespace() -> None:
    main, secret = rendered(sample_app(), device_names=["edge-1"], namespace="vision")
    assert {d["metadata"]["namespace"] for d in main + secret} == {"vision"}
    vols = volumes(by_kind(main, "Deployment")[0])
    assert vols["bundle"]["hostPath"]["path"] == "/opt/panorama-cli/bundles/people-counter/cameras"


def test_cuda_gives_serve_a_gpu() -> None:
    main, _ = rendered(sample_app(device="cuda"), device_names=["gpu-box"])
    pod = containers(by_kind(main, "Deployment")[0])
    assert pod["serve"]["resources"] == {"limits": {"nvidia.com/gpu": 1}}
    assert "resources" not in pod["people-counter"]


def test_without_secrets_or_params_nothing_refers_to_them() -> None:
    app = sample_app(secrets=(), cameras={}, params={}, files=())
    out = render(app, device_names=["edge-1"])
    assert [f.path for f in out] == ["people-counter.yaml"]
    main = documents(out[0].content)
    assert by_kind(main, "ConfigMap") == []
    vols = volumes(by_kind(main, "Deployment")[0])
    assert not {"params", "secrets", "bundle"} & set(vols)
    assert "--camera" not in containers(by_kind(main, "Deployment")[0])["serve"]["args"]


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({}, "neither given"),
        ({"device_names": ["a"], "node_selector": {"a": "b"}}, "both given"),
        ({"device_names": "edge-1"}, "must be a list"),
        ({"device_names": ["a"], "storage": "nfs"}, "unknown kubernetes storage 'nfs'"),
        (
            {"device_names": ["a"], "host_path_root": "data"},
            "host path root 'data' is not absolute",
        ),
        ({"device_names": ["a"], "bundle_path": "bundle"}, "bundle path 'bundle' is not absolute"),
        (
            {"device_names": ["a"], "namespace": "Vision_1"},
            "namespace 'Vision_1' is not a DNS label",
        ),
        ({"device_names": ["a", "a"]}, "named twice"),
        ({"device_names": [""]}, "empty device name"),
        ({"device_names": ["Edge.1", "edge-1"]}, "same Deployment name twice"),
    ],
)
def test_usage_errors(options: dict[str, Any], needle: str) -> None:
    with pytest.raises(UsageError) as caught:
        render(sample_app(), **options)
    assert needle in caught.value.message
    assert caught.value.hint and caught.value.exit_code == 2
