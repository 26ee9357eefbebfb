"""Every command's --help has an example that would run: the example names the command and
only options the command has; the names that mean the same are accepted everywhere."""

from __future__ import annotations

import re
import shlex

import click
import pytest

from panorama_cli.cli import COMMANDS, cli
from tests.support.project_helpers import run


def command(name: str) -> click.Command:
    found = cli.get_command(click.Context(cli), name)
    assert found is not None
    return found


def examples(cmd: click.Command) -> list[list[str]]:
    """The example command lines in the epilog, continuations joined, comments dropped."""
    text = (cmd.epilog or "").replace("\\\n", " ")
    lines = [re.split(r"\s{2,}[#(]", line.strip(), maxsplit=1)[0] for line in text.splitlines()]
    return [shlex.split(line) for line in lines if line.startswith("panorama-cli ")]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_has_an_example_with_real_options(name):
    cmd = command(name)
    found = examples(cmd)
    assert found, f"{name} --help has no example"
    for words in found:
        other = command(words[1]) if words[1] in COMMANDS else None
        assert other is not None, words
        options = {o for p in other.params for o in [*p.opts, *p.secondary_opts]}
        used = [w.split("=", 1)[0] for w in words[2:] if w.startswith("-")]
        assert set(used) <= options, (words, set(used) - options)


@pytest.mark.parametrize(
    "name",
    ["build-container", "export-container", "update-backpack", "add-dockerfile-stage",
     "add-raw-model", "package-application"],
)  # fmt: skip
def test_package_path_and_packages_path_both_work(name):
    options = {opt for param in command(name).params for opt in param.opts}
    assert {"--package-path", "--packages-path"} <= options


def test_datasink_spellings(tmp_path):
    assert (
        run(tmp_path, "init-project", "--name", "a", "--account-id", "123456789012").exit_code == 0
    )
    app = tmp_path / "a"
    assert run(app, "create-package", "--name", "s1", "--type", "data_sink").exit_code == 0
    assert run(app, "create-package", "--name", "s2", "--type", "Datasink").exit_code == 0
    for spelling in ("datasink", "data_sink", "DATA_SINK"):
        result = run(app, "add-panorama-package", "--type", spelling, "--name", "hdmi")
        assert result.exit_code == 0, result.describe()
    text = (app / "graphs" / "a" / "graph.json").read_text()
    assert text.count("panorama::hdmi_data_sink.hdmi0") == 1
    assert text.count("sink_interface") == 2


def test_mistyped_package_folder_says_did_you_mean(tmp_path):
    run(tmp_path, "init-project", "--name", "a", "--account-id", "123456789012")
    app = tmp_path / "a"
    assert run(app, "create-package", "--name", "code").exit_code == 0
    result = run(app, "update-backpack", "--package-path", "packages/123456789012-cod-1.0")
    assert result.exit_code == 1
    assert "did you mean packages/123456789012-code-1.0?" in result.stderr
