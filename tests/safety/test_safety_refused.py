"""Issue 15 §5: a refused command leaves the project byte for byte as it was (no lock file
either: arguments are checked before the lock), and a new project keeps its local state out
of git."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from panorama_cli.project.lock import LOCK_FILE
from tests.support.ci import unavailable
from tests.support.project_helpers import make_model_archive, run
from tests.support.safety import ACCOUNT, PKG


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` (folders as None, files as their bytes), lock files included."""
    return {
        str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes())
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture
def fresh(tmp_path: Path) -> Path:
    """A new project that no writing command has touched yet (no lock file)."""
    assert run(tmp_path, "init-project", "--name", "p", "--account-id", ACCOUNT).exit_code == 0
    return tmp_path / "p"


def refused(tmp_path: Path) -> list[list[str]]:
    archive = make_model_archive(tmp_path / "m.tar.gz", b"weights")
    pkg = PKG  # does not exist in a fresh project
    return [
        ["create-package", "--name", "../escape"],
        ["create-package", "--name", "ok", "--version", "1.0/../../x"],
        ["add-raw-model", "--model-asset-name", "../x", "--model-local-path", str(archive)],
        [
            "add-raw-model",
            "--model-asset-name",
            "m",
            "--model-local-path",
            str(archive),
            "--packages-path",
            str(tmp_path),
        ],
        ["build-container", "--container-asset-name", "../x", "--package-path", pkg],
        ["build-container", "--container-asset-name", "ok", "--package-path", "../../etc"],
        [
            "export-container",
            "--container-asset-name",
            "a b",
            "--container-image-uri",
            "x",
            "--package-path",
            pkg,
        ],
        ["add-panorama-package", "--type", "camera", "--name", "../cam"],
        ["remove-node", "--name", "../x"],
        ["remove-node", "--name", "no_such_node"],
        ["remove-package", "--name", "no_such_package"],
        ["add-edge", "--producer", "a.video_out", "--consumer", "b.video_in"],
        ["remove-edge", "--producer", "a.video_out", "--consumer", "b.video_in"],
        [
            "build-container",
            "--container-asset-name",
            "ok",
            "--package-path",
            pkg,
            "--platform",
            "linux/s390x",
        ],
        ["import-application", "--account-id", "../x"],
        ["add-dockerfile-stage", "--package-path", "/tmp", "--stage", "rtsp"],
        ["update-backpack", "--package-path", "packages/nope"],
    ]


def test_refused_commands_change_nothing(fresh: Path, tmp_path: Path) -> None:
    before = tree(fresh)
    assert LOCK_FILE not in before
    for args in refused(tmp_path):
        result = run(fresh, *args)
        assert result.exit_code in (1, 2), (args, result.describe())
        assert "Traceback" not in result.stderr, args
        assert tree(fresh) == before, args


def test_new_projects_ignore_runs_lock_and_serve_state(tmp_path: Path) -> None:
    git = shutil.which("git")
    if git is None:
        unavailable("git is not installed")
    assert run(tmp_path, "init-project", "--name", "p", "--account-id", ACCOUNT).exit_code == 0
    root = tmp_path / "p"
    result = run(root, "create-package", "--name", "cam", "--type", "Camera")
    assert result.exit_code == 0, result.describe()
    assert (root / LOCK_FILE).exists()
    (root / ".panorama-run" / "20260101-000000").mkdir(parents=True)
    (root / ".panorama-run" / "20260101-000000" / "camera.mp4").write_bytes(b"video")
    (root / ".panorama-serve").mkdir()
    (root / ".panorama-serve" / "state.json").write_text("{}")
    subprocess.run([git, "init", "-q", str(root)], check=True)
    subprocess.run([git, "-C", str(root), "add", "."], check=True)
    listed = subprocess.run(
        [git, "-C", str(root), "ls-files"], check=True, capture_output=True, text=True
    ).stdout.split()
    assert ".gitignore" in listed and "graphs/p/graph.json" in listed
    assert not [p for p in listed if p.startswith((".panorama-run", ".panorama-serve"))]
    assert LOCK_FILE not in listed and f"{LOCK_FILE}.owner" not in listed
