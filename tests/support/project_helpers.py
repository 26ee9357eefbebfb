"""Helpers for tests that drive the CLI on a project folder."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from tests.support.cli_runner import CliResult, run_cli


def run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> CliResult:
    """Run ``panorama-cli args`` in-process from ``cwd`` (see tests.support.cli_runner)."""
    return run_cli(args, cwd=cwd, env=env)


#: The project lock file (panorama_cli.project.lock) stays after the first writing command; it
#: holds no project content.
LOCK_FILES = {".panorama-cli.lock", ".panorama-cli.lock.owner"}


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes), to prove a command changed nothing.

    The project lock file is left out (it is created by the first command that locks).
    """
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in LOCK_FILES
    }


def load(path: Path):
    return json.loads(path.read_text())


def sha256(path: Path) -> str:
    """Hex sha256 of the file (read in 1 MiB chunks: asset files may be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def make_model_archive(path: Path, payload: bytes = b"weights") -> Path:
    """A real .tar.gz holding one file, as a model archive."""
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("model.pth")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return path


def model_descriptor(path: Path) -> Path:
    """A filled-in mlModelDescriptor (squeezenet-like)."""
    path.write_text(
        json.dumps(
            {
                "mlModelDescriptor": {
                    "envelopeVersion": "2021-01-01",
                    "framework": "PYTORCH",
                    "inputs": [{"name": "data", "shape": [1, 3, 224, 224]}],
                }
            },
            indent=4,
        )
        + "\n"
    )
    return path
