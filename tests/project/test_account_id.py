"""The account id: where it comes from, how a project gets one later, what is refused."""

from __future__ import annotations

import json

import pytest

from tests.support.project_helpers import run, snapshot


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.delenv("PANORAMA_ACCOUNT_ID", raising=False)
    assert run(tmp_path, "init-project", "--name", "app").exit_code == 0
    return tmp_path / "app"


def test_missing_account_names_the_flag_and_the_variable_first(project, aws_env, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    before = snapshot(project)
    result = run(project, "create-package", "--name", "code")
    assert result.exit_code == 1, result.describe()
    text = result.stderr
    assert "no account id" in text and "no AWS credentials found" in text
    assert text.index("--account-id") < text.index("PANORAMA_ACCOUNT_ID") < text.index("AWS")
    assert snapshot(project) == before


def test_init_project_inside_a_project_records_the_account(project, aws_env, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    result = run(project, "init-project", "--account-id", "210987654321")
    assert result.exit_code == 0, result.describe()
    assert "create-package" in result.stderr
    settings = json.loads((project / ".panorama-cli.json").read_text())
    assert settings == {"accountId": "210987654321"}
    assert run(project / "graphs", "create-package", "--name", "code").exit_code == 0
    assert (project / "packages" / "210987654321-code-1.0").is_dir()
    again = run(project, "init-project", "--account-id", "210987654321")
    assert again.exit_code == 0 and "already recorded" in again.stderr
    # graph.json now lists 210987654321 packages: another account needs import-application
    other = run(project, "init-project", "--account-id", "999999999999")
    assert other.exit_code == 1 and "import-application --account-id 999999999999" in other.stderr


@pytest.mark.parametrize("bad", ["777", "1234567890123", "12345678901a", "../../etc"])
def test_account_ids_that_are_not_12_digits_are_refused(tmp_path, project, bad, monkeypatch):
    result = run(tmp_path, "init-project", "--name", "other", "--account-id", bad)
    assert result.exit_code == 1 and "invalid account id" in result.stderr
    assert not (tmp_path / "other").exists()
    before = snapshot(project)
    result = run(project, "init-project", "--account-id", bad)
    assert result.exit_code == 1 and "invalid account id" in result.stderr
    monkeypatch.setenv("PANORAMA_ACCOUNT_ID", bad)
    result = run(project, "create-package", "--name", "code")
    assert result.exit_code == 1 and "invalid account id" in result.stderr
    assert snapshot(project) == before


def test_init_project_without_name_outside_a_project(tmp_path):
    result = run(tmp_path, "init-project")
    assert result.exit_code == 2 and "--name" in result.stderr
    result = run(tmp_path, "init-project", "--account-id", "210987654321")
    assert result.exit_code == 1 and "not inside a Panorama project" in result.stderr
