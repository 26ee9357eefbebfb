"""The installed wheel carries templates/ and schemas/ and works without the source tree."""

import json
import os
import subprocess
import sys
import zipfile

import pytest

from tests.support.paths import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
    )
    [built] = out.glob("panorama_cli-*.whl")
    return built


def test_wheel_contents(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for required in (
        "panorama_cli/templates/package/container/Dockerfile.j2",
        "panorama_cli/schemas/nodeGraph.schema.json",
        "panorama_cli/commands/validate.py",
        "backpack/__init__.py",
        "backpack/data/panorama/2019-07-24/service-2.json",
        "backpack/data/panorama/2019-07-24/paginators-1.json",
        "panorama_cli/localrun/apps/sdk/panoramasdk/__init__.py",  # the SDK apps import under `run`
        "panorama_cli/localrun/apps/_unshare_root.py",
        "panorama_cli/localrun/apps/_enter.py",  # run by path: a node's cgroup and rlimits
        # the converter scripts and what they load by path in a converter environment
        "panorama_cli/localrun/models/convert/_pytorch_export.py",
        "panorama_cli/localrun/models/convert/_tensorflow_export.py",
        "panorama_cli/localrun/models/convert/_export_common.py",
    ):
        assert required in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    # __main__.entry: a Ctrl-C while the CLI is still importing exits 130 without a traceback
    assert (
        "panorama-cli = panorama_cli.__main__:entry" in zipfile.ZipFile(wheel).read(entry).decode()
    )


def test_installed_wheel_runs(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target), "PANORAMA_ACCOUNT_ID": "123456789012"}
    work = tmp_path / "work"
    work.mkdir()

    def cli(*args, cwd=work):
        return subprocess.run(
            [sys.executable, "-m", "panorama_cli", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
        )

    where = subprocess.run(
        [sys.executable, "-c", "import panorama_cli; print(panorama_cli.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        cwd=work,
    ).stdout
    assert where.startswith(str(target))
    assert cli("init-project", "--name", "w").returncode == 0
    assert cli("create-package", "--name", "c", cwd=work / "w").returncode == 0
    assert (
        cli("add-panorama-package", "--type", "camera", "--name", "cam", cwd=work / "w").returncode
        == 0
    )
    result = cli("validate", "--json", cwd=work / "w")
    assert result.returncode == 1
    problems = json.loads(result.stdout)["problems"]
    errors = [p["pointer"] for p in problems if p["severity"] == "error"]
    assert errors == ["/nodePackage/interfaces"]  # and a warning: no edges yet


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys\nfrom panorama_cli.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('boto3', 'botocore', 'docker', 'jsonschema', 'jinja2', 'isal')"
        " if m in sys.modules]\nprint('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert "HEAVY []" in out


@pytest.mark.parametrize(
    "args", [["--version"], ["-h"], ["validate", "-h"], ["build-container", "--help"]]
)
def test_help_and_version(args):
    result = subprocess.run(
        [sys.executable, "-m", "panorama_cli", *args], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout.strip()


def test_no_color_and_error_exit(tmp_path):
    env = {**os.environ, "NO_COLOR": "1", "TERM": "xterm-256color"}
    result = subprocess.run(
        [sys.executable, "-m", "panorama_cli", "validate"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "\x1b[" not in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
