"""README.md snippets work when pasted: shell blocks parse with ``bash -n``, have no comment
after a line continuation (which ends the command there), no ``<placeholder>`` (a
redirection once pasted) and no ``a|b`` alternatives (a pipeline); JSON blocks parse; the
quick start runs as it stands, in a folder holding the model and the video it names."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.localrun.helpers import require_sandbox
from tests.support.paths import REPO, SHARED, VIDEO
from tests.support.shared import require

README = REPO / "README.md"


def blocks(language: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_has_shell_blocks():
    assert len(blocks("shell")) >= 5


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
@pytest.mark.parametrize("index", range(len(blocks("shell"))))
def test_shell_block_parses_and_pastes(index):
    block = blocks("shell")[index]
    done = subprocess.run(["bash", "-n"], input=block, text=True, capture_output=True)
    assert done.returncode == 0, f"block {index}:\n{block}\n{done.stderr}"
    for line in block.splitlines():
        code = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
        assert not re.search(r"\\\s+\S", line), f"text after a line continuation: {line!r}"
        assert not re.search(r"\\\s+$", line), f"space after a line continuation: {line!r}"
        unquoted = re.sub(r"'[^']*'|\"[^\"]*\"", "", code)
        assert not re.search(r"<[a-zA-Z_ ]+>", unquoted), f"placeholder in {line!r}"
        assert not re.search(r"\S\|\S", unquoted), f"alternatives (a pipeline) in {line!r}"


@pytest.mark.parametrize("index", range(len(blocks("json"))))
def test_json_block_parses(index):
    block = blocks("json")[index].strip()
    json.loads(block if block.startswith("{") else "{" + block + "}")


def test_help_completion_line_pastes():
    from click.testing import CliRunner

    from panorama_cli.cli import cli

    out = CliRunner().invoke(cli, ["--help"], terminal_width=80).output
    line = next(line for line in out.splitlines() if "_PANORAMA_CLI_COMPLETE" in line)
    command = line[line.index("eval") :]
    assert command == 'eval "$(_PANORAMA_CLI_COMPLETE=bash_source panorama-cli)"', out


def quick_start() -> str:
    """The first shell block under "## Quick start"."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Quick start") :]
    return re.findall(r"^```shell\n(.*?)^```", section, flags=re.S | re.M)[0]


def test_quick_start_runs_as_pasted(tmp_path: Path) -> None:
    """Issue 15: the quick start, verbatim, in a folder with yolox_nano.onnx and vtest.avi (from
    ../shared), ``panorama-cli`` on PATH: exit 0, the run's HDMI video and report are there."""
    model = SHARED / "models" / "yolox_nano" / "yolox_nano.onnx"
    require(model, VIDEO)
    require_sandbox()
    shutil.copy(model, tmp_path / "yolox_nano.onnx")
    shutil.copy(VIDEO, tmp_path / "vtest.avi")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    launcher = bin_dir / "panorama-cli"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m panorama_cli "$@"\n')
    launcher.chmod(0o755)
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=str(REPO))
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    block = quick_start()
    assert "panorama-cli run" in block, block
    done = subprocess.run(
        ["bash", "-e"], input=block, text=True, capture_output=True, cwd=tmp_path, env=env,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, f"{block}\n{done.stderr}"
    runs = tmp_path / "people-counter" / ".panorama-run"
    [run_dir] = [p for p in runs.iterdir() if not p.name.startswith(".")]  # .models: the cache
    report = json.loads((run_dir / "report.json").read_text())
    assert report["cameras"]["front_camera"]["frames"] == 100, report
    assert (run_dir / "hdmi" / "front_camera.mp4").stat().st_size > 10_000
    assert "people in region" in (run_dir / "logs" / "app.log").read_text()
