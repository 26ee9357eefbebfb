"""Helpers of the tests/test_safety_*.py regression tests (issue 8): a model project, the
package.json of its model package, a real small tmpfs (root only)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.ci import unavailable
from tests.support.paths import REPO
from tests.support.project_helpers import make_model_archive, model_descriptor, run
from tests.support.signals import popen_interruptible

ACCOUNT = "111122223333"
PKG = f"packages/{ACCOUNT}-call_node-1.0"


def make_model_project(parent: Path, name: str = "p") -> Path:
    """``parent/name``: a project with Model package call_node whose asset ``squeezenet`` was
    added once with add-raw-model (so package.json and graph.json name real assets)."""
    assert run(parent, "init-project", "--name", name, "--account-id", ACCOUNT).exit_code == 0
    root = parent / name
    result = run(root, "create-package", "--name", "call_node", "--type", "Model")
    assert result.exit_code == 0, result.describe()
    model_descriptor(root / PKG / "descriptor.json")
    first = make_model_archive(parent / f"{name}-first.tar.gz", b"first weights")
    result = add_model(root, first)
    assert result.exit_code == 0, result.describe()
    return root


def add_model_args(archive: Path, asset: str = "squeezenet") -> list[str]:
    """The arguments of add-raw-model of ``archive`` as ``asset`` into the call_node package."""
    return [
        "add-raw-model",
        "--model-asset-name",
        asset,
        "--model-local-path",
        str(archive),
        "--descriptor-path",
        f"{PKG}/descriptor.json",
        "--packages-path",
        PKG,
    ]


def add_model(root: Path, archive: Path, asset: str = "squeezenet", **kwargs):
    """add-raw-model of ``archive`` as ``asset`` into the call_node package (in process)."""
    return run(root, *add_model_args(archive, asset), **kwargs)


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a ``python -m panorama_cli`` child: this checkout first on the path,
    no colour, plus ``extra``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


def start(cwd: Path, *args: str, **env: str) -> subprocess.Popen:
    """Start ``python -m panorama_cli *args`` in ``cwd`` (a real process; text pipes)."""
    return popen_interruptible(
        [sys.executable, "-m", "panorama_cli", *args],
        cwd=cwd,
        env=child_env(**env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def package_json(root: Path) -> dict:
    return json.loads((root / PKG / "package.json").read_text())


def set_uris(root: Path, asset_uri: str, descriptor_uri: str) -> None:
    """Point the squeezenet implementation at other names (as a hand edit would)."""
    data = package_json(root)
    impl = data["nodePackage"]["assets"][0]["implementations"][0]
    impl["assetUri"] = asset_uri
    impl["descriptorUri"] = descriptor_uri
    (root / PKG / "package.json").write_text(json.dumps(data, indent=4) + "\n")


def can_mount() -> str | None:
    """None when this process may mount a tmpfs, else why not."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root (CI runs the tests as root)"
    if shutil.which("mount") is None:
        return "no mount command"
    return None


@contextmanager
def small_tmpfs(where: Path, size_kib: int) -> Iterator[Path]:
    """Mount a real tmpfs of ``size_kib`` KiB on ``where`` (created), unmounted afterwards.

    Skips with one reason when this process is not root or mount is refused (outside CI);
    fails in CI (CI=true runs as root, so a refusal there is a broken machine).
    """
    reason = can_mount()
    if reason is None:
        where.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0755", "tmpfs", str(where)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            reason = f"mount -t tmpfs refused: {done.stderr.strip()}"
    if reason is not None:
        unavailable(reason)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def fill(folder: Path, leave_bytes: int) -> None:
    """Fill the file system of ``folder`` until about ``leave_bytes`` are free."""
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    if free > leave_bytes:
        with open(folder / "filler", "wb") as fh:
            try:
                fh.write(b"\0" * (free - leave_bytes))
            except OSError:
                pass


@contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """Make ``folder`` really read-only during the block.

    As root (who ignores permission bits) a read-only bind mount of the folder onto itself;
    otherwise ``chmod 0555``. Skips (fails in CI) when neither works.
    """
    if os.geteuid() != 0:
        mode = folder.stat().st_mode
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(mode)
        return
    done = subprocess.run(
        ["mount", "--bind", str(folder), str(folder)], capture_output=True, text=True, check=False
    )
    if done.returncode == 0:
        done = subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(folder)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)
    if done.returncode != 0:
        unavailable(f"cannot make {folder} read-only as root: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)
