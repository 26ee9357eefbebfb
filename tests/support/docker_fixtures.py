"""Docker fixtures (registered in tests/conftest.py through pytest_plugins).

Request them by name in a test's arguments::

    def test_runs_on_arm64(docker_client, base_image_arm64):
        out = docker_client.containers.run(base_image_arm64, ["uname", "-m"],
                                           platform="linux/arm64", remove=True)

- ``docker_client``    (session) docker.DockerClient for DOCKER_HOST, already pinged.
- ``base_image_amd64`` (session) "panorama-cli-test/base:bookworm-amd64" (Debian minbase + python3).
- ``base_image_arm64`` (session) "panorama-cli-test/base:bookworm-arm64"; implies arm64_emulation.
- ``arm64_emulation``  (session) the binfmt_misc handler (BinfmtHandler) that runs aarch64 ELF.
- ``panorama_base_amd64`` / ``panorama_base_arm64`` (session) "panorama-cli/base:panorama-<arch>",
  the stand-in of public.ecr.aws/panorama/panorama-application (``base-image --flavor
  panorama``) that build-container builds Panorama FROM lines on.

Docker is *required* when CI=true or PANORAMA_REQUIRE_DOCKER=1: a missing engine, emulation or
base image is then a test failure (base images are built on demand), and a fixture-caused
(setup) skip of a test that uses these fixtures or carries the ``docker``/``arm64`` marker is
reported as a failure.
Elsewhere the tests skip with a message saying what is missing. Tests using the fixtures get
the ``docker`` (and ``arm64``) markers automatically, so ``pytest -m "not docker"`` works.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import base_images

DOCKER_FIXTURES = frozenset(
    {
        "docker_client",
        "base_image_amd64",
        "base_image_arm64",
        "panorama_base_amd64",
        "panorama_base_arm64",
    }
)
ARM64_FIXTURES = frozenset({"arm64_emulation", "base_image_arm64", "panorama_base_arm64"})


def docker_required() -> bool:
    """True when Docker tests must run (CI, or PANORAMA_REQUIRE_DOCKER=1)."""
    return (
        os.environ.get("CI", "").strip().lower() == "true"
        or os.environ.get("PANORAMA_REQUIRE_DOCKER", "").strip() == "1"
    )


def _unavailable(message: str) -> None:
    if docker_required():
        pytest.fail(f"{message} [required: CI=true or PANORAMA_REQUIRE_DOCKER=1]", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    host = os.environ.get("DOCKER_HOST", "<unset: default socket>")
    try:
        import docker

        client = docker.from_env(timeout=300)
        client.ping()
    except Exception as exc:
        _unavailable(f"Docker engine unreachable at DOCKER_HOST={host}: {exc}")
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def arm64_emulation() -> base_images.BinfmtHandler | None:
    """Skip/fail unless linux/arm64 binaries can run (in containers) on this host."""
    if base_images.host_arch() == "arm64":
        return None  # native
    problem = base_images.binfmt_problem("arm64")
    if problem:
        _unavailable(f"no arm64 emulation: {problem}")
    return base_images.find_binfmt_handler("arm64")


def _base_image(client: Any, arch: str) -> str:
    name = base_images.find_base_image(client, arch)
    if name:
        return name
    wanted = base_images.BASE_IMAGES[arch]
    hint = f"build it with: sudo .venv/bin/python -m tests.support.base_images --arch {arch}"
    if not docker_required():
        if shutil.which("debootstrap") is None:
            pytest.skip(f"{wanted} missing (or stale) and debootstrap is not installed; {hint}")
        if os.geteuid() != 0:
            pytest.skip(f"{wanted} missing (or stale) and building it needs root; {hint}")
    try:
        return base_images.ensure_base_image(client, arch)
    except Exception as exc:
        _unavailable(f"cannot build {wanted}: {exc}")
        raise  # unreachable: _unavailable raises


@pytest.fixture(scope="session")
def base_image_amd64(docker_client: Any) -> str:
    return _base_image(docker_client, "amd64")


@pytest.fixture(scope="session")
def base_image_arm64(docker_client: Any, arm64_emulation: Any) -> str:
    return _base_image(docker_client, "arm64")


def _panorama_base(client: Any, arch: str) -> str:
    wanted = base_images.PANORAMA_IMAGES[arch]
    if not docker_required():
        if shutil.which("debootstrap") is None and shutil.which("mmdebstrap") is None:
            pytest.skip(f"{wanted} is not built here and no Debian bootstrapper is installed")
        if os.geteuid() != 0 and shutil.which("mmdebstrap") is None:
            pytest.skip(f"{wanted} is not built here and building it needs root (debootstrap)")
    try:
        return base_images.ensure_panorama_image(client, arch)
    except Exception as exc:
        _unavailable(f"cannot build {wanted}: {exc}")
        raise  # unreachable: _unavailable raises


@pytest.fixture(scope="session")
def panorama_base_amd64(docker_client: Any) -> str:
    return _panorama_base(docker_client, "amd64")


@pytest.fixture(scope="session")
def panorama_base_arm64(docker_client: Any, arm64_emulation: Any) -> str:
    return _panorama_base(docker_client, "arm64")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & DOCKER_FIXTURES and not item.get_closest_marker("docker"):
            item.add_marker(pytest.mark.docker)
        if names & ARM64_FIXTURES and not item.get_closest_marker("arm64"):
            item.add_marker(pytest.mark.arm64)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """When Docker is required, a docker/arm64 test skipped by a fixture is a failure.

    Only setup-phase skips (a fixture found something missing) are converted; explicit
    skip/skipif markers and pytest.skip() calls in a test body are deliberate and stay.
    """
    report = yield
    if (
        report.when == "setup"
        and report.skipped
        and docker_required()
        and not hasattr(report, "wasxfail")
        and (item.get_closest_marker("docker") or item.get_closest_marker("arm64"))
        and not (item.get_closest_marker("skip") or item.get_closest_marker("skipif"))
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (
            f"docker/arm64 test skipped although Docker is required "
            f"(CI=true or PANORAMA_REQUIRE_DOCKER=1): {reason}"
        )
    return report
