"""Issue 8, F7/F8/F10/L2: hostile files and inputs give one located line, never an internal
error, a hang or unbounded memory; NaN/Infinity and duplicate keys are refused."""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from panorama_cli.errors import UserError
from panorama_cli.project.manifests import loads
from tests.support.cli_runner import run_cli_subprocess
from tests.support.project_helpers import make_model_archive, run, snapshot
from tests.support.safety import ACCOUNT, PKG, add_model_args


def one_located_error(result, needle: str | tuple[str, ...]) -> None:
    text = result.stdout + result.stderr
    assert "internal error" not in text and "Traceback" not in text, result.describe()
    assert result.exit_code == 1, result.describe()
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.describe()
    needles = (needle,) if isinstance(needle, str) else needle
    assert any(n in text for n in needles), result.describe()


# --------------------------------------------------------------------------- manifest files


def _replace(path: Path, make) -> None:
    path.unlink()
    make(path)


HOSTILE = {
    "fifo": (lambda p: os.mkfifo(p), "not a regular file"),
    "dev_zero": (lambda p: p.symlink_to("/dev/zero"), "not a regular file"),
    # a symlink loop is no graph.json / package.json at all for the folder scans
    "loop": (lambda p: p.symlink_to(p.name), ("cannot read", "no graphs/", "has no folder")),
    "utf16": (
        lambda p: p.write_bytes('{"nodePackage": {}}'.encode("utf-16")),
        "not UTF-8 text (UTF-16?)",
    ),
    "deep": (lambda p: p.write_text("[" * 100_000 + "]" * 100_000), "nested more than"),
    "huge_int": (lambda p: p.write_text('{"a": ' + "9" * 5000 + "}"), "cannot read the JSON"),
    "oversize": (lambda p: p.write_bytes(b" " * (17 * 1024 * 1024) + b"{}"), "more than"),
    "folder": (lambda p: p.mkdir(), "not a regular file"),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
@pytest.mark.parametrize("target", ["graphs/p/graph.json", f"{PKG}/package.json"])
def test_hostile_manifest_gives_one_line(project: Path, kind: str, target: str) -> None:
    make, needle = HOSTILE[kind]
    _replace(project / target, make)
    for args in (["validate"], ["add-panorama-package", "--type", "camera", "--name", "c"]):
        result = run_cli_subprocess(args, cwd=project, timeout_s=60)
        if args == ["validate"] and target.endswith("package.json") and kind == "folder":
            # a folder called package.json: the package folder holds no package.json file
            assert result.exit_code in (0, 1) and "Traceback" not in result.stderr
            continue
        if args[0] == "add-panorama-package" and target.endswith("package.json"):
            # add-panorama-package reads only graph.json
            assert result.exit_code == 0, result.describe()
            continue
        one_located_error(result, needle)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{\n  "a": 1,\n  "b": NaN\n}', ":3:8: NaN is not a JSON number"),
        ('{\n  "s": "NaN",\n  "b": -Infinity\n}', ":3:8: -Infinity is not a JSON number"),
        ('{\n  "a": 1,\n  "a": 2\n}', ":3:3: duplicate key 'a'"),
        ('{"x": {"k": 1}, "y": {"k": 1, "k": 2}}', "duplicate key 'k'"),
    ],
)
def test_non_standard_json_is_refused_with_its_line(text: str, where: str) -> None:
    with pytest.raises(UserError) as info:
        loads(text, "f.json")
    assert where in str(info.value)


def test_nan_in_a_package_fails_validate_with_file_and_line(project: Path) -> None:
    path = project / PKG / "package.json"
    lines = path.read_text().splitlines()
    lines.insert(1, '    "x": NaN,')
    path.write_text("\n".join(lines) + "\n")
    result = run(project, "validate")
    assert result.exit_code == 1
    assert f"{PKG}/package.json:2:10: NaN is not a JSON number" in result.stdout + result.stderr


def test_duplicate_key_in_graph_refuses_a_change(project: Path) -> None:
    path = project / "graphs" / "p" / "graph.json"
    text = path.read_text().replace('"nodeGraph": {', '"nodeGraph": {\n"envelopeVersion": "x",', 1)
    path.write_text(text)
    before = snapshot(project)
    result = run(project, "add-panorama-package", "--type", "camera", "--name", "c")
    one_located_error(result, "duplicate key 'envelopeVersion'")
    assert snapshot(project) == before


