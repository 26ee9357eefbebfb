"""run --deps venv respects the app's pins: pip resolves a node's requirements without the
base interpreter's packages (this machine's numpy 2 never satisfies them) and under numpy<2,
as on the appliance's Python 3.7/3.8, so a package built for numpy 1 (opencv-python
4.7.0.72) imports. Offline: the distributions are local wheels (PIP_NO_INDEX)."""

from __future__ import annotations

import base64
import hashlib
import textwrap
import zipfile
from pathlib import Path

import pytest

from panorama_cli.localrun.apps.deps.venv import appliance_constraints
from tests.localrun.helpers import ACCOUNT, PACKAGE, make_project
from tests.support.cli_runner import run_cli_subprocess

#: Like opencv-python 4.7.0.72: built against numpy 1, and its metadata lets any numpy in.
PINNED_CV = """
import numpy
if int(numpy.__version__.split(".")[0]) >= 2:
    raise ImportError("numpy.core.multiarray failed to import (built for numpy 1.x)")
VERSION = "4.7.0.72"
"""
DOCKERFILE = """
FROM public.ecr.aws/panorama/panorama-application
COPY src /panorama
RUN python3 -m pip install cvpinned==4.7.0.72
"""
APP = """
import cvpinned, numpy
open("/opt/aws/panorama/storage/seen", "w").write(f"{cvpinned.VERSION} {numpy.__version__}")
"""


def _wheel(folder: Path, name: str, version: str, source: str, requires: str = "") -> None:
    """A pure-Python wheel of distribution ``name`` (one module ``name``), its
    ``Requires-Dist`` ``requires`` when given."""
    info = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    if requires:
        metadata += f"Requires-Dist: {requires}\n"
    files = {
        f"{name}/__init__.py": source.encode(),
        f"{info}/METADATA": metadata.encode(),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
        f"{info}/top_level.txt": f"{name}\n".encode(),
    }
    record = []
    for member, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{member},sha256={digest},{len(data)}")
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        for member, data in files.items():
            wheel.writestr(member, data)


def test_a_numpy_1_package_imports_although_this_machine_has_numpy_2(tmp_path):
    import numpy

    assert int(numpy.__version__.split(".")[0]) >= 2, "the base must have numpy 2 for this test"
    wheels = tmp_path / "wheels"
    for version in ("1.26.4", "2.9.0"):  # stand-ins, so that the test needs no index
        _wheel(wheels, "numpy", version, f"__version__ = {version!r}\n")
    _wheel(wheels, "cvpinned", "4.7.0.72", PINNED_CV, requires="numpy>=1.21.2")
    root = make_project(tmp_path, APP, cameras=(), hdmi=False, params={})
    package = root / "packages" / f"{ACCOUNT}-{PACKAGE}-1.0"
    (package / "Dockerfile").write_text(textwrap.dedent(DOCKERFILE).lstrip())
    out = tmp_path / "out"
    env = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}
    result = run_cli_subprocess(
        ["run", "--deps", "venv", "--output-dir", str(out)], cwd=root, env=env
    )
    assert (out / "storage" / "seen").read_text() == "4.7.0.72 1.26.4", result.describe()
    assert "(cvpinned==4.7.0.72), numpy<2 as on the appliance" in result.stderr


@pytest.mark.parametrize(
    ("requirements", "constraints"),
    [
        (["opencv-python==4.7.0.72"], ["numpy<2"]),
        (["numpy>=1.20", "boto3"], ["numpy<2"]),
        (["numpy==1.19.5"], ["numpy<2"]),
        (["NumPy>=2"], []),  # the app's own pin wins
        (["numpy==2.0.1"], []),
        (["not a requirement ((("], ["numpy<2"]),  # pip says what is wrong with it
    ],
)
def test_numpy_stays_below_2_unless_the_app_asks_for_2(requirements, constraints):
    assert appliance_constraints(requirements) == constraints
