"""backpack imports with only numpy and the standard library."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.paths import REPO

OPTIONAL = ("boto3", "botocore", "cv2", "gi", "dotenv", "tenacity", "s3transfer")


def test_every_backpack_module_imports_without_the_optional_dependencies():
    code = (
        "import importlib, pkgutil, sys, backpack\n"
        "mods = [m.name for m in pkgutil.walk_packages(backpack.__path__, 'backpack.')]\n"
        "for name in mods:\n"
        "    importlib.import_module(name)\n"
        f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {OPTIONAL!r})\n"
        "print(len(mods), loaded)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    count, loaded = out.stdout.strip().split(" ", 1)
    assert int(count) >= 15  # every module of backpack, its annotation subpackage too
    assert loaded == "[]", out.stdout


def test_a_missing_optional_dependency_is_one_clear_error():
    code = (
        "import sys\n"
        "sys.modules['boto3'] = None  # as if not installed\n"
        "from backpack.errors import MissingDependencyError\n"
        "from backpack.cwtacho import CWTachometer\n"
        "try:\n"
        "    CWTachometer(namespace='n', metric_name='m', region='us-east-1')\n"
        "except MissingDependencyError as exc:\n"
        "    print(exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert "CWTachometer needs the Python module 'boto3'" in out.stdout
    assert "pip install boto3" in out.stdout


def test_the_exceptions_users_catch_come_from_backpack_errors():
    import backpack.errors as errors
    from backpack._optional import require
    from backpack.kvs_credentials import KVSCredentialsError

    assert set(errors.__all__) == {
        "KVSCredentialsError",
        "KVSSinkNotFoundError",
        "MissingDependencyError",
        "PipelineError",
    }
    assert KVSCredentialsError is errors.KVSCredentialsError
    with pytest.raises(errors.MissingDependencyError, match="no_such_module_xyz"):
        require("no_such_module_xyz", "a test feature")
