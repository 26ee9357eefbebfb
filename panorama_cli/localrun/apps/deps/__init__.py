"""Dependency pre-flight of a host-mode run (``run --deps check|venv|none``).

Before any app starts, each business-logic node's package is read for what its image installs
(:mod:`.dockerfile`), and one subprocess of each interpreter the apps will run (``--python``,
default this one) says which of those distributions it has and whether their modules can be
imported (:mod:`._probe`: importlib.metadata, top_level.txt / RECORD; a table below for the
usual names when a distribution is not installed). A missing one is one error line for all
nodes, before any app process starts::

    node code_node: the package installs scipy (Dockerfile line 5), which /usr/bin/python3
    cannot import: pip install scipy into it, or run with --in-container

``--deps venv`` first builds (once, cached) a virtual environment per node with exactly its
pip requirements on top of ``--python`` (:mod:`.venv`) and runs the node in it; ``--deps
none`` skips all of it. What the runner provides (panoramasdk, the simulated SDK) and the
packaging tools (pip, setuptools, wheel) are never reported; another version than the one
asked for is a debug line, not an error.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from panorama_cli.errors import UserError
from panorama_cli.localrun.apps.deps.dockerfile import Install, collect

if TYPE_CHECKING:
    from panorama_cli.localrun.plan import RunPlan

log = logging.getLogger(__name__)

MODES = ("check", "venv", "none")
#: Provided by the runner (the simulated SDK) or packaging tools: never reported.
PROVIDED = frozenset({"panoramasdk", "pip", "setuptools", "wheel", "distribute"})
#: Import names of distributions whose name is not their module's (canonical names; Debian's
#: python3-X names too), used when the distribution is not installed.
MODULES: dict[str, tuple[str, ...]] = {
    "opencv-python": ("cv2",),
    "opencv-python-headless": ("cv2",),
    "opencv-contrib-python": ("cv2",),
    "opencv-contrib-python-headless": ("cv2",),
    "opencv": ("cv2",),
    "pillow": ("PIL",),
    "pil": ("PIL",),
    "scikit-learn": ("sklearn",),
    "scikit-image": ("skimage",),
    "pyyaml": ("yaml",),
    "python-dateutil": ("dateutil",),
    "protobuf": ("google.protobuf",),
    "beautifulsoup4": ("bs4",),
    "pyserial": ("serial",),
    "pygobject": ("gi",),
    "pycairo": ("cairo",),
    "python-dotenv": ("dotenv",),
    "tensorflow-gpu": ("tensorflow",),
    "tensorflow-cpu": ("tensorflow",),
    "onnxruntime-gpu": ("onnxruntime",),
    "paho-mqtt": ("paho.mqtt",),
    "pycryptodome": ("Crypto",),
    "pyjwt": ("jwt",),
    "pyzmq": ("zmq",),
    "grpcio": ("grpc",),
    "pyopenssl": ("OpenSSL",),
    "python-magic": ("magic",),
    "attrs": ("attr", "attrs"),
    "msgpack-python": ("msgpack",),
    "tflite-runtime": ("tflite_runtime",),
}
_PROBE = Path(__file__).with_name("_probe.py")
_SDK_DIR = Path(__file__).resolve().parents[1] / "sdk"

Notify = Callable[[str, dict[str, Any]], None]


@dataclass
class Probe:
    """What one interpreter has (see :mod:`._probe` for the fields)."""

    python: str
    version: str
    markers: dict[str, str]
    site: list[str]
    dists: dict[str, dict[str, Any]]


def canonical(name: str) -> str:
    """PEP 503 normalized distribution name."""
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


def fallback_modules(name: str) -> list[str]:
    """Import names to try for distribution ``name`` when its metadata says nothing."""
    known = MODULES.get(canonical(name))
    if known:
        return list(known)
    guess = re.sub(r"[-.]", "_", name)
    return list(dict.fromkeys([guess, guess.lower()]))


def probe(python: str, names: list[str]) -> Probe:
    """One subprocess of ``python`` (Python >= 3.7) reporting on distributions ``names``.

    Raises:
        UserError: the interpreter cannot be run or its answer is unreadable.
    """
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)
    env["PYTHONPATH"] = str(_SDK_DIR)  # as the app's (supervisor.app_environment)
    request = json.dumps({"dists": {n: fallback_modules(n) for n in names}})
    try:
        out = subprocess.run(
            [python, "-c", _PROBE.read_text()],
            input=request,
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd="/",
            check=True,
        )
        data = json.loads(out.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        lines = (getattr(exc, "stderr", "") or str(exc)).strip().splitlines()
        raise UserError(
            f"--python {python}: cannot ask it for its packages: {lines[-1] if lines else exc}",
            hint="pass a Python 3.7+ interpreter, or --deps none",
        ) from exc
    return Probe(python, data["version"], data["markers"], data["site"], data["dists"])


def prepare(plan: RunPlan, notify: Notify) -> None:
    """The pre-flight of ``plan`` (see the module docstring); with ``--deps venv`` it sets
    each node's :attr:`~.plan.BusinessNode.python`.

    Raises:
        UserError: a node's package installs something its interpreter cannot import (one
            line naming every such node, requirement, Dockerfile line and interpreter), or a
            virtual environment cannot be built.
    """
    mode = plan.options.deps
    if mode == "none" or plan.options.in_container:
        return
    installs = {b.node.name: _wanted(collect(b.package.folder)) for b in plan.business}
    if not any(installs.values()):
        return
    names = sorted({i.requirement.name for found in installs.values() for i in found})
    base = probe(plan.python, names)
    for node, found in installs.items():
        installs[node] = [i for i in found if _applies(i, base.markers)]
    if mode == "venv":
        _venvs(plan, base, installs, notify)
    probes = {plan.python: base}
    problems = []
    for business in plan.business:
        found = installs[business.node.name]
        if not found:
            continue
        python = business.python or plan.python
        if python not in probes:
            probes[python] = probe(python, names)
        problem = _problem(business.node.name, found, probes[python])
        if problem:
            problems.append(problem)
    if problems:
        raise UserError(
            "; ".join(problems), hint="--deps venv installs them into a cached virtualenv"
        )


def _wanted(found: list[Install]) -> list[Install]:
    return [i for i in found if canonical(i.requirement.name) not in PROVIDED]


def _applies(install: Install, markers: dict[str, str]) -> bool:
    marker = install.requirement.marker
    if marker is None or marker.evaluate(markers):
        return True
    log.debug("%s: %s does not apply to this interpreter (%s)", install.where, install.text, marker)
    return False


def _problem(node: str, found: list[Install], probe: Probe) -> str | None:
    """The error text for ``node`` when ``probe``'s interpreter misses some of ``found``."""
    missing = []
    for install in found:
        result = probe.dists.get(install.requirement.name, {})
        if result.get("missing"):
            missing.append(install)
            continue
        version = result.get("version")
        specifier = install.requirement.specifier
        if version and specifier and not specifier.contains(version, prereleases=True):
            log.debug(
                "node %s: %s wants %s, %s has %s (not an error)", node, install.where, install.text,
                probe.python, version,
            )  # fmt: skip
    if not missing:
        return None
    groups: dict[str, list[str]] = {}  # where -> what, in Dockerfile order
    for install in missing:
        groups.setdefault(install.where, []).append(_shown(install))
    listed = ", ".join(f"{', '.join(what)} ({where})" for where, what in groups.items())
    fixes = []
    pip = [shlex.quote(i.text) for i in missing if i.apt is None]
    apt = [i.apt for i in missing if i.apt is not None]
    if pip:
        fixes.append(f"pip install {' '.join(pip)}")
    if apt:
        fixes.append(f"apt-get install {' '.join(a for a in apt if a)}")
    return (
        f"node {node}: the package installs {listed}, which {probe.python} cannot import: "
        f"{' and '.join(fixes)} into it, or run with --in-container"
    )


