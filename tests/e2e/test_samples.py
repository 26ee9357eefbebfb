"""Acceptance: the two official sample applications, from import to a valid project.

For each sample (aws-panorama-sample, debug-server), copied into tmp_path:

1. ``import-application --account-id 210987654321``; ``validate --json`` then reports exactly
   the two things a fresh copy lacks: the model archive (assetUri fd1aef….tar.gz) and the
   code asset ``code_asset`` that the code package's interface names. Nothing else.
2. ``add-raw-model`` with a real .tar.gz, real application code (tests/data/sample_code) and a
   Dockerfile in the code package, ``build-container`` for linux/amd64 on the local base
   image: ``validate`` passes, no interface or node was added, the image's entry point runs,
   the stored .tar.gz holds the code and is named by its sha256, and every manifest of the
   project satisfies the OFFICIAL manifest schemas.

Everything runs through the real CLI entry point (tests/support/cli_runner.py) and a real
Docker engine (DOCKER_HOST); nothing is mocked.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from panorama_cli.build import containers, docker_engine
from panorama_cli.project.project import Project
from tests.support import official
from tests.support.cli_runner import CliResult, run_cli
from tests.support.paths import APPS, REPO
from tests.support.project_helpers import sha256
from tests.support.shared import require

ACCOUNT = "210987654321"
SAMPLE_ACCOUNT = "123456789012"
MODEL_PACKAGE = "SQUEEZENET_PYTORCH"
MISSING_MODEL_URI = "fd1aef48acc3350a5c2673adacffab06af54c3f14da6fe4a8be24cac687a386e.tar.gz"
CODE_ASSET = "code_asset"
SAMPLE_CODE_DIR = REPO / "tests" / "data" / "sample_code"
READY_LINE = "sample_code ready: 1000 classes"

#: sample app folder -> its code package
SAMPLES = {"aws-panorama-sample": "SAMPLE_CODE", "debug-server": "DEBUG_SERVER"}


@dataclass
class Sample:
    """A copied, imported sample application."""

    root: Path
    code_package: Path
    model_package: Path

    def rel(self, path: Path) -> str:
        return str(path.relative_to(self.root))


# --------------------------------------------------------------------------- helpers


def cli(sample_root: Path, *args: str) -> CliResult:
    result = run_cli(args, cwd=sample_root)
    assert result.exception is None, result.describe()
    return result


def load(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def copy_sample(name: str, dest: Path) -> Path:
    """Copy a read-only shared sample into ``dest`` and make the copy writable."""
    root = dest / name
    require(APPS / name)
    shutil.copytree(APPS / name, root)
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def import_sample(name: str, tmp_path: Path) -> Sample:
    root = copy_sample(name, tmp_path)
    result = cli(root, "import-application", "--account-id", ACCOUNT)
    assert result.exit_code == 0, result.describe()
    code = root / "packages" / f"{ACCOUNT}-{SAMPLES[name]}-1.0"
    model = root / "packages" / f"{ACCOUNT}-{MODEL_PACKAGE}-1.0"
    assert code.is_dir() and model.is_dir(), sorted(p.name for p in (root / "packages").iterdir())
    return Sample(root, code, model)


def validate_json(sample: Sample) -> tuple[CliResult, dict]:
    result = cli(sample.root, "validate", "--json")
    return result, result.json()


def make_model_archive(path: Path) -> Path:
    """A real gzip'ed tar holding a small 'model' file and its metadata."""
    members = {
        "squeezenet1_1.pth": bytes(range(256)) * 64,
        "README.txt": b"test model archive for panorama-cli e2e tests\n",
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return path


def add_code(sample: Sample) -> dict[str, bytes]:
    """Put the real application code and a Dockerfile into the code package.

    Returns:
        The files that the image must hold under /panorama/ (name -> bytes).
    """
    src = sample.code_package / "src"
    src.mkdir()
    shutil.copyfile(SAMPLE_CODE_DIR / "application.py", src / "application.py")
    shutil.copyfile(
        sample.code_package / "squeezenet_classes.json", src / "squeezenet_classes.json"
    )
    shutil.copyfile(SAMPLE_CODE_DIR / "Dockerfile", sample.code_package / "Dockerfile")
    return {
        "application.py": (src / "application.py").read_bytes(),
        "squeezenet_classes.json": (src / "squeezenet_classes.json").read_bytes(),
    }


def read_stored_container(path: Path, wanted: set[str]) -> tuple[dict[str, bytes], int]:
    """Gunzip + untar a stored container asset in one streaming pass.

    Returns:
        (the bytes of the ``wanted`` members found, the number of tar members). The gzip
        stream is read to its end, so its CRC and length trailer are verified too.
    """
    found: dict[str, bytes] = {}
    count = 0
    with gzip.open(path, "rb") as gz:
        with tarfile.open(fileobj=gz, mode="r|") as tar:
            for member in tar:
                count += 1
                name = member.name.lstrip("./")
                if name in wanted and member.isfile():
                    found[name] = tar.extractfile(member).read()
        while gz.read(1 << 20):
            pass
    return found, count


def run_entry_point(client, image: str, command: list[str], platform: str) -> tuple[int, str]:
    """Run the descriptor's entry command once with PANORAMA_LOCAL_CHECK=1."""
    return docker_engine.run_once(
        image,
        command,
        platform=platform,
        environment={"PANORAMA_LOCAL_CHECK": "1"},
        network_disabled=True,
        timeout_s=120,
        client=client,
    )


def manifest_files(root: Path) -> list[Path]:
    """Every JSON manifest of a project: graph + overrides, packages, descriptors."""
    files = sorted((root / "graphs").glob("*/*.json"))
    files += sorted((root / "packages").glob("*/package.json"))
    files += sorted((root / "packages").glob("*/descriptor.json"))
    files += sorted((root / "assets").glob("*.json"))
    return files


def official_schema_for(path: Path) -> str:
    if path.name == "graph.json":
        return official.GRAPH
    if path.name == "package.json":
        return official.PACKAGE
    if path.name == "descriptor.json" or path.parent.name == "assets":
        return official.DESCRIPTOR
    return official.OVERRIDES


# --------------------------------------------------------------------------- the oracle


def test_official_schema_oracle_is_not_vacuous() -> None:
    """The official-schema validator resolves the relative $refs and does reject things."""
    require(APPS / "aws-panorama-sample")
    graph = load(APPS / "aws-panorama-sample" / "graphs" / "my-app" / "graph.json")
    assert official.errors(official.GRAPH, graph) == []
    broken = json.loads(json.dumps(graph))
    broken["nodeGraph"]["edges"][0]["producer"] = 42  # edge.schema.json (a $ref) wants string
    assert official.errors(official.GRAPH, broken)

    package = load(
        APPS
        / "aws-panorama-sample"
        / "packages"
        / f"{SAMPLE_ACCOUNT}-SAMPLE_CODE-1.0"
        / "package.json"
    )
    assert official.errors(official.PACKAGE, package) == []
    package["nodePackage"]["assets"] = [
        {"name": "x", "implementations": [{"type": "binary", "assetUri": "a.tar.gz"}]}
    ]  # asset.schema.json: type is system/container/model
    assert official.errors(official.PACKAGE, package)

    descriptor = {"runtimeDescriptor": {"envelopeVersion": "2021-01-01", "entry": {"path": "x"}}}
    assert official.errors(official.DESCRIPTOR, descriptor)  # path needs name (dependencies)


# --------------------------------------------------------------------------- acceptance


@pytest.mark.parametrize("app", sorted(SAMPLES))
def test_imported_sample_reports_exactly_the_two_missing_assets(tmp_path: Path, app: str) -> None:
    sample = import_sample(app, tmp_path)
    result, report = validate_json(sample)

    assert result.exit_code == 1, result.describe()
    assert report["valid"] is False
    problems = report["problems"]
    assert len(problems) == 2, json.dumps(problems, indent=2)
    by_file = {p["file"]: p for p in problems}
    assert set(by_file) == {
        sample.rel(sample.model_package / "package.json"),
        sample.rel(sample.code_package / "package.json"),
    }, problems

    model = by_file[sample.rel(sample.model_package / "package.json")]
    assert model["pointer"] == "/nodePackage/assets/0/implementations/0/assetUri"
    assert MISSING_MODEL_URI in model["message"]
    assert "missing" in model["message"] and model["severity"] == "error"

    code = by_file[sample.rel(sample.code_package / "package.json")]
    assert code["pointer"] == "/nodePackage/interfaces/0/asset"
    assert repr(CODE_ASSET) in code["message"]
    # not built yet: a warning (run needs no asset), an error only for package-application
    assert code["severity"] == "warning" and "not built yet" in code["message"]
    assert f"--container-asset-name {CODE_ASSET}" in code["hint"]
    assert sample.rel(sample.code_package) in code["hint"]

    # the import itself left no trace of the sample's account
    for path in manifest_files(sample.root):
        assert SAMPLE_ACCOUNT not in path.read_text(encoding="utf-8"), path


@pytest.mark.docker
@pytest.mark.parametrize("app", sorted(SAMPLES))
def test_sample_end_to_end_model_code_build_validate_run(
    tmp_path: Path, app: str, docker_client, base_image_amd64: str, panorama_env
) -> None:
    sample = import_sample(app, tmp_path)
    _, report = validate_json(sample)
    assert len(report["problems"]) == 2, report

    # -- the model: a real archive, registered in the existing asset -----------------------
    archive = make_model_archive(tmp_path / "squeezenet.tar.gz")
    graph_path = Project(sample.root).graph_path
    graph_before = graph_path.read_bytes()
    model_rel = sample.rel(sample.model_package)
    result = cli(
        sample.root,
        "add-raw-model",
        "--model-asset-name",
        "model_asset",
        "--model-local-path",
        str(archive),
        "--descriptor-path",
        f"{model_rel}/descriptor.json",
        "--packages-path",
        model_rel,
    )
    assert result.exit_code == 0, result.describe()
    model_pkg = load(sample.model_package / "package.json")["nodePackage"]
    [model_asset] = model_pkg["assets"]
    [model_impl] = model_asset["implementations"]
    archive_sha = sha256(archive)
    assert model_impl["type"] == "model"
    assert model_impl["assetUri"] == f"{archive_sha}.tar.gz"
    assert (sample.root / "assets" / model_impl["assetUri"]).read_bytes() == archive.read_bytes()
    descriptor_sha = hashlib.sha256((sample.model_package / "descriptor.json").read_bytes())
    assert model_impl["descriptorUri"] == f"{descriptor_sha.hexdigest()}.json"
    assert [i["name"] for i in model_pkg["interfaces"]] == ["interface"]
    assert graph_path.read_bytes() == graph_before, "add-raw-model changed graph.json"

    _, report = validate_json(sample)
    assert [p["pointer"] for p in report["problems"]] == ["/nodePackage/interfaces/0/asset"], report

    # -- the code: real application code, built for linux/amd64 ---------------------------
    expected_files = add_code(sample)
    code_rel = sample.rel(sample.code_package)
    interfaces_before = load(sample.code_package / "package.json")["nodePackage"]["interfaces"]
    tag = containers.image_tag(Project(sample.root).package_for_path(code_rel), CODE_ASSET)
    started = time.monotonic()
    result = cli(
        sample.root,
        "build-container",
        "--container-asset-name",
        CODE_ASSET,
        "--package-path",
        code_rel,
        "--platform",
        "linux/amd64",
        "--local-image",
        "--build-arg",
        f"BASE_IMAGE={base_image_amd64}",
        "--json",
    )
    build_seconds = time.monotonic() - started
    try:
        assert result.exit_code == 0, result.describe()
        built = result.json()
        assert built["image"] == tag
        assert built["interfaceAdded"] is None and built["nodeAdded"] is None, built
        assert "COPY src /panorama" in result.stderr  # the build log was streamed

        # no new interface, no new node: the existing interface already names code_asset
        code_pkg = load(sample.code_package / "package.json")["nodePackage"]
        assert code_pkg["interfaces"] == interfaces_before
        assert graph_path.read_bytes() == graph_before, "build-container changed graph.json"
        [code_asset] = code_pkg["assets"]
        assert code_asset["name"] == CODE_ASSET
        [impl] = code_asset["implementations"]
        assert impl["type"] == "container"
        assert impl["assetUri"] == built["assetUri"]
        runtime_sha = hashlib.sha256((sample.code_package / "descriptor.json").read_bytes())
        assert impl["descriptorUri"] == f"{runtime_sha.hexdigest()}.json"

        # -- the project is valid now: no error, no warning --------------------------------
        result, report = validate_json(sample)
        assert result.exit_code == 0, result.describe()
        assert report == {"valid": True, "root": str(sample.root.resolve()), "problems": []}
        plain = cli(sample.root, "validate")
        assert plain.exit_code == 0, plain.describe()

        # -- the image's entry point (from the descriptor) starts --------------------------
        image = docker_client.images.get(tag)
        assert image.attrs["Architecture"] == "amd64"
        command = containers.entry_command(Project(sample.root).package_for_path(code_rel))
        assert command == ["python3", "/panorama/application.py"]
        exit_code, logs = run_entry_point(docker_client, tag, command, "linux/amd64")
        assert exit_code == 0, logs
        assert READY_LINE in logs, logs

        # -- the stored asset: named by its sha256, holds the code -------------------------
        asset_path = sample.root / "assets" / impl["assetUri"]
        assert impl["assetUri"].endswith(".tar.gz")
        assert sha256(asset_path) == impl["assetUri"].removesuffix(".tar.gz")
        assert asset_path.stat().st_size == built["size"]
        wanted = {f"panorama/{name}" for name in expected_files}
        found, members = read_stored_container(asset_path, wanted | {"usr/lib/os-release"})
        assert members > 1000, "expected a whole root filesystem in the container asset"
        assert b"bookworm" in found["usr/lib/os-release"]  # the base image's root filesystem
        for name, data in expected_files.items():
            assert found.get(f"panorama/{name}") == data, name
        stored_descriptor = sample.root / "assets" / impl["descriptorUri"]
        assert (
            stored_descriptor.read_bytes() == (sample.code_package / "descriptor.json").read_bytes()
        )

        # -- no temporary files, no temporary containers left ------------------------------
        assert not [p.name for p in (sample.root / "assets").iterdir() if p.name.startswith(".")]
        leftovers = docker_client.containers.list(
            all=True,
            sparse=True,
            filters={"label": docker_engine.CONTAINER_LABEL, "ancestor": tag},
        )
        assert leftovers == []

        # -- every manifest satisfies the OFFICIAL schemas ---------------------------------
        checked = []
        for path in manifest_files(sample.root):
            schema = official_schema_for(path)
            problems = official.errors(schema, load(path))
            assert problems == [], f"{sample.rel(path)} vs official {schema}: {problems}"
            checked.append(sample.rel(path))
        assert f"{code_rel}/package.json" in checked
        assert f"assets/{impl['descriptorUri']}" in checked
        assert any(p.startswith("graphs/") and p.endswith("/graph.json") for p in checked)

        # -- package-application, then deploy (Panorama test server + moto S3) -------------
        # The server FAILS a registration whose manifest or assets are not in the bucket.
        result = cli(sample.root, "package-application", "--poll-interval", "0.1", "--json")
        assert result.exit_code == 0, result.describe()
        packaged = {p["name"]: p for p in result.json()["packages"]}
        assert {p["status"] for p in packaged.values()} == {"REGISTER_COMPLETED"}, packaged
        assert packaged[code_pkg["name"]]["uploaded_bytes"] > built["size"]
        assert packaged[model_pkg["name"]]["uploaded_files"] == 3
        again = cli(sample.root, "package-application", "--json")
        assert again.exit_code == 0, again.describe()
        assert {p["status"] for p in again.json()["packages"]} == {"UNCHANGED"}
        device = panorama_env.server.add_device()
        result = cli(
            sample.root, "deploy", "--target", "panorama", "--device-id", device, "--name", app, "--wait",
            "--poll-interval", "0.1", "--json",
        )  # fmt: skip
        assert result.exit_code == 0, result.describe()
        assert result.json()["Status"] == "DEPLOYMENT_SUCCEEDED"
    finally:
        _remove_image(docker_client, tag)
    print(f"\n[{app}] build-container (amd64) took {build_seconds:.1f} s")


def _remove_image(client, tag: str) -> None:
    import docker

    try:
        client.images.remove(tag, force=True)
    except docker.errors.ImageNotFound:
        pass


def test_sample_code_runs_its_local_check_on_the_host(tmp_path: Path) -> None:
    """The code package's own check: classes load (1000), 'ready' logged, exit 0."""
    import subprocess
    import sys

    folder = tmp_path / "panorama"
    folder.mkdir()
    shutil.copyfile(SAMPLE_CODE_DIR / "application.py", folder / "application.py")
    classes = APPS / "aws-panorama-sample" / "packages" / f"{SAMPLE_ACCOUNT}-SAMPLE_CODE-1.0"
    require(classes)
    shutil.copyfile(classes / "squeezenet_classes.json", folder / "squeezenet_classes.json")
    env = {**os.environ, "PANORAMA_LOCAL_CHECK": "1"}
    command = [sys.executable, str(folder / "application.py")]
    ok = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert READY_LINE in ok.stdout

    # a broken classes file fails the check (so the ready line means something)
    (folder / "squeezenet_classes.json").write_text(json.dumps(["tench", "goldfish"]))
    bad = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 1
    assert "ready" not in bad.stdout
    assert "expected 1000 classes, found 2" in bad.stdout


def test_sample_code_annotates_in_normalized_coordinates() -> None:
    """The application's helpers, with a fake media object standing in for the SDK's."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sample_app", SAMPLE_CODE_DIR / "application.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)  # must not need panoramasdk or numpy at import time

    classes = [f"class{i}" for i in range(app.NUM_CLASSES)]
    scores = [0.0] * app.NUM_CLASSES
    scores[7], scores[3] = 12.0, 11.0
    results = app.top_classes(app.softmax(scores), classes, threshold_percent=20.0)
    assert [name for name, _ in results] == ["class7", "class3"]
    assert all(pct >= 20.0 for _, pct in results)

    class FakeMedia:
        def __init__(self):
            self.labels, self.rects = [], []

        def add_label(self, text, x, y):
            self.labels.append((text, x, y))

        def add_rect(self, left, top, right, bottom):
            self.rects.append((left, top, right, bottom))

    media = FakeMedia()
    app.annotate(media, results)
    assert [t.split(":")[0] for t, _, _ in media.labels] == ["class7", "class3"]
    coords = [c for _, x, y in media.labels for c in (x, y)] + [c for r in media.rects for c in r]
    assert media.rects and all(0.0 <= c < 1.0 for c in coords), coords
    assert app.clamp01(1.0) < 1.0 and app.clamp01(-3) == 0.0

    nothing = FakeMedia()
    app.annotate(nothing, app.top_classes(app.softmax([0.0] * 1000), classes, 20.0))
    assert nothing.labels == [] and nothing.rects == []
