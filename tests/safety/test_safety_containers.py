"""Issue 8, F5 with a real Docker engine: SIGTERM mid-export leaves no export container; the
container a SIGKILLed export leaves is removed by the next command; F11 empty image names."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import docker
import pytest

from panorama_cli.build import docker_containers, docker_engine
from tests.support.project_helpers import run, snapshot
from tests.support.safety import ACCOUNT, start

PKG = f"packages/{ACCOUNT}-app-1.0"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    assert run(tmp_path, "init-project", "--name", "p", "--account-id", ACCOUNT).exit_code == 0
    root = tmp_path / "p"
    assert run(root, "create-package", "--name", "app").exit_code == 0
    return root


def export(project: Path, image: str) -> subprocess.Popen:
    return start(
        project,
        "export-container",
        "--container-asset-name",
        "app_code",
        "--container-image-uri",
        image,
        "--package-path",
        PKG,
    )


def owned_by(client, pid: int) -> list[str]:
    return [
        c.id
        for c in client.containers.list(
            all=True,
            sparse=True,
            filters={
                "label": [docker_engine.CONTAINER_LABEL, f"{docker_engine.OWNER_PID_LABEL}={pid}"]
            },
        )
    ]


def signal_mid_export(proc: subprocess.Popen, project: Path, signum: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        partial = [p for p in (project / "assets").iterdir() if p.name.startswith(".tmp-")]
        if partial and partial[0].stat().st_size > 0:
            os.kill(proc.pid, signum)
            return
        time.sleep(0.01)
    pytest.fail("the export ended before the signal could be sent")


@pytest.mark.docker
def test_sigterm_mid_export_leaves_no_container(
    project: Path, docker_client, base_image_amd64: str
) -> None:
    before = snapshot(project)
    proc = export(project, base_image_amd64)
    signal_mid_export(proc, project, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "terminated; nothing was changed" in err and "Traceback" not in err
    assert snapshot(project) == before
    assert not [p for p in (project / "assets").iterdir() if p.name.startswith(".tmp-")]
    assert owned_by(docker_client, proc.pid) == []


@pytest.mark.docker
def test_container_of_a_killed_export_is_removed_by_the_next_command(
    project: Path, docker_client, base_image_amd64: str
) -> None:
    proc = export(project, base_image_amd64)
    signal_mid_export(proc, project, signal.SIGKILL)
    proc.communicate(timeout=60)
    left = owned_by(docker_client, proc.pid)
    assert left, "the SIGKILL should have left the export container"
    result = run(
        project,
        "export-container",
        "--container-asset-name",
        "app_code",
        "--container-image-uri",
        base_image_amd64,
        "--package-path",
        PKG,
    )
    assert result.exit_code == 0, result.describe()
    assert owned_by(docker_client, proc.pid) == []
    assert not [p for p in (project / "assets").iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.docker
def test_only_containers_of_dead_owners_are_stale(docker_client, base_image_amd64: str) -> None:
    dead = subprocess.Popen(["true"])  # a pid that is gone once it was waited for
    dead.wait()
    labels = {
        docker_engine.CONTAINER_LABEL: "export",
        docker_engine.HOST_LABEL: docker_containers._host(),
    }
    mine = docker_containers._create_container(
        docker_client, base_image_amd64, ["/bin/true"], None, "export"
    )
    orphan = docker_client.containers.create(
        base_image_amd64,
        ["/bin/true"],
        labels={**labels, docker_engine.OWNER_PID_LABEL: str(dead.pid)},
    )
    try:
        docker_engine.remove_stale_containers(docker_client)
        docker_client.containers.get(mine.id)  # a live owner's container stays
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(orphan.id)
    finally:
        for container in (mine, orphan):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)


@pytest.mark.parametrize("image", ["", " ", "\t"])
def test_empty_image_name_is_refused(project: Path, image: str) -> None:
    """F11: no Docker call for an empty image name, one line, nothing changed."""
    before = snapshot(project)
    result = run(
        project,
        "export-container",
        "--container-asset-name",
        "app_code",
        "--container-image-uri",
        image,
        "--package-path",
        PKG,
    )
    assert result.exit_code in (1, 2), result.describe()
    assert "image" in result.stderr.lower()
    assert snapshot(project) == before