def _shown(install: Install) -> str:
    return f"{install.apt} ({install.requirement.name})" if install.apt else install.text


def _venvs(plan: RunPlan, base: Probe, installs: dict[str, list[Install]], notify: Notify) -> None:
    """``--deps venv``: each node with pip requirements gets its cached environment."""
    from panorama_cli.localrun.apps.deps.venv import appliance_constraints, ensure_venv
    from panorama_cli.localrun.plan import RUNS_FOLDER

    cache_dir = plan.project.root / RUNS_FOLDER / ".venvs"
    for business in plan.business:
        requirements = [str(i.requirement) for i in installs[business.node.name] if i.apt is None]
        if not requirements:
            continue
        label = f"node {business.node.name}"
        t0 = time.monotonic()
        constraints = appliance_constraints(requirements)
        python, built = ensure_venv(
            cache_dir, plan.python, base.version, base.site, requirements,
            label=label, notify=notify, constraints=constraints,
        )  # fmt: skip
        key = Path(python).parent.parent.name.split("-")[1]  # .env-<key>-XXXX
        where = f"{plan.project.rel(cache_dir)}/{key}"
        if built:
            text = f"{label}: built virtualenv {where} in {time.monotonic() - t0:.1f} s"
        else:
            text = f"{label}: using the cached virtualenv {where}"
        under = f", {' '.join(constraints)} as on the appliance" if constraints else ""
        notify("note", {"text": f"{text} ({', '.join(requirements)}){under}"})
        business.python = python
