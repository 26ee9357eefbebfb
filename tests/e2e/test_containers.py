"""build-container / export-container end to end, against a real Docker engine.

* The default platform (linux/arm64, the appliance) for real: a project from ``init-project``
  + ``create-package --name app`` (starter Dockerfile and app.py) built under qemu on the local
  arm64 base image; the image is arm64 and its entry point runs.
* Re-building replaces the asset: superseded files are deleted unless still used, a
  hand-added ``requirements`` entry survives, no second interface or node appears.
* ``export-container`` stores an image that exists already.
* Failures change nothing: no emulator (pre-flight, with the fix), Ctrl-C during the build or
  during the export (exit 130, no container left), a failing Dockerfile step (exit 1, one
  error line, no traceback), and unsafe names (rejected before any file is touched).

The CLI runs through its real entry point (tests/support/cli_runner.py); the only doubles are
the interruptions and the missing binfmt handler, injected with monkeypatch.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import platform
import re
import secrets
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest

import panorama_cli.console
from panorama_cli.build import (
    containers,
    docker_build,
    docker_client,
    docker_engine,
    docker_export,
    image_cache,
    platforms,
)
from panorama_cli.project.project import Project
from tests.support import official
from tests.support.cli_runner import CliResult, run_cli, run_cli_subprocess
from tests.support.project_helpers import LOCK_FILES, sha256
from tests.support.signals import popen_interruptible

STARTER_READY = "app ready (local check"
GPU_REQUIREMENTS = [
    {
        "type": "hardware_access",
        "inferenceAccelerators": [
            {"deviceType": "nvhost_gpu", "sharedResourcePolicy": {"policy": "allow_all"}}
        ],
    }
]
AARCH64_ELF_MACHINE = 0xB7


# --------------------------------------------------------------------------- fixtures


@dataclass
class StarterProject:
    """A project made by init-project + create-package --name app."""

    root: Path
    account: str
    package: Path
    tags: list[str] = field(default_factory=list)
    image_ids: set[str] = field(default_factory=set)
    layer_ids: list[str] = field(default_factory=list)
    engine: Callable[[], Any] | None = None  # the docker_client fixture, on demand

    @property
    def package_rel(self) -> str:
        return str(self.package.relative_to(self.root))

    @property
    def graph_path(self) -> Path:
        return self.root / "graphs" / "proj" / "graph.json"

    def tag(self, asset: str) -> str:
        """The image tag build-container uses for ``asset``; removed after the test."""
        tag = containers.image_tag(Project(self.root).load_package(self.package), asset)
        self.tags.append(tag)
        return tag

    def cli(self, *args: str) -> CliResult:
        result = run_cli(args, cwd=self.root)
        assert result.exception is None, result.describe()
        return result

    def build_args(self, asset: str, base_image: str, *extra: str) -> list[str]:
        """The arguments of build-container for ``asset`` of this package on ``base_image``."""
        return [
            "build-container",
            "--container-asset-name",
            asset,
            "--package-path",
            self.package_rel,
            "--build-arg",
            f"BASE_IMAGE={base_image}",
            *extra,
        ]

    def export_args(self, image: str, *extra: str) -> list[str]:
        """The arguments of export-container of ``image`` as asset app_code of this package."""
        return [
            "export-container",
            "--container-asset-name",
            "app_code",
            "--container-image-uri",
            image,
            "--package-path",
            self.package_rel,
            *extra,
        ]

    def build(self, asset: str, base_image: str, *extra: str) -> CliResult:
        self.tag(asset)
        result = self.cli(*self.build_args(asset, base_image, "--json", *extra))
        self.remember_images()
        self.remember_layers(result.stderr)
        return result

    def remember_layers(self, build_log: str) -> None:
        """Note the intermediate images a (failed or interrupted) build left, from its log."""
        self.layer_ids += built_layers(build_log)

    def remember_images(self) -> None:
        """Note the images the tags point to now, so that re-tagged ones are removed too."""
        if not self.tags or self.engine is None:
            return
        client = self.engine()
        for tag in self.tags:
            with contextlib.suppress(docker.errors.ImageNotFound):
                self.image_ids.add(client.images.get(tag).id)

    def remove_images(self) -> None:
        if not self.tags or self.engine is None:
            return
        self.remember_images()
        client = self.engine()
        for name in [*self.tags, *sorted(self.image_ids)]:
            with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.APIError):
                client.images.remove(name, force=True)
        for layer in reversed(self.layer_ids):  # children first; never a tagged image
            with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.APIError):
                if not client.images.get(layer).tags:
                    client.images.remove(layer)

    def build_outside_cli(self, client, base_image: str, kind: str) -> str:
        """Build the package's image with the SDK (not the CLI) for amd64; returns its tag."""
        tag = f"panorama-cli-test/e2e-{kind}-{secrets.token_hex(5)}:1"
        self.tags.append(tag)
        client.images.build(
            path=str(self.package),
            tag=tag,
            buildargs={"BASE_IMAGE": base_image},
            platform="linux/amd64",
            pull=False,
            rm=True,
            forcerm=True,
        )
        return tag

    def package_json(self) -> dict:
        return load(self.package / "package.json")

    def assets(self) -> set[str]:
        return {p.name for p in (self.root / "assets").iterdir()}


