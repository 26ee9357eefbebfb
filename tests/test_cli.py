"""The root command: --debug shows the library modules' debug log lines on stderr (quiet
without it); -h on every command."""

from __future__ import annotations

import re

import pytest

from panorama_cli.cli import COMMANDS
from tests.support.cli_runner import run_cli_subprocess
from tests.support.project_helpers import run

ACCOUNT = "111122223333"
DEBUG_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} DEBUG panorama_cli\.[a-z_.]+: ", re.M)


def _project(tmp_path):
    assert run(tmp_path, "init-project", "--name", "app", "--account-id", ACCOUNT).exit_code == 0
    root = tmp_path / "app"
    assert run(root, "create-package", "--name", "code").exit_code == 0
    return root


def test_debug_validate_shows_debug_lines_on_stderr(tmp_path):
    root = _project(tmp_path)
    result = run_cli_subprocess(["--debug", "validate", "--json"], cwd=root)
    lines = DEBUG_LINE.findall(result.stderr)
    assert lines, result.describe()
    assert "panorama_cli.project.validation: validated" in result.stderr
    assert (
        "panorama_cli.project.graph_build: application graph graphs/app/graph.json" in result.stderr
    )
    assert '"problems"' in result.stdout and "DEBUG" not in result.stdout  # data stays clean


def test_without_debug_no_debug_lines(tmp_path):
    root = _project(tmp_path)
    result = run_cli_subprocess(["validate"], cwd=root)
    assert DEBUG_LINE.search(result.stderr) is None, result.describe()
    in_process = run(root, "validate")  # an earlier --debug run in this process leaves nothing
    assert DEBUG_LINE.search(in_process.stderr) is None


def test_debug_from_the_environment(tmp_path):
    root = _project(tmp_path)
    result = run_cli_subprocess(["validate"], cwd=root, env={"PANORAMA_CLI_DEBUG": "1"})
    assert DEBUG_LINE.search(result.stderr), result.describe()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_takes_dash_h(tmp_path, command):
    """-h comes from the root group's context settings (no command repeats them)."""
    result = run(tmp_path, command, "-h")
    assert result.exit_code == 0, result.describe()
    assert f"Usage: panorama-cli {command}" in result.stdout
