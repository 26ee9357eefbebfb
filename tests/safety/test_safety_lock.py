"""Issue 8, F4: commands that write take an exclusive project lock; real racing processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from panorama_cli.project.lock import project_lock
from panorama_cli.project.project import Project
from tests.support.project_helpers import make_model_archive, run
from tests.support.safety import ACCOUNT, PKG, add_model_args, child_env, package_json, start


def test_a_second_command_names_the_holder(project: Path, tmp_path: Path) -> None:
    archive = make_model_archive(tmp_path / "second.tar.gz", b"second")
    before = (project / PKG / "package.json").read_bytes()
    with project_lock(Project(project), "add-raw-model"):
        proc = start(project, *add_model_args(archive, "other"), PANORAMA_CLI_LOCK_WAIT="0.5")
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and f"pid {os.getpid()}, add-raw-model" in lines[0], err
    assert (project / PKG / "package.json").read_bytes() == before


def test_readers_take_no_lock(project: Path) -> None:
    with project_lock(Project(project), "create-package"):
        proc = start(project, "validate", PANORAMA_CLI_LOCK_WAIT="0")
        out, err = proc.communicate(timeout=60)
    assert "another panorama-cli command" not in err
    assert proc.returncode in (0, 1), err


def test_racing_create_package_loses_no_update(tmp_path: Path) -> None:
    assert run(tmp_path, "init-project", "--name", "p", "--account-id", ACCOUNT).exit_code == 0
    root = tmp_path / "p"
    names = [f"pkg{i}" for i in range(4)]
    procs = [
        start(root, "create-package", "--name", n, "--type", "Model", PANORAMA_CLI_LOCK_WAIT="60")
        for n in names
    ]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _ in results), results
    graph = json.loads((root / "graphs" / "p" / "graph.json").read_text())
    listed = {p["name"] for p in graph["nodeGraph"]["packages"]}
    assert {f"{ACCOUNT}::{n}" for n in names} <= listed
    assert all((root / "packages" / f"{ACCOUNT}-{n}-1.0").is_dir() for n in names)


def test_racing_add_raw_model_loses_no_update(project: Path, tmp_path: Path) -> None:
    procs = []
    for i in range(3):
        archive = make_model_archive(tmp_path / f"m{i}.tar.gz", f"weights {i}".encode())
        procs.append(
            start(project, *add_model_args(archive, f"model{i}"), PANORAMA_CLI_LOCK_WAIT="60")
        )
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _ in results), results
    assets = {a["name"] for a in package_json(project)["nodePackage"]["assets"]}
    assert {"squeezenet", "model0", "model1", "model2"} <= assets
    for asset in package_json(project)["nodePackage"]["assets"]:
        for impl in asset["implementations"]:
            assert (project / "assets" / impl["assetUri"]).is_file()
    assert run(project, "validate").exit_code == 0


HOLDER = """
import sys, time
from panorama_cli.project.project import Project
from panorama_cli.project.lock import project_lock
with project_lock(Project(sys.argv[1]), "holder"):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_killed_holder_blocks_nobody(project: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(project)],
        env=child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        blocked = run(
            project,
            "add-panorama-package",
            "--type",
            "camera",
            "--name",
            "cam",
            env={"PANORAMA_CLI_LOCK_WAIT": "0.2"},
        )
        assert blocked.exit_code == 1 and f"pid {holder.pid}, holder" in blocked.stderr
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        # no waiting at all: the kernel released the dead holder's lock
        result = run(
            project,
            "add-panorama-package",
            "--type",
            "camera",
            "--name",
            "cam",
            env={"PANORAMA_CLI_LOCK_WAIT": "0"},
        )
        assert result.exit_code == 0, result.describe()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
