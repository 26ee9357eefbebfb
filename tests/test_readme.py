"""README.md snippets work when pasted: shell blocks parse with ``bash -n``, have no comment
after a line continuation (which ends the command there), no ``<placeholder>`` (a
redirection once pasted) and no ``a|b`` alternatives (a pipeline); JSON blocks parse."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from tests.support.paths import REPO

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
