"""Issue 8, F5/F9: SIGTERM takes the Ctrl-C clean-up path; what a SIGKILL leaves behind is
recognised by the next command; an interrupt after the commit is not called "nothing changed".

Real processes (``python -m panorama_cli``) and real signals (``os.kill``).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from panorama_cli import console
from tests.support.project_helpers import run, snapshot
from tests.support.safety import ACCOUNT, PKG, add_model_args, start

#: Size of the big model archive: large enough that storing it takes a noticeable moment.
BIG = 160 * 1024 * 1024


@pytest.fixture(scope="module")
def big_archive(tmp_path_factory) -> Path:
    """A real .tar.gz of BIG bytes (gzip level 0: stored blocks, so it is written quickly)."""
    path = tmp_path_factory.mktemp("big") / "big.tar.gz"
    with tarfile.open(path, "w:gz", compresslevel=0) as tar:
        info = tarfile.TarInfo("model.bin")
        info.size = BIG
        tar.addfile(info, io.BytesIO(bytes(BIG)))
    return path


def add_big(project: Path, archive: Path) -> subprocess.Popen:
    return start(project, *add_model_args(archive, "big"))


def temp_files(project: Path) -> list[str]:
    return sorted(p.name for p in (project / "assets").iterdir() if p.name.startswith(".tmp-"))


def signal_during_transfer(proc: subprocess.Popen, project: Path, signum: int) -> bool:
    """Send ``signum`` once the asset's temporary file exists; False if it never appeared."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if temp_files(project):
            os.kill(proc.pid, signum)
            return True
        time.sleep(0.001)
    return False


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_during_a_transfer_cleans_up(
    project: Path, big_archive: Path, signum: int, code: int
) -> None:
    before = snapshot(project)
    proc = add_big(project, big_archive)
    sent = signal_during_transfer(proc, project, signum)
    out, err = proc.communicate(timeout=120)
    if not sent:
        pytest.fail(f"the transfer ended before the signal could be sent: {err}")
    assert proc.returncode == code, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "nothing was changed" in errors[0], err
    assert temp_files(project) == []
    assert snapshot(project) == before


def test_sigkill_leftovers_are_ignored_then_removed(project: Path, big_archive: Path) -> None:
    before = snapshot(project)
    proc = add_big(project, big_archive)
    assert signal_during_transfer(proc, project, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    left = temp_files(project)
    assert left, "the SIGKILL should have left the temporary file"
    # a reader ignores it
    assert run(project, "validate").exit_code == 0
    # the next command that writes removes it
    result = run(project, "add-panorama-package", "--type", "camera", "--name", "cam")
    assert result.exit_code == 0, result.describe()
    assert temp_files(project) == []
    after = snapshot(project)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert changed == {"graphs/p/graph.json"}


def make_staging_leftover(project: Path, name: str) -> Path:
    """What a create-package killed before its rename leaves: a hidden staging folder."""
    staging = project / "packages" / f".{ACCOUNT}-{name}-1.0.creating"
    staging.mkdir()
    body = {"envelopeVersion": "2021-01-01", "name": name, "version": "1.0"}
    (staging / "package.json").write_text(json.dumps({"nodePackage": body}))
    return staging


def test_staging_leftover_is_never_a_package(project: Path) -> None:
    staging = make_staging_leftover(project, "half")
    assert run(project, "validate").exit_code == 0
    # import-application does not turn it into a package
    result = run(project, "import-application", "--account-id", "999988887777")
    assert result.exit_code == 0, result.describe()
    assert not any("half" in p.name for p in (project / "packages").iterdir())
    assert not staging.exists()


def test_create_package_after_a_killed_create_package(project: Path) -> None:
    staging = make_staging_leftover(project, "half")
    result = run(project, "create-package", "--name", "half", "--type", "Model")
    assert result.exit_code == 0, result.describe()
    assert not staging.exists()
    assert (project / "packages" / f"{ACCOUNT}-half-1.0" / "package.json").is_file()


def test_manifest_temp_leftover_is_removed(project: Path) -> None:
    leftover = project / PKG / ".package.json.k2j4h5g6.tmp"
    leftover.write_text("{half")
    assert run(project, "validate").exit_code == 0
    assert run(project, "add-panorama-package", "--type", "camera", "--name", "c").exit_code == 0
    assert not leftover.exists()


def test_interrupt_after_the_commit_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F9: Ctrl-C after create-package's commit: exit 130, and no claim that nothing changed."""
    assert run(tmp_path, "init-project", "--name", "p", "--account-id", ACCOUNT).exit_code == 0

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(console, "success", interrupted)
    result = run(tmp_path / "p", "create-package", "--name", "made", "--type", "Model")
    assert result.exit_code == 130
    assert "after the changes were saved" in result.stderr
    assert "nothing was changed" not in result.stderr
    assert (tmp_path / "p" / "packages" / f"{ACCOUNT}-made-1.0" / "package.json").is_file()


def test_interrupt_before_the_commit_changes_nothing(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from panorama_cli.build import asset_registry

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(asset_registry, "register", interrupted)
    before = snapshot(project)
    result = run(
        project,
        "add-raw-model",
        "--model-asset-name",
        "x",
        "--model-local-path",
        str(tmp_path / "p-first.tar.gz"),
        "--descriptor-path",
        f"{PKG}/descriptor.json",
        "--packages-path",
        PKG,
    )
    assert result.exit_code == 130 and "nothing was changed" in result.stderr
    assert snapshot(project) == before


@pytest.mark.parametrize("delay", [0.0, 0.02, 0.05, 0.08, 0.12, 0.2, 0.3])
def test_ctrl_c_during_start_up_prints_no_traceback(project: Path, delay: float) -> None:
    """Wherever the Ctrl-C lands in panorama-cli's start-up: no traceback through its code.

    (Python's own start-up, before ``python -m`` reaches panorama_cli, may still print one:
    that is the interpreter's, "Could not import runpy module".)
    """
    proc = start(project, "validate")
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    if "Traceback" in err:
        assert "panorama_cli" not in err and "click" not in err, err
    else:
        assert proc.returncode in (0, 130, -signal.SIGINT), err
    assert len([line for line in err.splitlines() if line.startswith("Error")]) <= 1


def test_sigterm_is_restored_after_an_in_process_run(project: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    assert run(project, "validate").exit_code == 0
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigint_reaches_the_cli_when_this_process_ignores_it(
    project: Path, big_archive: Path
) -> None:
    """Issue 15 item 8: run from a background job (SIGINT ignored, and inherited), a test's
    ``python -m panorama_cli`` child still takes SIGINT as Ctrl-C (tests.support.signals)."""
    probe = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # what `bash -c 'pytest &'` gives
    try:
        plain = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
        proc = add_big(project, big_archive)  # tests.support.safety.start: the helper
        sent = signal_during_transfer(proc, project, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert plain.stdout.strip() == "False", "a plain child should inherit the ignored SIGINT"
    assert sent, err
    assert proc.returncode == 130, err
    assert "nothing was changed" in err
