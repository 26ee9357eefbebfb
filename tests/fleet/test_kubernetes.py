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
from panorama_cli.localrun.apps.limits import NodeLimits
from panorama_cli.localrun.frames import identity
from tests.fleet.sample_app import KEY, SERVE_TOKEN, without_camera_files, without_camera_secrets
from tests.fleet.sample_app import cuda_app as full_cuda_app
from tests.fleet.sample_app import sample_app as full_sample_app


def sample_app(tmp: Any = None, **changes: Any) -> FleetApp:
    """The sample without its camera file (one needs ``storage="hostpath"`` here)."""
    return without_camera_files(full_sample_app(tmp, **changes))


def cuda_app(*, serve: bool = True, node: bool = False) -> FleetApp:
    """The sample with ``--device cuda`` (see :func:`tests.fleet.sample_app.cuda_app`)."""
    return without_camera_files(full_cuda_app(serve=serve, node=node))


SECRET_VALUE = "rtsp://admin:s3cret@10.0.0.5:554/stream1"


def no_secrets_app() -> FleetApp:
    return without_camera_secrets(sample_app())


CASES: dict[str, tuple[FleetApp, dict[str, Any]]] = {
    "devices": (sample_app(), {"device_names": ["edge-1", "Edge.Two"]}),
    "devices-hostpath": (sample_app(), {"device_names": ["edge-1"], "storage": "hostpath"}),
    "daemonset": (sample_app(), {"node_selector": {"panorama-cli/edge": "true"}}),
    "daemonset-every-node": (sample_app(), {"node_selector": {}}),
    "cuda": (cuda_app(), {"device_names": ["gpu-box"]}),
    "cuda-node": (cuda_app(serve=False, node=True), {"device_names": ["gpu-box"]}),
    "no-secrets": (no_secrets_app(), {"device_names": ["edge-1"]}),
    "bare": (
        without_camera_secrets(sample_app(), cameras={}, params={}, files=()),
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
    assert doc["kind"] == "Secret" and doc["metadata"]["name"] == "people-counter-secrets"
    token = identity.node_token(KEY, "people_counter")
    assert doc["stringData"] == {
        "lobby": SECRET_VALUE,
        "control-key": KEY.hex(),
        "serve-token": SERVE_TOKEN,
        "token-people-counter": token,
    }
    assert identity.token_matches(bytes.fromhex(doc["stringData"]["control-key"]),
                                  "people_counter", token)  # fmt: skip
    assert "Secret" not in {d["kind"] for d in documents(main.content)}
    # no key or token outside the Secret's file
    assert KEY.hex().encode() not in main.content and token.encode() not in main.content


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
    # serve's state 1Gi; the node's storage and logs share its storage limit (2G by default)
    sizes = {"state": "1Gi", "storage-people-counter": "1536Mi", "logs-people-counter": "512Mi"}
    for claim in claims:
        volume = claim["metadata"]["name"].split("-", 4)[-1]
        assert claim["spec"] == {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": sizes[volume]}},
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
        {"node_selector": {"a": "b"}, "storage": "hostpath"},
    ],
    ids=["deployment-hostpath", "daemonset-hostpath"],
)
def test_hostpath_storage(options: dict[str, Any]) -> None:
    main, _ = rendered(full_sample_app(), host_path_root="/data/pcli", **options)
    assert by_kind(main, "PersistentVolumeClaim") == []
    (workload,) = by_kind(main, "Deployment") + by_kind(main, "DaemonSet")
    vols = volumes(workload)
    for volume in ("logs-people-counter", "state", "storage-people-counter"):
        assert vols[volume]["hostPath"] == {
            "path": f"/data/pcli/people-counter/{volume}",
            "type": "DirectoryOrCreate",
        }


def test_daemonset_without_hostpath_keeps_storage_in_emptydirs() -> None:
    main, _ = rendered(sample_app(), node_selector={"a": "b"})
    vols = volumes(by_kind(main, "DaemonSet")[0])
    assert not [v for v in vols.values() if "hostPath" in v]
    assert vols["storage-people-counter"]["emptyDir"] == {"sizeLimit": "1536Mi"}
    assert vols["state"]["emptyDir"] == {"sizeLimit": "1Gi"}
    (service,) = by_kind(main, "Service")
    assert service["spec"]["clusterIP"] == "None"  # one DNS record per box's Pod


def test_a_camera_file_needs_host_path_storage() -> None:
    with pytest.raises(UsageError, match="--host-path-storage") as caught:
        render(full_sample_app(), device_names=["edge-1"])
    assert "rtsp://" in (caught.value.hint or "")


def test_a_service_not_a_host_port() -> None:
    """Clients reach serve through a ClusterIP Service (no hostPort on the box), whose names
    serve allows; --host-network publishes on the --listen address of the box too."""
    main, _ = rendered(sample_app(), device_names=["edge-1"], namespace="vision")
    (deployment,) = by_kind(main, "Deployment")
    serve = containers(deployment)["serve"]
    assert serve["ports"] == [
        {"name": "http", "containerPort": 8765, "protocol": "TCP"},
        {"name": "rtsp", "containerPort": 8554, "protocol": "TCP"},
    ]
    assert "hostNetwork" not in deployment["spec"]["template"]["spec"]
    (service,) = by_kind(main, "Service")
    assert service["metadata"]["name"] == "people-counter-edge-1"
    assert service["spec"]["type"] == "ClusterIP" and "clusterIP" not in service["spec"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        (8765, "http"),
        (8554, "rtsp"),
    ]
    args = serve["args"]
    allowed = {args[i + 1] for i, a in enumerate(args) if a == "--allowed-host"}
    assert allowed == {
        "people-counter-edge-1",
        "people-counter-edge-1.vision",
        "people-counter-edge-1.vision.svc",
        "people-counter-edge-1.vision.svc.cluster.local",
    }
    app = sample_app(listen_host="10.0.0.7", listen_port=18765)
    main, _ = rendered(app, device_names=["edge-1"], host_network=True)
    serve = containers(by_kind(main, "Deployment")[0])["serve"]
    assert serve["ports"][0] == {
        "name": "http", "containerPort": 8765, "protocol": "TCP", "hostPort": 8765,
        "hostIP": "10.0.0.7",
    }  # fmt: skip


def test_node_selector_gives_one_daemonset() -> None:
    main, _ = rendered(sample_app(), node_selector={"panorama-cli/edge": "true"})
    assert by_kind(main, "Deployment") == []
    (daemonset,) = by_kind(main, "DaemonSet")
    assert daemonset["metadata"]["name"] == "people-counter"
    assert daemonset["spec"]["template"]["spec"]["nodeSelector"] == {"panorama-cli/edge": "true"}
    assert "replicas" not in daemonset["spec"]


def test_one_pod_holds_serve_and_every_node() -> None:
    app = full_sample_app()
    main, _ = rendered(app, device_names=["edge-1"], bundle_path="/srv/bundle", storage="hostpath")
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
    assert {p["containerPort"] for p in serve["ports"]} == {8765, 8554}
    assert not [p for p in serve["ports"] if "hostPort" in p]
    assert serve["resources"] == {
        "requests": {"memory": "256Mi", "cpu": "250m"},
        "limits": {"memory": "8Gi", "cpu": "2"},
    }
    for container, uid in ((serve, model.SERVE_UID), (node, model.NODE_UID_BASE)):
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": model.APP_GID,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        }
    pod_security = deployment["spec"]["template"]["spec"]["securityContext"]
    assert pod_security["runAsNonRoot"] is True and pod_security["fsGroup"] == model.APP_GID
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert node["command"] == list(app.nodes[0].command) and node["workingDir"] == "/"
    assert "livenessProbe" not in node

    mounts = {name: {m["mountPath"]: m for m in c["volumeMounts"]} for name, c in pod.items()}
    vols = volumes(deployment)
    for name in pod:  # the control socket in every container (the nodes may not replace it)
        assert "/dev/shm" not in mounts[name]  # frame rings travel as descriptors
        assert mounts[name][model.CONTROL_DIR]["name"] == "control"
    assert mounts["people-counter"][model.CONTROL_DIR]["readOnly"] is True
    assert "readOnly" not in mounts["serve"][model.CONTROL_DIR]
    assert "shm" not in vols
    assert vols["control"]["emptyDir"] == {}
    tmp = mounts["people-counter"]["/tmp"]["name"]
    assert vols[tmp]["emptyDir"] == {"medium": "Memory", "sizeLimit": "256Mi"}
    assert mounts["serve"][model.PARAMS_DIR]["readOnly"] is True
    assert vols[mounts["serve"][model.PARAMS_DIR]["name"]]["configMap"] == {
        "name": "people-counter-params"
    }
    # serve mounts the cameras' credentials and the control key, the node only its own token
    secret = vols[mounts["serve"][model.SECRETS_DIR]["name"]]["secret"]
    assert secret == {
        "secretName": "people-counter-secrets",
        "items": [
            {"key": "lobby", "path": "camera-lobby"},
            {"key": "control-key", "path": "control.key"},
            {"key": "serve-token", "path": "serve-token"},
        ],
    }
    assert args[args.index("--auth-token-file") + 1] == model.SERVE_TOKEN_FILE
    assert (
        "--control-key" in args
        and args[args.index("--control-key") + 1] == "/run/secrets/control.key"
    )
    node_secret = vols[mounts["people-counter"][model.SECRETS_DIR]["name"]]["secret"]
    assert node_secret == {
        "secretName": "people-counter-secrets",
        "items": [{"key": "token-people-counter", "path": "node.token"}],
    }
    assert mounts["people-counter"][model.SECRETS_DIR]["readOnly"] is True
    assert "PANORAMA_LOCALRUN_TOKEN_FILE=/run/secrets/node.token" in node["command"]
    secret_volumes = [v for v in vols.values() if "secret" in v]
    assert len(secret_volumes) == 2  # one per container, no volume with every key
    cameras = mounts["serve"][model.CAMERAS_DIR]
    assert cameras["readOnly"] is True
    assert vols[cameras["name"]]["hostPath"] == {"path": "/srv/bundle/cameras", "type": "Directory"}
    (config_map,) = by_kind(main, "ConfigMap")
    assert config_map["metadata"]["name"] == "people-counter-params"
    assert config_map["data"] == {"threshold": "0.6"}


def test_default_bundle_path_and_namespace() -> None:
    main, secret = rendered(
        full_sample_app(), device_names=["edge-1"], namespace="vision", storage="hostpath"
    )
    assert {d["metadata"]["namespace"] for d in main + secret} == {"vision"}
    vols = volumes(by_kind(main, "Deployment")[0])
    assert vols["bundle"]["hostPath"]["path"] == "/opt/panorama-cli/bundles/people-counter/cameras"


def test_cuda_gives_serve_a_gpu() -> None:
    main, _ = rendered(cuda_app(), device_names=["gpu-box"])
    pod = containers(by_kind(main, "Deployment")[0])
    assert pod["serve"]["resources"]["limits"] == {"memory": "8Gi", "cpu": "2", "nvidia.com/gpu": 1}
    assert pod["people-counter"]["resources"] == {
        "requests": {"memory": "256Mi", "cpu": "250m"},
        "limits": {"memory": "4Gi", "cpu": "1"},
    }


def test_cuda_gives_the_app_container_a_gpu() -> None:
    """An app that runs its models itself (no model node): its container gets the GPU, serve
    (no model to run) none; a CPU export gives nobody one."""
    for make in (lambda: rendered(cuda_app(serve=False, node=True), device_names=["gpu-box"]),
                 lambda: rendered(cuda_app(serve=False, node=True),
                                  node_selector={"gpu": "true"})):  # fmt: skip
        main, _ = make()
        workload = [d for d in main if d["kind"] in ("Deployment", "DaemonSet")][0]
        pod = containers(workload)
        assert pod["people-counter"]["resources"]["limits"] == {
            "memory": "4Gi",
            "cpu": "1",
            "nvidia.com/gpu": 1,
        }
        assert "nvidia.com/gpu" not in pod["serve"]["resources"]["limits"]
    main, _ = rendered(sample_app(), device_names=["edge-1"])
    assert "nvidia.com/gpu" not in str(main)


@pytest.mark.parametrize(
    ("limits", "memory", "requested", "tmp", "storage", "logs"),
    [
        (None, "4Gi", "256Mi", "256Mi", "1536Mi", "512Mi"),
        (NodeLimits(memory=128 << 20, pids=64, storage=8 << 30), "128Mi", "128Mi", "128Mi",
         "6Gi", "2Gi"),
    ],
    ids=["defaults", "explicit"],
)  # fmt: skip
def test_node_limits(
    limits: NodeLimits | None, memory: str, requested: str, tmp: str, storage: str, logs: str
) -> None:
    """Memory limit (and a request a small box can take), /tmp size, claims sharing storage;
    no pids field: Kubernetes bounds pids per Pod with the kubelet's podPidsLimit."""
    main, _ = rendered(sample_app(limits=limits), device_names=["edge-1"])
    (deployment,) = by_kind(main, "Deployment")
    node = containers(deployment)["people-counter"]
    assert node["resources"] == {
        "requests": {"memory": requested, "cpu": "250m"},
        "limits": {"memory": memory, "cpu": "1"},
    }
    vols = volumes(deployment)
    tmp_volume = next(m["name"] for m in node["volumeMounts"] if m["mountPath"] == "/tmp")
    assert vols[tmp_volume]["emptyDir"]["sizeLimit"] == tmp
    claims = {c["metadata"]["name"]: c["spec"]["resources"]["requests"]["storage"]
              for c in by_kind(main, "PersistentVolumeClaim")}  # fmt: skip
    assert claims["people-counter-edge-1-storage-people-counter"] == storage
    assert claims["people-counter-edge-1-logs-people-counter"] == logs
    assert containers(deployment)["serve"]["resources"]["limits"]["memory"] == "8Gi"  # its own
    for document in main:
        kubernetes_validate.validate(document, "1.30", strict=True)


def test_without_secrets_or_params_nothing_refers_to_them() -> None:
    app = without_camera_secrets(sample_app(), cameras={}, params={}, files=())
    out = render(app, device_names=["edge-1"])
    # the Secret file stays: the control key and the node's token are in it
    assert [f.path for f in out] == ["people-counter.yaml", "people-counter-secret.yaml"]
    main = documents(out[0].content)
    assert by_kind(main, "ConfigMap") == []
    vols = volumes(by_kind(main, "Deployment")[0])
    assert not {"params", "bundle"} & set(vols)
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
