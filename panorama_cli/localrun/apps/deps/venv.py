"""``run --deps venv``: a virtual environment with exactly a node's requirements, on top of
the interpreter the app would run (``--python``), built once and cached.

The environment is ``python -m venv`` (with its own pip, from ensurepip) in which pip
resolves and installs the requirements on their own, as the image's build does: nothing the
base interpreter has satisfies one of them (the host's numpy 2 never stands in for the numpy
an ``opencv-python==4.7.0.72`` needs), and :func:`appliance_constraints` keeps numpy below 2
as on the appliance's Python 3.7/3.8 (unless the requirements ask for numpy 2 themselves).
Only then a ``.pth`` file adds every site-packages folder of the base interpreter after the
environment's own (``site.addsitedir``, in the base's order), so what the base has and the
requirements do not name (the SDK's numpy, an apt-installed OpenCV) stays importable and the
requirements come first. ``--system-site-packages`` would not do: pip would see the base's
packages, and a base that is itself a virtual environment would lose its own. pip runs with
this process's environment (the user's PIP_* settings, pip.conf), never touching the base.

Cache: ``<cache>/<key>`` (a symlink) -> ``<cache>/.env-<key>-XXXX`` (the environment), where
key = sha256 of the base interpreter (path, version, site folders), the sorted requirements
and constraints. The environment is built in its final folder (virtual environments cannot
move) under a file lock (two runs never build it twice; the second waits and reuses it), and
published by renaming the symlink into place: a failed or interrupted build publishes
nothing, and its folder is removed (an interrupted one by the next build of that key).

``isolated=True`` (converter environments, :mod:`~panorama_cli.localrun.models.convert.envs`)
leaves the base's site-packages out: the environment holds exactly the requirements (plus pip),
so a converter's pins (numpy<1.24 for mxnet) never meet panorama-cli's own packages.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from panorama_cli.errors import UserError
from panorama_cli.localrun.models.model_archive import make_dirs, remove_made_dirs

log = logging.getLogger(__name__)

Notify = Callable[[str, dict[str, object]], None]


def cache_key(
    python: str,
    version: str,
    site: Sequence[str],
    requirements: Sequence[str],
    isolated: bool = False,
    constraints: Sequence[str] = (),
) -> str:
    """The cache name (16 hex digits) of an environment of ``requirements`` (under
    ``constraints``) on ``python``."""
    spec: dict[str, object] = {
        "python": os.path.realpath(python),
        "version": version,
        "site": [] if isolated else list(site),
        "requirements": sorted(set(requirements)),
    }
    if isolated:
        spec["isolated"] = True  # absent otherwise: the keys of existing caches stay
    else:  # resolved without the base's packages (an environment built before is not reused)
        spec["resolved"] = "alone"
        spec["constraints"] = sorted(set(constraints))
    data = json.dumps(spec, sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def ensure_venv(
    cache_dir: Path,
    base_python: str,
    version: str,
    site: Sequence[str],
    requirements: Sequence[str],
    *,
    label: str,
    notify: Notify,
    isolated: bool = False,
    constraints: Sequence[str] = (),
) -> tuple[str, bool]:
    """The python of the cached environment of ``requirements`` on ``base_python`` (built
    first when missing, see the module docstring).

    Args:
        cache_dir: the cache folder (created).
        base_python / version / site: the base interpreter, its ``X.Y.Z`` version and its
            site-packages folders (from the probe).
        requirements: PEP 508 requirement strings.
        label: how messages name the environment's user (``node code_node``).
        notify: receives ("note", {"text"}) events.
        isolated: without the base's site-packages (see the module docstring); ``site`` is
            then ignored.
        constraints: pip constraints (``numpy<2``: :func:`appliance_constraints`).

    Returns:
        (path of its ``bin/python`` in the environment's real folder, whether this call
        built it).

    Raises:
        UserError: venv or pip failed (pip's last error line in the message; its whole
            output in the debug log).
    """
    from filelock import FileLock, Timeout

    if isolated:
        site = ()
    key = cache_key(base_python, version, site, requirements, isolated, constraints)
    link = cache_dir / key
    python = link / "bin" / "python"
    if python.exists():
        return _real(link), False
    made = make_dirs(cache_dir)
    lock = FileLock(str(cache_dir / f".{key}.lock"))
    built = False
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            notify("note", {"text": f"{label}: waiting for another run building {link}"})
            lock.acquire()
        try:
            if not python.exists():
                _build(cache_dir, key, base_python, version, site, requirements, label, constraints)
                built = True
        finally:
            lock.release()
    except BaseException:
        (cache_dir / f".{key}.lock").unlink(missing_ok=True)
        remove_made_dirs(made)  # the cache folders this call created, if still empty
        raise
    return _real(link), built


def _real(link: Path) -> str:
    """The environment's python by its real folder (the sandbox binds real paths), not by
    the published symlink; bin/python itself stays a link (a virtualenv's python must be
    started by its own path)."""
    return str(Path(os.path.realpath(link)) / "bin" / "python")


def _build(
    cache_dir: Path,
    key: str,
    base_python: str,
    version: str,
    site: Sequence[str],
    requirements: Sequence[str],
    label: str,
    constraints: Sequence[str] = (),
) -> None:
    for stale in cache_dir.glob(f".env-{key}-*"):  # an interrupted build's (never published)
        shutil.rmtree(stale, ignore_errors=True)
    env_dir = Path(tempfile.mkdtemp(prefix=f".env-{key}-", dir=cache_dir))
    try:
        env_dir.chmod(0o755)  # mkdtemp's 0700: the app may run as another uid
        with _Progress(f"{label}: virtualenv", len(requirements) + 1) as progress:
            _run([base_python, "-m", "venv", str(env_dir)], f"{label}: python -m venv", progress)
            progress.step("pip")
            minor = ".".join(version.split(".")[:2])
            site_dir = env_dir / "lib" / f"python{minor}" / "site-packages"
            wanted = env_dir / "panorama-requirements.txt"
            wanted.write_text("".join(f"{r}\n" for r in requirements))
            pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install"]
            pip += ["--disable-pip-version-check", "--no-input", "-r", str(wanted)]
            if constraints:
                limits = env_dir / "panorama-constraints.txt"
                limits.write_text("".join(f"{c}\n" for c in constraints))
                pip += ["-c", str(limits)]
            _run(pip, f"{label}: pip install {' '.join(requirements)}", progress)
            if site:  # after pip: the base's packages never satisfy a requirement
                lines = ["import site"] + [f"site.addsitedir({folder!r})" for folder in site]
                (site_dir / "_panorama_base_site.pth").write_text("; ".join(lines) + "\n")
            progress.done()
        tmp_link = cache_dir / f".{key}.link"
        tmp_link.unlink(missing_ok=True)
        tmp_link.symlink_to(env_dir.name)
        os.replace(tmp_link, cache_dir / key)
    except BaseException:
        shutil.rmtree(env_dir, ignore_errors=True)
        raise


def appliance_constraints(requirements: Sequence[str]) -> list[str]:
    """pip constraints that keep an environment the appliance's (its Python 3.7/3.8 never had
    numpy 2): ``["numpy<2"]``, unless a requirement names numpy only with versions 2 and
    later (``numpy>=2``, ``numpy==2.0.1``: the app's own pin wins). Unparsable requirements
    are left to pip."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version

    for text in requirements:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if canonicalize_name(requirement.name) != "numpy" or not requirement.specifier:
            continue
        try:
            versions = [Version(s.version.rstrip(".*")) for s in requirement.specifier]
        except InvalidVersion:
            continue
        if all(v.major >= 2 for v in versions):
            return []
    return ["numpy<2"]


def _run(argv: list[str], what: str, progress: _Progress) -> None:
    """Run ``argv`` (pip/venv), its output to the debug log and the progress line."""
    env = dict(os.environ)
    for name in ("PYTHONHOME", "PYTHONPATH", "PIP_USER", "PIP_TARGET", "PIP_PREFIX"):
        env.pop(name, None)
    log.debug("%s: %s", what, argv)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        raise UserError(f"{what}: cannot start {argv[0]}: {exc}") from exc
    last_error = ""
    assert proc.stdout is not None
    with proc:
        for line in proc.stdout:
            line = line.rstrip()
            log.debug("%s| %s", what.split(":")[0], line)
            if line.startswith("ERROR:") or "Error" in line.split(":")[0]:
                last_error = last_error or line
            progress.saw(line)
    if proc.returncode:
        hint = "pip's whole output: run with --debug"
        if "ensurepip" in last_error or "No module named venv" in last_error:
            hint = "on Debian/Ubuntu: apt-get install python3-venv"
        raise UserError(
            f"{what} failed (status {proc.returncode}): {last_error or 'no error line'}",
            hint=hint,
        )


class _Progress:
    """A rich progress bar on stderr: one step for the environment, one per requirement
    (advanced as pip names them), pip's latest line beside it."""

    def __init__(self, description: str, total: int):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        from panorama_cli import console

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.fields[line]}", markup=True),
            console=console.err(),
            transient=True,
        )
        self._description = description
        self._task = self._progress.add_task(description, total=total, line="python -m venv")

    def __enter__(self) -> _Progress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def step(self, line: str) -> None:
        self._progress.update(self._task, advance=1, line=line)

    def saw(self, line: str) -> None:
        """One line of pip's output: each requirement it collects advances the bar."""
        from rich.markup import escape

        task = self._progress.tasks[0]
        starts = line.startswith(("Collecting ", "Requirement already satisfied: "))
        if starts and task.total is not None and task.completed < task.total - 1:
            self._progress.advance(self._task)
        self._progress.update(self._task, line=escape(line.strip()[:60]))

    def done(self) -> None:
        total = self._progress.tasks[0].total
        self._progress.update(self._task, completed=total, line="done")
