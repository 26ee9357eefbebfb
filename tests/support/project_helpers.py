"""Helpers for tests that drive the CLI on a project folder."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


def run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    """Run ``panorama-cli args`` in-process from ``cwd`` through the real entry point."""
    from panorama_cli.cli import main

    runner = CliRunner()
    old = Path.cwd()
    os.chdir(cwd)
    try:
        result = runner.invoke(_Entry(main), list(args), env=env, catch_exceptions=False)
    finally:
        os.chdir(old)
    return Result(result.exit_code, result.stdout, result.stderr)


class _Entry:
    """Adapter so CliRunner can call ``main(argv)`` (which calls sys.exit)."""

    def __init__(self, main):
        self.main_fn = main
        self.name = "panorama-cli"

    def main(self, args=None, prog_name=None, **_):
        self.main_fn(list(args or []))


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes), to prove a command changed nothing."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def load(path: Path):
    return json.loads(path.read_text())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