@pytest.fixture
def project(tmp_path: Path, request) -> Iterator[StarterProject]:
    # A fresh account per test: the image tags (panorama-cli/<account>-app-1-0:<asset>)
    # never collide with another test's, even when several runs share the engine.
    account = "2" + "".join(secrets.choice("0123456789") for _ in range(11))
    work = tmp_path / "work"
    work.mkdir()
    result = run_cli(["init-project", "--name", "proj", "--account-id", account], cwd=work)
    assert result.exit_code == 0, result.describe()
    root = work / "proj"
    result = run_cli(["create-package", "--name", "app"], cwd=root)
    assert result.exit_code == 0, result.describe()
    package = root / "packages" / f"{account}-app-1.0"
    assert (package / "Dockerfile").is_file() and (package / "src" / "app.py").is_file()
    starter = StarterProject(root, account, package)
    # only tests that use the engine have images to remove; they requested docker_client
    starter.engine = lambda: request.getfixturevalue("docker_client")
    yield starter
    starter.remove_images()


@pytest.fixture
def built_project(project: StarterProject, base_image_amd64: str) -> StarterProject:
    """The starter project with asset app_code built once (linux/amd64)."""
    result = project.build("app_code", base_image_amd64, "--platform", "linux/amd64")
    assert result.exit_code == 0, result.describe()
    return project


# --------------------------------------------------------------------------- helpers


