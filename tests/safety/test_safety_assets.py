"""Issue 8, F1/F3/F6: replacing an asset deletes only superseded content-addressed files
directly in assets/, never through a symlink, never when a package cannot be read, and its
clean-up never undoes the commit."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from panorama_cli.project import asset_cleanup
from tests.support.project_helpers import make_model_archive, run, sha256
from tests.support.safety import (
    ACCOUNT,
    PKG,
    add_model,
    package_json,
    set_uris,
)


def impl(root: Path) -> dict:
    return package_json(root)["nodePackage"]["assets"][0]["implementations"][0]


def assert_replaced(root: Path, archive: Path) -> None:
    """package.json names the new archive, and the file is there."""
    uri = impl(root)["assetUri"]
    assert uri == f"{sha256(archive)}.tar.gz"
    assert (root / "assets" / uri).read_bytes() == archive.read_bytes()
    assert (root / "assets" / impl(root)["descriptorUri"]).is_file()


def test_superseded_files_are_removed(project: Path, tmp_path: Path) -> None:
    old = impl(project)
    archive = make_model_archive(tmp_path / "second.tar.gz", b"second weights")
    result = add_model(project, archive)
    assert result.exit_code == 0, result.describe()
    assert_replaced(project, archive)
    assert not (project / "assets" / old["assetUri"]).exists()
    # the descriptor did not change, so its file is the same one and stays
    assert (project / "assets" / old["descriptorUri"]).exists()
    assert "warning" not in result.stderr


def test_uris_outside_assets_are_never_deleted(project: Path, tmp_path: Path) -> None:
    # "../../victim.txt" from assets/ is tmp_path/victim.txt; an absolute descriptorUri names a
    # stand-in private key in a stand-in home folder.
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    key = tmp_path / "home" / ".ssh" / "id_rsa"
    key.parent.mkdir(parents=True)
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----")
    set_uris(project, "../../victim.txt", str(key))
    archive = make_model_archive(tmp_path / "second.tar.gz", b"second weights")

    result = add_model(project, archive)

    assert result.exit_code == 0, result.describe()
    assert victim.read_text() == "precious"
    assert key.read_text() == "-----BEGIN OPENSSH PRIVATE KEY-----"
    assert_replaced(project, archive)
    assert "'../../victim.txt'" in result.stderr and str(key) in result.stderr


def test_non_content_address_in_assets_is_kept(project: Path, tmp_path: Path) -> None:
    mine = project / "assets" / "notes.json"
    mine.write_text("{}")
    long_name = "a" * 300 + ".json"  # longer than a file name may be
    set_uris(project, "notes.json", long_name)
    archive = make_model_archive(tmp_path / "second.tar.gz", b"second weights")
    result = add_model(project, archive)
    assert result.exit_code == 0, result.describe()
    assert mine.read_text() == "{}"
    assert_replaced(project, archive)  # F3: the clean-up warning did not undo the commit
    assert result.stderr.count("warning") == 2


def test_symlinked_asset_file_is_not_followed(project: Path, tmp_path: Path) -> None:
    old = impl(project)["assetUri"]
    outside = tmp_path / "outside.bin"
    outside.write_bytes((project / "assets" / old).read_bytes())
    (project / "assets" / old).unlink()
    (project / "assets" / old).symlink_to(outside)
    archive = make_model_archive(tmp_path / "second.tar.gz", b"second weights")

    result = add_model(project, archive)

    assert result.exit_code == 0, result.describe()
    assert outside.is_file() and (project / "assets" / old).is_symlink()
    assert f"assets/{old}" in result.stderr and "not a regular file" in result.stderr
    assert_replaced(project, archive)


def test_symlinked_assets_folder_deletes_nothing(project: Path, tmp_path: Path) -> None:
    old = impl(project)["assetUri"]
    elsewhere = tmp_path / "elsewhere"
    (project / "assets").rename(elsewhere)
    (project / "assets").symlink_to(elsewhere)
    archive = make_model_archive(tmp_path / "second.tar.gz", b"second weights")

    result = add_model(project, archive)

    assert result.exit_code == 0, result.describe()
    assert (elsewhere / old).is_file()
    assert "real folder" in result.stderr


def test_unreadable_sibling_package_keeps_superseded_files(project: Path, tmp_path: Path) -> None:
    """F6: a sibling package.json that does not parse may use the old files: keep them."""
    old = impl(project)
    sibling = project / "packages" / f"{ACCOUNT}-other-1.0"
    sibling.mkdir()
    text = json.dumps({"nodePackage": {"assets": [{"implementations": [old]}]}})
    (sibling / "package.json").write_text(text[:-1] + ",}")  # trailing comma
    archive = make_model_archive(tmp_path / "second.tar.gz", b"second weights")

    result = add_model(project, archive)

    assert result.exit_code == 0, result.describe()
    assert (project / "assets" / old["assetUri"]).is_file()
    assert "kept the superseded" in result.stderr and "other-1.0" in result.stderr
    assert_replaced(project, archive)


def test_non_object_sibling_package_keeps_superseded_files(project: Path, tmp_path: Path) -> None:
    old = impl(project)
    sibling = project / "packages" / f"{ACCOUNT}-other-1.0"
    sibling.mkdir()
    (sibling / "package.json").write_text("[1, 2]\n")
    archive = make_model_archive(tmp_path / "second.tar.gz", b"second weights")
    result = add_model(project, archive)
    assert result.exit_code == 0, result.describe()
    assert (project / "assets" / old["assetUri"]).is_file()


def test_failing_cleanup_never_undoes_the_commit(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F3: whatever the post-commit clean-up raises, the new files and manifests stay."""

    def broken(*args, **kwargs):
        raise OSError(36, "File name too long")

    monkeypatch.setattr(asset_cleanup, "remove_superseded", broken)
    archive = make_model_archive(tmp_path / "second.tar.gz", b"second weights")
    result = add_model(project, archive)
    assert result.exit_code == 0, result.describe()
    assert_replaced(project, archive)
    assert "clean-up after the change did not finish" in result.stderr


def test_remove_superseded_needs_a_regular_file(tmp_path: Path) -> None:
    assets_dir = tmp_path / "assets"
    assets_dir.mkdir()
    folder = "0" * 64 + ".json"
    (assets_dir / folder).mkdir()
    warnings: list[str] = []
    assert asset_cleanup.remove_superseded(assets_dir, [folder], set(), warn=warnings.append) == []
    assert (assets_dir / folder).is_dir() and len(warnings) == 1


@pytest.mark.parametrize(
    "uri",
    ["../../victim.txt", "/etc/passwd", "sub/" + "0" * 64 + ".json"],
)
def test_validate_reports_uris_outside_assets(project: Path, uri: str) -> None:
    set_uris(project, uri, impl(project)["descriptorUri"])
    result = run(project, "validate")
    assert result.exit_code == 1, result.describe()
    assert "/assetUri" in result.stdout and uri in result.stdout


def test_validate_reports_a_symlink_in_assets(project: Path, tmp_path: Path) -> None:
    old = impl(project)["assetUri"]
    outside = tmp_path / "outside.bin"
    outside.write_bytes((project / "assets" / old).read_bytes())
    (project / "assets" / old).unlink()
    os.symlink(outside, project / "assets" / old)
    result = run(project, "validate")
    assert result.exit_code == 1, result.describe()
    assert "symlink" in result.stdout and PKG in result.stdout
