"""ruff lint and format check over the code (part of the one test command)."""

import shutil
import subprocess
import sys

from tests.support.paths import REPO

TARGETS = ["panorama_cli", "backpack", "tests", "benchmarks"]


def _ruff(*args):
    exe = shutil.which("ruff") or str(__import__("pathlib").Path(sys.executable).with_name("ruff"))
    return subprocess.run([exe, *args, *TARGETS], cwd=REPO, capture_output=True, text=True)


def test_ruff_check():
    result = _ruff("check", "--output-format", "concise")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format():
    result = _ruff("format", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_shell_strings():
    offenders = []
    for path in (REPO / "panorama_cli").rglob("*.py"):
        text = path.read_text()
        for needle in ("shell=True", "os.system(", "os.popen("):
            if needle in text:
                offenders.append(f"{path.relative_to(REPO)}: {needle}")
    assert offenders == []


def test_every_library_module_has_a_logger():
    """`--debug` promises debug logs: each library module logs under its own name."""
    missing = []
    for path in sorted((REPO / "panorama_cli").rglob("*.py")):
        rel = path.relative_to(REPO)
        if path.name in ("__init__.py", "__main__.py") or rel.parts[1] in ("commands", "localrun"):
            continue
        if "logging.getLogger(__name__)" not in path.read_text():
            missing.append(str(rel))
    assert missing == []


def test_backpack_speaks_to_its_users():
    """backpack ships inside applications: no internal jargon in its text."""
    import re

    offenders = []
    for path in sorted((REPO / "backpack").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\bseeds?\b", line, re.IGNORECASE):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert offenders == []


def test_mypy_strict_on_the_library_modules():
    """Type check ([tool.mypy] in pyproject.toml: strict on panorama_cli's library modules)."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