def load(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


_STEP = re.compile(r"^Step \d+/\d+ : (\S+)")
_LAYER = re.compile(r"^ ---> ([0-9a-f]{12,64})$")


def built_layers(build_log: str) -> list[str]:
    """Ids of the images a legacy-builder log says this build created (not FROM, not cache)."""
    ids: list[str] = []
    own = False
    for line in build_log.splitlines():
        line = line.rstrip()
        step = _STEP.match(line)
        if step:
            own = step.group(1).upper() != "FROM"
        elif line.strip() == "---> Using cache":
            own = False
        elif (layer := _LAYER.match(line)) and own:
            ids.append(layer.group(1))
    return ids


def dump(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=4) + "\n", encoding="utf-8")


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every folder (None) under ``root``, by relative path.

    The project lock file (created by the first command that locks) is left out.
    """
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
        if p.name not in LOCK_FILES
    }


def remove_image(client, tag: str) -> None:
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(tag, force=True)


def run_in_image(
    client, image: str, command: list[str], platform: str, env: dict[str, str] | None = None
) -> tuple[int, str]:
    """Run ``command`` once in a new container (removed afterwards): (exit code, logs)."""
    return docker_engine.run_once(
        image,
        command,
        platform=platform,
        environment=env,
        network_disabled=True,
        timeout_s=180,
        client=client,
    )


def read_container_asset(path: Path, wanted) -> dict[str, bytes]:
    """Gunzip + untar a stored container asset; bytes of the members ``wanted(name)`` selects.

    The gzip stream is read to its end, which verifies its CRC and length.
    """
    found: dict[str, bytes] = {}
    with gzip.open(path, "rb") as gz:
        with tarfile.open(fileobj=gz, mode="r|") as tar:
            for member in tar:
                name = member.name.lstrip("./")
                if member.isfile() and wanted(name):
                    found[name] = tar.extractfile(member).read()
        while gz.read(1 << 20):
            pass
    return found


def containers_mentioning(client, token: str) -> list[str]:
    """Containers (any state) whose configuration mentions ``token``."""
    return [
        c.short_id
        for c in client.containers.list(all=True, sparse=True)
        if token in json.dumps(c.attrs)
    ]


def wait_until_gone(client, token: str, timeout_s: float = 30.0) -> list[str]:
    """Poll until no container mentions ``token``; returns what is left at the deadline."""
    deadline = time.monotonic() + timeout_s
    left = containers_mentioning(client, token)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = containers_mentioning(client, token)
    return left


def assert_official_schemas(root: Path) -> None:
    files = sorted((root / "graphs").glob("*/graph.json"))
    files += sorted((root / "packages").glob("*/package.json"))
    files += sorted((root / "packages").glob("*/descriptor.json"))
    files += sorted((root / "assets").glob("*.json"))
    for path in files:
        schema = {"graph.json": official.GRAPH, "package.json": official.PACKAGE}.get(
            path.name, official.DESCRIPTOR
        )
        problems = official.errors(schema, load(path))
        assert problems == [], f"{path.relative_to(root)} vs official {schema}: {problems}"


def host_is_x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


# --------------------------------------------------------------------------- default platform


@pytest.mark.docker
@pytest.mark.arm64
def test_default_platform_builds_arm64_and_the_entry_point_runs(
    project: StarterProject, docker_client, base_image_arm64: str, arm64_emulation
) -> None:
    started = time.monotonic()
    result = project.build("app_code", base_image_arm64)  # no --platform: linux/arm64
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.describe()
    built = result.json()
    tag = project.tag("app_code")
    assert built["image"] == tag
    assert built["interfaceAdded"] == "app_code_interface"
    assert built["nodeAdded"] == "app_code_node"
    assert built["superseded"] == []

    # the image is arm64 and its entry point (from descriptor.json) starts under qemu
    image = docker_client.images.get(tag)
    assert image.attrs["Architecture"] == "arm64"
    assert image.attrs["Os"] == "linux"
    command = containers.entry_command(Project(project.root).load_package(project.package))
    assert command == ["python3", "/panorama/app.py"]
    code, logs = run_in_image(
        docker_client, tag, command, "linux/arm64", {"PANORAMA_LOCAL_CHECK": "1"}
    )
    assert code == 0, logs
    assert STARTER_READY in logs, logs
    code, logs = run_in_image(
        docker_client,
        tag,
        ["python3", "-c", "import platform; print(platform.machine())"],
        "linux/arm64",
    )
    assert (code, logs.strip()) == (0, "aarch64")

    # the package, the graph and the stored asset
    body = project.package_json()["nodePackage"]
    [asset] = body["assets"]
    [impl] = asset["implementations"]
    assert asset["name"] == "app_code" and impl["type"] == "container"
    assert impl["assetUri"] == built["assetUri"]
    [interface] = body["interfaces"]
    assert (interface["name"], interface["asset"]) == ("app_code_interface", "app_code")
    assert interface["category"] == "business_logic"
    [node] = load(project.graph_path)["nodeGraph"]["nodes"]
    assert node["name"] == "app_code_node"
    assert node["interface"] == f"{project.account}::app.app_code_interface"

    asset_path = project.root / "assets" / impl["assetUri"]
    assert sha256(asset_path) + ".tar.gz" == impl["assetUri"]
    found = read_container_asset(
        asset_path,
        lambda n: n == "panorama/app.py" or (n.startswith("usr/bin/python3.") and "-" not in n),
    )
    assert found.pop("panorama/app.py") == (project.package / "src" / "app.py").read_bytes()
    assert found, "no python3.x binary in the stored filesystem"
    for name, data in found.items():  # the interpreter in the asset is an aarch64 ELF
        assert data[:4] == b"\x7fELF", name
        assert int.from_bytes(data[18:20], "little") == AARCH64_ELF_MACHINE, name

    validate = project.cli("validate")
    assert validate.exit_code == 0, validate.describe()
    assert_official_schemas(project.root)
    print(f"\nbuild-container linux/arm64 (default) took {elapsed:.1f} s")


@pytest.mark.docker
@pytest.mark.arm64
def test_rebuild_replaces_the_asset_and_deletes_superseded_files_unless_used(
    project: StarterProject, docker_client, base_image_arm64: str, arm64_emulation
) -> None:
    app_py = project.package / "src" / "app.py"
    timings = []

    def rebuild() -> dict:
        started = time.monotonic()
        result = project.build("app_code", base_image_arm64)
        timings.append(time.monotonic() - started)
        assert result.exit_code == 0, result.describe()
        return result.json()

    first = rebuild()
    desc1 = first["descriptorUri"]
    graph_after_first = project.graph_path.read_bytes()
    assert project.assets() == {first["assetUri"], desc1}

    # a requirement added by hand to the implementation
    data = project.package_json()
    data["nodePackage"]["assets"][0]["implementations"][0]["requirements"] = GPU_REQUIREMENTS
    dump(project.package / "package.json", data)

    def check_registration(built: dict, descriptor_uri: str) -> None:
        body = project.package_json()["nodePackage"]
        assert len(body["assets"]) == 1
        [impl] = body["assets"][0]["implementations"]
        assert impl == {
            "type": "container",
            "assetUri": built["assetUri"],
            "descriptorUri": descriptor_uri,
            "requirements": GPU_REQUIREMENTS,
        }
        assert [i["name"] for i in body["interfaces"]] == ["app_code_interface"]
        assert built["interfaceAdded"] is None and built["nodeAdded"] is None
        assert project.graph_path.read_bytes() == graph_after_first

    # 2. only src/app.py changed: the .tar.gz is superseded, the .json is the same (kept)
    app_py.write_text(app_py.read_text() + "\n# revision 2\n")
    second = rebuild()
    assert second["assetUri"] != first["assetUri"]
    assert second["descriptorUri"] == desc1
    assert second["superseded"] == [first["assetUri"]]
    assert project.assets() == {second["assetUri"], desc1}
    check_registration(second, desc1)

    # 3. the descriptor changes too: both old files go
    descriptor = load(project.package / "descriptor.json")
    descriptor["runtimeDescriptor"]["entry"]["environment"] = [
        {"name": "APP_REVISION", "value": "3"}
    ]
    dump(project.package / "descriptor.json", descriptor)
    app_py.write_text(app_py.read_text() + "# revision 3\n")
    third = rebuild()
    desc3 = third["descriptorUri"]
    assert desc3 != desc1
    assert (
        desc3
        == hashlib.sha256((project.package / "descriptor.json").read_bytes()).hexdigest() + ".json"
    )
    assert sorted(third["superseded"]) == sorted([second["assetUri"], desc1])
    assert project.assets() == {third["assetUri"], desc3}
    check_registration(third, desc3)

    # 4. another package uses the current files: rebuilding keeps them
    result = project.cli("create-package", "--name", "app_copy")
    assert result.exit_code == 0, result.describe()
    other = project.root / "packages" / f"{project.account}-app_copy-1.0"
    other_data = load(other / "package.json")
    other_data["nodePackage"]["assets"] = [
        {
            "name": "copied_code",
            "implementations": [
                {"type": "container", "assetUri": third["assetUri"], "descriptorUri": desc3}
            ],
        }
    ]
    other_data["nodePackage"]["interfaces"] = [
        {
            "name": "copied_interface",
            "category": "business_logic",
            "asset": "copied_code",
            "inputs": [{"name": "video_in", "type": "media"}],
            "outputs": [{"name": "video_out", "type": "media"}],
        }
    ]
    dump(other / "package.json", other_data)
    other_before = (other / "package.json").read_bytes()
    graph_after_first = project.graph_path.read_bytes()  # create-package listed app_copy
    app_py.write_text(app_py.read_text() + "# revision 4\n")
    fourth = rebuild()
    assert fourth["superseded"] == []
    assert project.assets() == {third["assetUri"], fourth["assetUri"], desc3}
    check_registration(fourth, desc3)
    assert (other / "package.json").read_bytes() == other_before

    # the stored asset really is the new code
    stored = read_container_asset(
        project.root / "assets" / fourth["assetUri"], lambda n: n == "panorama/app.py"
    )
    assert stored["panorama/app.py"] == app_py.read_bytes()
    assert stored["panorama/app.py"].endswith(b"# revision 4\n")

    validate = project.cli("validate", "--json")
    assert validate.exit_code == 0, validate.describe()
    assert [p for p in validate.json()["problems"] if p["severity"] == "error"] == []
    assert_official_schemas(project.root)
    print("\nbuild-container linux/arm64 x4: " + ", ".join(f"{t:.1f} s" for t in timings))


# --------------------------------------------------------------------------- export-container


@pytest.mark.docker
def test_export_container_stores_an_existing_image(
    project: StarterProject, docker_client, base_image_amd64: str
) -> None:
    tag = project.build_outside_cli(docker_client, base_image_amd64, "export")
    result = project.cli(*project.export_args(tag, "--json"))
    assert result.exit_code == 0, result.describe()
    exported = result.json()
    assert exported["interfaceAdded"] == "app_code_interface"
    assert exported["nodeAdded"] == "app_code_node"
    asset_path = project.root / "assets" / exported["assetUri"]
    assert sha256(asset_path) + ".tar.gz" == exported["assetUri"]
    stored = read_container_asset(asset_path, lambda n: n == "panorama/app.py")
    assert stored["panorama/app.py"] == (project.package / "src" / "app.py").read_bytes()
    # the asset came from the image's id, recorded for run --in-container (a tag can move)
    assert exported["image"] == tag
    assert docker_client.images.get(tag).id in image_cache.images_for(exported["assetUri"])
    assert (project.root / "assets" / exported["descriptorUri"]).read_bytes() == (
        project.package / "descriptor.json"
    ).read_bytes()
    leftovers = docker_client.containers.list(
        all=True, sparse=True, filters={"label": docker_engine.CONTAINER_LABEL, "ancestor": tag}
    )
    assert leftovers == []
    assert project.cli("validate").exit_code == 0
    assert_official_schemas(project.root)

    # an image the engine does not have: one error, nothing changed
    before = snapshot(project.root)
    missing = project.cli(
        *project.export_args(f"panorama-cli-test/no-such-image-{secrets.token_hex(4)}:1")
    )
    assert missing.exit_code == 1, missing.describe()
    assert "not found" in missing.stderr and "Traceback" not in missing.stderr
    assert snapshot(project.root) == before


# --------------------------------------------------------------------------- pre-flight


@pytest.mark.docker
@pytest.mark.parametrize("binfmt", ["not-mounted", "no-handler"])
def test_missing_arm64_emulator_fails_before_building_with_the_fix(
    project: StarterProject, monkeypatch, tmp_path: Path, docker_client, binfmt: str
) -> None:
    if not host_is_x86_64():
        pytest.skip("the pre-flight only matters on a host that cannot run arm64 natively")
    fake = tmp_path / "binfmt_misc"
    fake.mkdir()
    if binfmt == "no-handler":  # mounted, enabled, but nothing for aarch64
        (fake / "status").write_text("enabled\n")
        (fake / "register").write_text("")
    monkeypatch.setattr(platforms, "BINFMT_DIR", fake)
    builds: list[tuple] = []
    real_build = docker_build.build_image
    monkeypatch.setattr(
        docker_build,
        "build_image",
        lambda *a, **kw: builds.append((a, kw)) or real_build(*a, **kw),
    )
    tag = project.tag("app_code")
    remove_image(docker_client, tag)
    before = snapshot(project.root)

    result = project.cli(
        "build-container",
        "--container-asset-name",
        "app_code",
        "--package-path",
        project.package_rel,
        "--build-arg",
        "BASE_IMAGE=panorama-cli-test/base:bookworm-arm64",
    )
    assert result.exit_code == 1, result.describe()
    assert "linux/arm64" in result.stderr
    assert "qemu-user-static" in result.stderr  # the fix
    assert "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("Error:")], result.stderr
    assert builds == [], "the image was built although the platform cannot run"
    assert snapshot(project.root) == before

    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(tag)


# --------------------------------------------------------------------------- interruption


@pytest.mark.docker
def test_ctrl_c_during_the_build_changes_nothing_and_leaves_no_container(
    built_project: StarterProject, monkeypatch, docker_client, base_image_amd64: str
) -> None:
    project = built_project
    token = f"pcli-interrupt-{secrets.token_hex(6)}"
    dockerfile = project.package / "Dockerfile"
    dockerfile.write_text(
        dockerfile.read_text() + f'RUN echo "{token}-start" && sleep 8 && echo "{token}-end"\n'
    )
    app_py = project.package / "src" / "app.py"
    app_py.write_text(app_py.read_text() + "# changed\n")
    before = snapshot(project.root)
    seen: list[str] = []
    running_at_interrupt: list[str] = []

    def interrupting_log_line(line: str) -> None:
        seen.append(line)
        if f"{token}-start" in line and not line.startswith("Step "):
            running_at_interrupt.extend(containers_mentioning(docker_client, token))
            raise KeyboardInterrupt  # Ctrl-C while the RUN step's container runs

    monkeypatch.setattr(panorama_cli.console, "log_line", interrupting_log_line)
    result = project.build("app_code", base_image_amd64, "--platform", "linux/amd64")
    project.remember_layers("\n".join(seen))

    assert result.exit_code == 130, result.describe()
    assert "interrupted" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert any(f"{token}-start" in line for line in seen), seen
    assert not any(f"{token}-end" in line for line in seen if not line.startswith("Step "))
    assert snapshot(project.root) == before
    assert running_at_interrupt, "the RUN step's container was not running at Ctrl-C"
    assert wait_until_gone(docker_client, token) == [], "build container left behind"


@pytest.mark.docker
@pytest.mark.parametrize("command", ["build-container", "export-container"])
def test_ctrl_c_during_the_export_changes_nothing_and_leaves_no_container(
    built_project: StarterProject,
    monkeypatch,
    docker_client,
    base_image_amd64: str,
    command: str,
) -> None:
    project = built_project
    app_py = project.package / "src" / "app.py"
    app_py.write_text(app_py.read_text() + "# changed before the interrupted run\n")
    if command == "export-container":  # the image must exist: build it outside the CLI
        image = project.build_outside_cli(docker_client, base_image_amd64, "interrupt")
    before = snapshot(project.root)
    assets_dir = project.root / "assets"

    created: list[str] = []
    real_create = docker_export._create_container

    def recording_create(*args, **kwargs):
        container = real_create(*args, **kwargs)
        created.append(container.id)
        return container

    delivered: list[int] = []
    partial_files: list[str] = []
    real_export = docker_export.export_filesystem

    @contextlib.contextmanager
    def interrupted_export(*args, **kwargs):
        with real_export(*args, **kwargs) as chunks:

            def some_chunks_then_ctrl_c():
                for chunk in chunks:
                    delivered.append(len(chunk))
                    if len(delivered) == 4:
                        partial_files.extend(
                            p.name for p in assets_dir.iterdir() if p.name.startswith(".tmp-")
                        )
                        raise KeyboardInterrupt
                    yield chunk

            yield some_chunks_then_ctrl_c()

    monkeypatch.setattr(docker_export, "_create_container", recording_create)
    monkeypatch.setattr(docker_export, "export_filesystem", interrupted_export)

    if command == "build-container":
        result = project.build("app_code", base_image_amd64, "--platform", "linux/amd64")
    else:
        result = project.cli(*project.export_args(image, "--json"))

    assert result.exit_code == 130, result.describe()
    assert "interrupted" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""
    assert len(delivered) == 4, "the export was not interrupted mid-stream"
    assert partial_files, "no partial asset was being written when Ctrl-C came"
    assert snapshot(project.root) == before
    assert created, "no export container was created"

    for container_id in created:
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(container_id)


@pytest.mark.docker
@pytest.mark.parametrize("phase", ["build", "export"])
def test_real_sigint_to_the_cli_process_changes_nothing_and_leaves_no_container(
    built_project: StarterProject, docker_client, base_image_amd64: str, phase: str
) -> None:
    """Ctrl-C as a user sends it: SIGINT to a panorama-cli process, mid-build or mid-export."""
    project = built_project
    token = f"pcli-sigint-{secrets.token_hex(6)}"
    if phase == "build":
        dockerfile = project.package / "Dockerfile"
        dockerfile.write_text(dockerfile.read_text() + f'RUN echo "{token}" && sleep 20\n')
    app_py = project.package / "src" / "app.py"
    app_py.write_text(app_py.read_text() + f"# {token}\n")
    tag = project.tag("app_code")
    before = snapshot(project.root)
    assets_dir = project.root / "assets"

    proc = popen_interruptible(
        [
            sys.executable,
            "-m",
            "panorama_cli",
            *project.build_args("app_code", base_image_amd64, "--platform", "linux/amd64"),
        ],
        cwd=project.root,
        env={**os.environ, "NO_COLOR": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if phase == "build":
                if containers_mentioning(docker_client, token):
                    break  # the RUN step's container is running
                time.sleep(0.1)
            else:
                partial = [p for p in assets_dir.iterdir() if p.name.startswith(".tmp-")]
                if partial and partial[0].stat().st_size > 0:
                    break  # the asset is being written
                time.sleep(0.01)
        assert proc.poll() is None, "the command ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr_text = stderr.decode("utf-8", errors="replace")
    project.remember_images()
    project.remember_layers(stderr_text)
    assert proc.returncode == 130, stderr_text
    assert "interrupted" in stderr_text and "Traceback" not in stderr_text
    assert snapshot(project.root) == before
    assert wait_until_gone(docker_client, token) == []
    assert (
        docker_client.containers.list(
            all=True,
            sparse=True,
            filters={"label": docker_engine.CONTAINER_LABEL, "ancestor": tag},
        )
        == []
    )


# --------------------------------------------------------------------------- failures


@pytest.mark.docker
def test_failing_dockerfile_step_exits_1_with_one_error_line(
    project: StarterProject, docker_client, base_image_amd64: str
) -> None:
    token = f"pcli-fail-{secrets.token_hex(6)}"
    dockerfile = project.package / "Dockerfile"
    dockerfile.write_text(
        dockerfile.read_text() + f'RUN echo "{token} compiling" && exit 3\nRUN echo never\n'
    )
    project.tag("app_code")
    before = snapshot(project.root)

    result = run_cli_subprocess(
        project.build_args("app_code", base_image_amd64, "--platform", "linux/amd64", "--json"),
        cwd=project.root,
    )
    project.remember_layers(result.stderr)
    assert result.exit_code == 1, result.describe()
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    [error] = errors
    assert f'RUN echo "{token} compiling" && exit 3' in error  # the failing step
    assert "non-zero code: 3" in error
    assert "never" not in error
    assert snapshot(project.root) == before
    assert wait_until_gone(docker_client, token) == [], "failed step's container left behind"


UNSAFE_NAMES = ["../x", "a;b", "a/b", "$(touch pwned)", "`touch pwned`", "a b", "..", "x\\y", ""]


@pytest.mark.parametrize("command", ["build-container", "export-container"])
@pytest.mark.parametrize("name", UNSAFE_NAMES)
def test_unsafe_asset_names_are_rejected_before_any_file_is_touched(
    project: StarterProject, monkeypatch, tmp_path: Path, command: str, name: str
) -> None:
    engine_calls: list[str] = []

    def no_engine(*_args, **_kwargs):
        engine_calls.append("docker")
        raise AssertionError("the Docker engine must not be used for an invalid name")

    monkeypatch.setattr(docker_client, "connect", no_engine)
    monkeypatch.setattr(docker_build, "build_image", no_engine)
    monkeypatch.setattr(docker_export, "export_filesystem", no_engine)
    before = snapshot(tmp_path)  # the project and everything around it

    args = [command, "--container-asset-name", name, "--package-path", project.package_rel]
    if command == "export-container":
        args += ["--container-image-uri", "panorama-cli-test/base:bookworm-amd64"]
    else:
        args += ["--platform", "linux/amd64"]
    result = project.cli(*args)

    assert result.exit_code == 1, result.describe()
    assert "invalid asset name" in result.stderr
    assert "Traceback" not in result.stderr
    assert engine_calls == []
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("package_path", ["../outside", "/etc", "packages/../../x", "graphs"])
def test_package_path_outside_packages_is_rejected(
    project: StarterProject, monkeypatch, tmp_path: Path, package_path: str
) -> None:
    monkeypatch.setattr(docker_client, "connect", lambda *a, **k: pytest.fail("engine used"))
    (tmp_path / "work" / "outside").mkdir()
    before = snapshot(tmp_path)
    result = project.cli(
        "build-container",
        "--container-asset-name",
        "app_code",
        "--package-path",
        package_path,
        "--platform",
        "linux/amd64",
    )
    assert result.exit_code == 1, result.describe()
    assert "not a package folder of this project" in result.stderr
    assert snapshot(tmp_path) == before


@pytest.mark.docker
def test_asset_name_with_a_leading_dash_is_valid_and_builds(
    project: StarterProject, base_image_amd64: str
) -> None:
    """'-code' matches NodeAssetName ([a-zA-Z0-9-_]+), so build-container must accept it.

    The Docker tag build-container derives from it (panorama-cli/<package>:-code) is not a
    valid reference (a tag cannot start with '-'), so the build is refused today.
    """
    result = project.cli(
        "build-container",
        "--container-asset-name=-code",
        "--package-path",
        project.package_rel,
        "--platform",
        "linux/amd64",
        "--build-arg",
        f"BASE_IMAGE={base_image_amd64}",
        "--json",
    )
    assert result.exit_code == 0, result.describe()
    project.tags.append(result.json()["image"])
    [asset] = project.package_json()["nodePackage"]["assets"]
    assert asset["name"] == "-code"


# --------------------------------------------------------------------------- images never collide


@pytest.mark.docker
def test_two_projects_get_two_tags_and_run_uses_the_image_its_asset_came_from(
    project: StarterProject, tmp_path: Path, docker_client, base_image_amd64: str, monkeypatch
) -> None:
    """Issue 15 §6: the same package in two projects gets two tags; ``run --in-container``
    resolves the image by the id the asset was exported from, not by a tag that can move, and
    says so in one note when that image is gone."""
    from panorama_cli.localrun.apps.container_images import prepare_containers, resolve_image
    from panorama_cli.localrun.plan import RunOptions, build_plan

    monkeypatch.setenv("PANORAMA_CLI_CACHE", str(tmp_path / "cache"))
    # project B: the same account, package name and version in another folder
    other_work = tmp_path / "other"
    other_work.mkdir()
    made = run_cli(
        ["init-project", "--name", "proj", "--account-id", project.account], cwd=other_work
    )
    assert made.exit_code == 0, made.describe()
    assert run_cli(["create-package", "--name", "app"], cwd=other_work / "proj").exit_code == 0
    other = StarterProject(
        other_work / "proj",
        project.account,
        other_work / "proj" / project.package.relative_to(project.root),
    )
    other.engine = project.engine
    try:
        ids = {}
        for which, starter in (("A", project), ("B", other)):
            (starter.package / "src" / "who.txt").write_text(which)  # two different images
            built = starter.build("code", base_image_amd64, "--platform", "linux/amd64")
            assert built.exit_code == 0, built.describe()
            ids[which] = docker_client.images.get(built.json()["image"]).id
        tag_a, tag_b = project.tags[0], other.tags[0]
        assert tag_a != tag_b and ids["A"] != ids["B"]
        assert tag_a.split(":")[0].startswith(f"panorama-cli/{project.account}-app-1-0-")

        def resolved(starter: StarterProject):
            plan = build_plan(Project(starter.root), RunOptions(in_container=True))
            [business] = plan.business
            return resolve_image(docker_client, business, None, None)

        assert resolved(project).image_id == ids["A"] and resolved(project).note == ""
        assert resolved(other).image_id == ids["B"]
        # another build moves A's tag onto B's image: A still runs its own image, by id
        docker_client.images.get(ids["B"]).tag(*tag_a.split(":"))
        assert docker_client.images.get(tag_a).id == ids["B"]
        assert resolved(project).image_id == ids["A"]
        # A's image is gone: the project's tag stands in, with one note that says so
        docker_client.images.remove(ids["A"], force=True)
        fallback = resolved(project)
        assert fallback.image_id == ids["B"] and fallback.image == tag_a
        assert "is not in the Docker engine any more" in fallback.note
        assert "rebuild with build-container" in fallback.note
        notes: list[str] = []
        plan = build_plan(Project(project.root), RunOptions(in_container=True))
        runtime = prepare_containers(plan, lambda _event, data: notes.append(data["text"]))
        with contextlib.suppress(Exception):
            runtime.client.close()
        assert [n for n in notes if "any more" in n] == [fallback.note]
    finally:
        other.remove_images()
