"""Issue 8, F2: a failed multi-file change is undone completely.

Real read-only folders (a read-only bind mount as root, chmod otherwise) and a real full disk
(a small tmpfs, root only: CI runs as root; elsewhere the tmpfs tests skip with one reason).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from panorama_cli.project.manifests import Transaction
from tests.support.project_helpers import make_model_archive, run, sha256, snapshot
from tests.support.safety import (
    ACCOUNT,
    PKG,
    add_model,
    fill,
    make_model_project,
    package_json,
    read_only,
    small_tmpfs,
)


def tree(root: Path) -> list[str]:
    """Every path (files and folders) under ``root``, lock files left out."""
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if not p.name.startswith(".panorama-cli")
    )


def error_lines(stderr: str) -> list[str]:
    """The error lines of a run (a byte-progress bar may precede them); never a traceback."""
    assert "Traceback" not in stderr
    return [line for line in stderr.splitlines() if line.startswith("Error")]


def test_add_raw_model_with_a_read_only_graph_folder_changes_nothing(
    project: Path, tmp_path: Path
) -> None:
    before, paths = snapshot(project), tree(project)
    archive = make_model_archive(tmp_path / "second.tar.gz", b"second weights")
    with read_only(project / "graphs" / "p"):
        # a new asset name: package.json (first write) and graph.json (second write) change
        result = add_model(project, archive, asset="other")
    assert result.exit_code == 1, result.describe()
    assert "graph" in result.stderr and len(error_lines(result.stderr)) == 1
    assert snapshot(project) == before
    assert tree(project) == paths  # no backup, temp or new asset file left


def test_add_raw_model_with_a_read_only_package_folder_changes_nothing(
    project: Path, tmp_path: Path
) -> None:
    before, paths = snapshot(project), tree(project)
    archive = make_model_archive(tmp_path / "second.tar.gz", b"second weights")
    with read_only(project / PKG):
        result = add_model(project, archive)
    assert result.exit_code == 1, result.describe()
    assert snapshot(project) == before and tree(project) == paths


def test_failed_add_keeps_an_identical_asset_that_was_there(project: Path, tmp_path: Path) -> None:
    """The rollback removes only files this command created, not an identical older one."""
    same = tmp_path / "p-first.tar.gz"  # the archive squeezenet already uses
    before = snapshot(project)
    with read_only(project / "graphs" / "p"):
        result = add_model(project, same, asset="again")
    assert result.exit_code == 1, result.describe()
    assert snapshot(project) == before
    uri = package_json(project)["nodePackage"]["assets"][0]["implementations"][0]["assetUri"]
    assert sha256(project / "assets" / uri) == sha256(same)


def test_create_package_with_a_read_only_graph_folder_leaves_no_folder(tmp_path: Path) -> None:
    assert run(tmp_path, "init-project", "--name", "p", "--account-id", ACCOUNT).exit_code == 0
    root = tmp_path / "p"
    paths = tree(root)
    with read_only(root / "graphs" / "p"):
        result = run(root, "create-package", "--name", "cam", "--type", "Camera")
    assert result.exit_code == 1, result.describe()
    assert tree(root) == paths  # no packages/<account>-cam-1.0, no staging folder


def test_import_application_with_a_read_only_graph_folder_renames_nothing(
    project: Path,
) -> None:
    before, paths = snapshot(project), tree(project)
    with read_only(project / "graphs" / "p"):
        result = run(project, "import-application", "--account-id", "999988887777")
    assert result.exit_code == 1, result.describe()
    assert snapshot(project) == before and tree(project) == paths


def test_transaction_restores_every_file_when_a_later_step_fails(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "package.json", tmp_path / "b" / "graph.json"
    for path in (a, b):
        path.parent.mkdir()
        path.write_text("old\n")
    moved = tmp_path / "folder"
    moved.mkdir()
    tx = Transaction()
    tx.rename(moved, tmp_path / "renamed")
    tx.write(a, "new a\n")
    tx.write(b, "new b\n")
    with read_only(b.parent), pytest.raises(Exception, match="graph.json"):
        tx.commit()
    assert a.read_text() == "old\n" and b.read_text() == "old\n"
    assert moved.is_dir() and not (tmp_path / "renamed").exists()
    assert sorted(p.name for p in a.parent.iterdir()) == ["package.json"]  # backup gone
    assert not tx.committed


# ------------------------------------------------------------------ a real full disk (tmpfs)

#: Free space left before the command, KiB, page by page (4 KiB) around what it writes: the
#: archive (~48 KiB), the descriptor, then package.json and graph.json (~24 KiB).
LEVELS_KIB = list(range(48, 132, 4))


def _fresh(mount: Path) -> Path:
    """A model project on ``mount`` whose graph.json spans several pages (~24 KiB): its new
    version then needs more free space than package.json's, which opens the window where the
    first manifest lands and the second does not."""
    for entry in mount.iterdir():
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    root = make_model_project(mount)
    assert run(root, "add-panorama-package", "--type", "camera", "--name", "cam0").exit_code == 0
    graph_path = root / "graphs" / "p" / "graph.json"
    graph = json.loads(graph_path.read_text())
    nodes = graph["nodeGraph"]["nodes"]
    camera = next(n for n in nodes if n["name"] == "cam0")
    nodes += [{**camera, "name": f"cam{i}"} for i in range(1, 120)]
    graph_path.write_text(json.dumps(graph, indent=4) + "\n")
    return root


def test_add_raw_model_on_a_full_disk_is_all_or_nothing(tmp_path: Path) -> None:
    """At each free-space level the command either lands completely or changes nothing."""
    outcomes = []
    payload = os.urandom(48 * 1024)  # incompressible: the archive is ~48 KiB
    with small_tmpfs(tmp_path / "disk", 1024) as mount:
        for level in LEVELS_KIB:
            root = _fresh(mount)
            archive = make_model_archive(tmp_path / "second.tar.gz", payload)
            before, paths = snapshot(root), tree(root)
            fill(mount, level * 1024)
            result = add_model(root, archive, asset="other")
            (mount / "filler").unlink(missing_ok=True)
            outcomes.append(result.exit_code)
            if result.exit_code == 0:
                assets = package_json(root)["nodePackage"]["assets"]
                impl = next(a for a in assets if a["name"] == "other")["implementations"][0]
                assert sha256(root / "assets" / impl["assetUri"]) == sha256(archive)
                assert (root / "assets" / impl["descriptorUri"]).is_file()
                assert "other_interface" in (root / "graphs" / "p" / "graph.json").read_text()
            else:
                assert result.exit_code == 1, result.describe()
                assert len(error_lines(result.stderr)) == 1, result.describe()
                assert snapshot(root) == before, f"level {level} KiB: {result.describe()}"
                assert tree(root) == paths, f"level {level} KiB"
    assert 1 in outcomes and 0 in outcomes  # the levels span failing and succeeding runs


def test_create_package_on_a_full_disk_is_all_or_nothing(tmp_path: Path) -> None:
    outcomes = []
    with small_tmpfs(tmp_path / "disk", 1024) as mount:
        for level in range(16, 400, 48):
            for entry in mount.iterdir():
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            assert run(mount, "init-project", "--name", "p", "--account-id", ACCOUNT).exit_code == 0
            root = mount / "p"
            before, paths = snapshot(root), tree(root)
            fill(mount, level * 1024)
            result = run(root, "create-package", "--name", "code")
            (mount / "filler").unlink(missing_ok=True)
            outcomes.append(result.exit_code)
            if result.exit_code == 0:
                assert run(root, "validate").exit_code in (0, 1)  # starter is unfinished
                assert (root / "packages" / f"{ACCOUNT}-code-1.0" / "package.json").is_file()
            else:
                assert result.exit_code == 1, result.describe()
                assert len(error_lines(result.stderr)) == 1, result.describe()
                assert snapshot(root) == before and tree(root) == paths, f"level {level} KiB"
    assert 1 in outcomes
