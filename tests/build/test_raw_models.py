"""add-raw-model: local and S3 (moto server on loopback) model archives as assets."""

import json

import pytest

from tests.support import official
from tests.support.project_helpers import (
    load,
    make_model_archive,
    model_descriptor,
    run,
    sha256,
    snapshot,
)

ACCOUNT = "111122223333"


@pytest.fixture
def project(tmp_path):
    assert run(tmp_path, "init-project", "--name", "p", "--account-id", ACCOUNT).exit_code == 0
    root = tmp_path / "p"
    assert run(root, "create-package", "--name", "call_node", "--type", "Model").exit_code == 0
    model_descriptor(root / "packages" / f"{ACCOUNT}-call_node-1.0" / "descriptor.json")
    return root


PKG = f"packages/{ACCOUNT}-call_node-1.0"


def add(root, model, *extra, asset="squeezenet", source="--model-local-path"):
    """add-raw-model of ``model`` (a path, or an S3 URI with ``source="--model-s3-uri"``)."""
    return run(
        root,
        "add-raw-model",
        "--model-asset-name",
        asset,
        source,
        str(model),
        "--descriptor-path",
        f"{PKG}/descriptor.json",
        *extra,
    )


def test_add_local_model_registers_everything(project, tmp_path):
    model = make_model_archive(tmp_path / "m.tar.gz")
    result = add(project, model, "--packages-path", PKG)
    assert result.exit_code == 0, result.stderr
    digest = sha256(model)
    descriptor_digest = sha256(project / PKG / "descriptor.json")
    assert (project / "assets" / f"{digest}.tar.gz").read_bytes() == model.read_bytes()
    assert (project / "assets" / f"{descriptor_digest}.json").is_file()
    body = load(project / PKG / "package.json")["nodePackage"]
    assert body["assets"] == [
        {
            "name": "squeezenet",
            "implementations": [
                {
                    "type": "model",
                    "assetUri": f"{digest}.tar.gz",
                    "descriptorUri": f"{descriptor_digest}.json",
                }
            ],
        }
    ]
    assert body["interfaces"] == [
        {
            "name": "squeezenet_interface",
            "category": "ml_model",
            "asset": "squeezenet",
            "inputs": [{"name": "video_in", "type": "media"}],
            "outputs": [
                {"description": "Video stream output", "name": "video_out", "type": "media"}
            ],
        }
    ]
    graph = load(project / "graphs" / "p" / "graph.json")
    assert graph["nodeGraph"]["nodes"] == [
        {"name": "squeezenet", "interface": f"{ACCOUNT}::call_node.squeezenet_interface"}
    ]
    assert official.errors(official.PACKAGE, load(project / PKG / "package.json")) == []
    assert official.errors(official.GRAPH, graph) == []
    assert run(project, "validate").exit_code == 0


def test_rerun_replaces_and_removes_old_files(project, tmp_path):
    first = make_model_archive(tmp_path / "a.tar.gz", b"v1")
    assert add(project, first, "--packages-path", PKG).exit_code == 0
    second = make_model_archive(tmp_path / "b.tar.gz", b"v2")
    assert add(project, second, "--packages-path", PKG).exit_code == 0
    assets = sorted(p.name for p in (project / "assets").iterdir())
    assert f"{sha256(first)}.tar.gz" not in assets
    assert f"{sha256(second)}.tar.gz" in assets and len(assets) == 2
    body = load(project / PKG / "package.json")["nodePackage"]
    assert len(body["assets"]) == 1 and len(body["interfaces"]) == 1
    assert len(load(project / "graphs" / "p" / "graph.json")["nodeGraph"]["nodes"]) == 1
    assert run(project, "validate").exit_code == 0


def test_without_packages_path_prints_asset_json(project, tmp_path):
    model = make_model_archive(tmp_path / "m.tar.gz")
    before_package = (project / PKG / "package.json").read_bytes()
    result = add(project, model)
    assert result.exit_code == 0
    entry = json.loads(result.stdout)
    assert entry["name"] == "squeezenet"
    assert entry["implementations"][0]["assetUri"] == f"{sha256(model)}.tar.gz"
    assert (project / PKG / "package.json").read_bytes() == before_package


def test_refusals_change_nothing(project, tmp_path):
    model = make_model_archive(tmp_path / "m.tar.gz")
    not_gzip = tmp_path / "m.bin"
    not_gzip.write_bytes(b"plain")
    before = snapshot(project)
    assert add(project, not_gzip, "--packages-path", PKG).exit_code == 1
    assert add(project, tmp_path / "missing.tar.gz", "--packages-path", PKG).exit_code != 0
    result = add(project, model, asset="../x")
    assert result.exit_code == 1 and "invalid asset name" in result.stderr
    assert add(project, model, "--packages-path", "/etc").exit_code == 1
    (project / PKG / "descriptor.json").write_text(
        '{"mlModelDescriptor": {"envelopeVersion": "2021-01-01", "framework": "", "inputs": []}}'
    )
    before = snapshot(project)
    result = add(project, model, "--packages-path", PKG)
    assert result.exit_code == 1 and "framework is empty" in result.stderr
    assert snapshot(project) == before


def test_failure_after_storing_rolls_back(project, tmp_path, monkeypatch):
    from panorama_cli.build import asset_registry

    model = make_model_archive(tmp_path / "m.tar.gz")
    before = snapshot(project)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(asset_registry, "register", boom)
    result = add(project, model, "--packages-path", PKG)
    assert result.exit_code == 130
    assert snapshot(project) == before


def test_add_model_from_s3(project, tmp_path, aws_env):
    import boto3

    s3 = boto3.client("s3", endpoint_url=aws_env.endpoint_url, region_name=aws_env.region)
    s3.create_bucket(Bucket="models")
    model = make_model_archive(tmp_path / "m.tar.gz", b"x" * (9 * 1024 * 1024))
    s3.upload_file(str(model), "models", "raw/squeezenet.tar.gz")
    result = add(
        project,
        "s3://models/raw/squeezenet.tar.gz",
        "--packages-path",
        PKG,
        source="--model-s3-uri",
    )
    assert result.exit_code == 0, result.stderr
    assert (project / "assets" / f"{sha256(model)}.tar.gz").read_bytes() == model.read_bytes()
    assert not [p for p in (project / "assets").iterdir() if p.name.startswith(".")]
    before = snapshot(project)
    result = add(
        project, "s3://models/raw/missing.tar.gz", "--packages-path", PKG, source="--model-s3-uri"
    )
    assert result.exit_code == 1 and "s3://models/raw/missing.tar.gz" in result.stderr
    assert snapshot(project) == before
