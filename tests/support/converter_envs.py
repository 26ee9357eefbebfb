"""Build the model converters' environments once (CI runs this before pytest; the tests that
need one skip without it, and fail under CI=true).

    python -m tests.support.converter_envs [--all | mxnet tensorflow pytorch ...]

Each environment is :func:`panorama_cli.localrun.models.convert.envs.ensure_env` of the converter
module's ``REQUIREMENTS``, in the same cache ``run`` uses (``$PANORAMA_CLI_CONVERTERS_DIR`` or
the user cache): a built one is reused in a second. pip runs with this machine's pip
configuration (its constraint file, find-links and indexes), as ``run`` would. Prints, per
environment, its python, how long it took and its size on disk (``du -sh``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

NAMES = ("mxnet", "tensorflow", "pytorch")


def converter(name: str) -> ModuleType:
    """The converter module ``panorama_cli.localrun.models.convert.<name>``."""
    return importlib.import_module(f"panorama_cli.localrun.models.convert.{name}")


def env_python(name: str) -> Path | None:
    """The python of converter ``name``'s environment when it is built (builds nothing), else
    None (also when the converter or the envs module is not there)."""
    try:
        from panorama_cli.localrun.models.convert import envs

        module = converter(name)
    except ImportError:
        return None
    return envs.env_python(module.REQUIREMENTS)


def require_env(name: str) -> Path:
    """The python of converter ``name``'s built environment; skips the calling test with one
    reason when it is not built (fails under CI=true, where .ci/run builds it)."""
    from tests.support.ci import unavailable

    python = env_python(name)
    if python is None:
        unavailable(
            f"the {name} converter environment is not built "
            f"(python -m tests.support.converter_envs {name})"
        )
    return python


def run_script(
    name: str,
    python: Path,
    model_dir: Path,
    inputs: list[tuple[str, list[int]]],
    output: Path,
    seed: int = 0,
) -> tuple[dict[str, object], float, subprocess.CompletedProcess[str]]:
    """Run converter ``name``'s script as the driver does (``python -I SCRIPT SPEC``): (its
    result line, seconds, the finished process). The result line must be the last line of
    stdout, and the only one."""
    import json

    module = converter(name)
    spec = output.with_suffix(".spec.json")
    spec.write_text(
        json.dumps(
            {
                "model_dir": str(model_dir),
                "inputs": [{"name": n, "shape": list(shape)} for n, shape in inputs],
                "output": str(output),
                "seed": seed,
            }
        )
    )
    start = time.monotonic()
    proc = subprocess.run(
        [str(python), "-I", str(module.SCRIPT), str(spec)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    seconds = time.monotonic() - start
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}"
    return json.loads(lines[0]), seconds, proc


def build_in_env(python: Path, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (dedented) with the converter environment's python (the framework builds a
    tiny model there); raises with its stderr's tail when it fails."""
    import textwrap

    proc = subprocess.run(
        [str(python), "-I", "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode:
        raise AssertionError(f"building the model failed:\n{proc.stderr[-3000:]}")
    return proc


def size(folder: Path) -> str:
    """``du -sh`` of ``folder`` (the real folder behind the cache's symlink)."""
    out = subprocess.run(
        ["du", "-sh", os.path.realpath(folder)], capture_output=True, text=True, check=False
    )
    return out.stdout.split("\t")[0] if out.returncode == 0 else "?"


def build(name: str) -> tuple[str, float, str]:
    """Build (or find) converter ``name``'s environment: (its python, seconds, size)."""
    from panorama_cli.localrun.models.convert import envs

    def notify(_kind: str, event: dict[str, object]) -> None:
        print(f"  {event.get('text', event)}", flush=True)

    module = converter(name)
    start = time.monotonic()
    python = envs.ensure_env(name, module.REQUIREMENTS, notify)
    seconds = time.monotonic() - start
    return python, seconds, size(Path(python).parent.parent)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=" | ".join(NAMES))
    parser.add_argument("--all", action="store_true", help="all of " + ", ".join(NAMES))
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in NAMES]
    if unknown:
        parser.error(f"unknown converter {', '.join(unknown)} (known: {', '.join(NAMES)})")
    names = list(NAMES) if args.all or not args.names else args.names
    failed = []
    for name in names:
        print(f"converter environment {name}:", flush=True)
        try:
            python, seconds, used = build(name)
        except Exception as exc:  # noqa: BLE001 - report each, go on with the next
            message = getattr(exc, "message", None) or str(exc)
            print(f"  FAILED: {type(exc).__name__}: {message}", flush=True)
            failed.append(name)
            continue
        print(f"  {python}: {seconds:.1f} s, {used}", flush=True)
    if failed:
        print(f"converter environments failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
