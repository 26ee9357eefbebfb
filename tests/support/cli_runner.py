"""Run panorama-cli the way a user does and collect exit code, stdout and stderr.

Two ways, same result type:

* :func:`run_cli` runs in this process through the real entry point
  :func:`panorama_cli.cli.main` (so error mapping, exit codes and the Ctrl-C handling are
  the real ones) with stdout/stderr captured by click's ``CliRunner``. Monkeypatches of
  library modules apply, which is how the interruption tests inject a ``KeyboardInterrupt``.
* :func:`run_cli_subprocess` runs ``python -m panorama_cli`` in a child process, for the
  checks that must see the real process boundary (no traceback on stderr, exit status).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from tests.support.paths import REPO


@dataclass
class CliResult:
    """What one CLI run produced.

    Attributes:
        args: the arguments after ``panorama-cli``.
        exit_code: the process exit status.
        stdout / stderr: decoded output streams (messages go to stderr, --json data to stdout).
        exception: an exception that escaped ``main`` other than SystemExit (in-process only);
            the real entry point never lets one escape, so tests assert it is None.
    """

    args: list[str]
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None = None

    def json(self) -> Any:
        """stdout parsed as JSON (for --json runs)."""
        return json.loads(self.stdout)

    def describe(self) -> str:
        """Everything about the run, for assertion messages."""
        text = (
            f"panorama-cli {' '.join(self.args)} -> exit {self.exit_code}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )
        if self.exception is not None:
            text += "\n--- escaped exception ---\n" + "".join(
                traceback.format_exception(self.exception)
            )
        return text


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    return 1  # sys.exit("message") prints the message and exits 1


def run_cli(
    args: Sequence[str], *, cwd: Path, env: Mapping[str, str | None] | None = None
) -> CliResult:
    """Run ``panorama-cli *args`` in-process from folder ``cwd``.

    Args:
        args: command line after ``panorama-cli``.
        cwd: the working folder for the run (restored afterwards).
        env: extra environment variables for the run (None removes one).
    """
    from panorama_cli.cli import main

    runner = CliRunner()
    argv = [str(a) for a in args]
    old_cwd = os.getcwd()
    exception: BaseException | None = None
    exit_code = 0
    with runner.isolation(env=dict(env or {})) as (out, err, _):
        os.chdir(cwd)
        try:
            main(argv)
        except SystemExit as exc:
            exit_code = _exit_status(exc.code)
        except BaseException as exc:  # noqa: BLE001 - reported to the test, never swallowed
            exception = exc
            exit_code = -1
        finally:
            os.chdir(old_cwd)
            sys.stdout.flush()
            sys.stderr.flush()
        stdout = out.getvalue().decode("utf-8", errors="replace")
        stderr = err.getvalue().decode("utf-8", errors="replace")
    return CliResult(argv, exit_code, stdout, stderr, exception)


def run_cli_subprocess(
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 600.0,
) -> CliResult:
    """Run ``python -m panorama_cli *args`` as a child process from folder ``cwd``.

    The child gets this process's environment plus ``env``, with the repository on
    PYTHONPATH (so it runs the code under test) and NO_COLOR set (plain output).
    """
    child_env = dict(os.environ)
    child_env.update(env or {})
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), child_env.get("PYTHONPATH", "")) if p
    )
    child_env.setdefault("NO_COLOR", "1")
    argv = [str(a) for a in args]
    proc = subprocess.run(
        [sys.executable, "-m", "panorama_cli", *argv],
        cwd=cwd,
        env=child_env,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout_s,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return CliResult(argv, proc.returncode, proc.stdout, proc.stderr)