@pytest.mark.parametrize(
    ("settings", "needle"),
    [('{"accountId": true}', "must be a string"), ("[1, 2]", "must be a JSON object")],
)
def test_bad_settings_are_refused(tmp_path: Path, settings: str, needle: str) -> None:
    assert run(tmp_path, "init-project", "--name", "p").exit_code == 0
    root = tmp_path / "p"
    (root / ".panorama-cli.json").write_text(settings)
    result = run(root, "create-package", "--name", "pk", env={"PANORAMA_ACCOUNT_ID": None})
    one_located_error(result, needle)
    assert list((root / "packages").iterdir()) == []


# --------------------------------------------------------------------------- model archives


def _gzip_not_tar(path: Path) -> None:
    path.write_bytes(gzip.compress(b"just some bytes, not a tar archive" * 100))


def _empty_tar(path: Path) -> None:
    with tarfile.open(path, "w:gz"):
        pass


def _folder_only_tar(path: Path) -> None:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("model")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)


def _sparse(path: Path) -> None:
    with open(path, "wb") as fh:
        fh.write(b"\x1f\x8b")
        fh.truncate(1536 * 1024 * 1024)  # 1.5 GB, sparse


def _truncated(path: Path) -> None:
    make_model_archive(path, os.urandom(64 * 1024))
    path.write_bytes(path.read_bytes()[:40])


ARCHIVES = {
    "two_bytes": (lambda p: p.write_bytes(b"\x1f\x8b"), "is not a .tar.gz archive"),
    "gzip_not_tar": (_gzip_not_tar, "is not a .tar.gz archive"),
    "empty_tar": (_empty_tar, "holds no file"),
    "folder_only": (_folder_only_tar, "holds no file"),
    "sparse": (_sparse, "is not a .tar.gz archive"),
    "truncated": (_truncated, "is not a .tar.gz archive"),
    "fifo": (lambda p: os.mkfifo(p), "not a regular file"),
}


@pytest.mark.parametrize("kind", sorted(ARCHIVES))
def test_bad_model_archive_is_refused(project: Path, tmp_path: Path, kind: str) -> None:
    make, needle = ARCHIVES[kind]
    archive = tmp_path / f"{kind}.tar.gz"
    make(archive)
    before = snapshot(project)
    result = run_cli_subprocess(add_model_args(archive, "m"), cwd=project, timeout_s=60)
    one_located_error(result, needle)
    assert snapshot(project) == before


@pytest.mark.parametrize("kind", ["dev_zero", "fifo"])
def test_descriptor_path_that_is_not_a_file_is_refused(
    project: Path, tmp_path: Path, kind: str
) -> None:
    descriptor = tmp_path / "descriptor.json"
    if kind == "fifo":
        os.mkfifo(descriptor)
    else:
        descriptor.symlink_to("/dev/zero")
    archive = make_model_archive(tmp_path / "ok.tar.gz")
    result = run_cli_subprocess(
        [
            "add-raw-model",
            "--model-asset-name",
            "m",
            "--model-local-path",
            str(archive),
            "--descriptor-path",
            str(descriptor),
        ],
        cwd=project,
        timeout_s=60,
    )
    one_located_error(result, "not a regular file")


def test_a_good_archive_with_a_folder_first_is_accepted(project: Path, tmp_path: Path) -> None:
    archive = tmp_path / "ok.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        folder = tarfile.TarInfo("model")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        info = tarfile.TarInfo("model/weights.bin")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"abcd"))
    result = run(
        project,
        "add-raw-model",
        "--model-asset-name",
        "m",
        "--model-local-path",
        str(archive),
        "--descriptor-path",
        f"{PKG}/descriptor.json",
    )
    assert result.exit_code == 0, result.describe()


# --------------------------------------------------------------------------- L2: umask


def test_asset_files_follow_the_umask(project: Path, tmp_path: Path) -> None:
    archive = make_model_archive(tmp_path / "u.tar.gz", b"umask weights")
    old = os.umask(0o077)
    try:
        result = run(
            project,
            "add-raw-model",
            "--model-asset-name",
            "u",
            "--model-local-path",
            str(archive),
            "--descriptor-path",
            f"{PKG}/descriptor.json",
        )
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.describe()
    uri = json.loads(result.stdout)["implementations"][0]["assetUri"]
    assert stat.S_IMODE((project / "assets" / uri).stat().st_mode) == 0o600
    assert ACCOUNT in PKG
