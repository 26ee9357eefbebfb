"""run's dependency pre-flight (host mode): what a package's Dockerfile installs, checked
against the app's interpreter before any app starts; ``--deps venv`` and ``--deps none``."""

from __future__ import annotations

import base64
import hashlib
import logging
import shutil
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

from panorama_cli.localrun.apps.deps import probe
from panorama_cli.localrun.apps.deps.dockerfile import collect
from tests.localrun.helpers import ACCOUNT, PACKAGE, make_project
from tests.support.cli_runner import run_cli_subprocess


def _package(tmp_path: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    folder = tmp_path / "pkg"
    (folder / "src").mkdir(parents=True)
    (folder / "Dockerfile").write_text(textwrap.dedent(dockerfile).lstrip())
    for rel, text in (files or {}).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(textwrap.dedent(text))
    return folder


def _found(folder: Path) -> list[tuple[str, str]]:
    return [(i.text, i.where) for i in collect(folder)]


# -- what the Dockerfile installs ------------------------------------------------------------
def test_pip_lines_with_continuations_chains_and_flags(tmp_path):
    folder = _package(
        tmp_path,
        """
        ARG BASE_IMAGE=public.ecr.aws/panorama/panorama-application
        FROM ${BASE_IMAGE}
        COPY src /panorama
        RUN apt-get update && \\
            python3 -m pip install -U --no-cache-dir \\
                --index-url https://pypi.example/simple "scipy>=1.5" \\
                'boto3[crt]==1.24.*' && rm -rf /root/.cache
        RUN pip3 --disable-pip-version-check install --upgrade-strategy eager -q requests; \\
            pip install -i https://mirror/simple --extra-index-url=https://x/simple six \\
              > /dev/null 2>&1 || true
        RUN ["python3.8", "-m", "pip", "install", "--target", "/opt/lib", "pyyaml"]
        RUN pip3.7 install 'attrs; python_version < "3.8"' && pip --version && python3 app.py
        RUN echo pip install notme && pip download notme2 && python3 -m pip list
        RUN /bin/bash -c "source /opt/env && pip install 'tqdm<5'"
        """,
    )
    found = collect(folder)
    assert [(i.text, i.where) for i in found] == [
        ("scipy>=1.5", "Dockerfile line 6"),
        ("boto3[crt]==1.24.*", "Dockerfile line 7"),
        ("requests", "Dockerfile line 8"),
        ("six", "Dockerfile line 9"),
        ("pyyaml", "Dockerfile line 11"),
        ('attrs; python_version < "3.8"', "Dockerfile line 12"),
        ("tqdm<5", "Dockerfile line 14"),
    ]
    boto3 = found[1].requirement
    assert boto3.name == "boto3" and boto3.extras == {"crt"} and str(boto3.specifier) == "==1.24.*"
    assert str(found[5].requirement.marker) == 'python_version < "3.8"'
    assert all(i.apt is None for i in found)


def test_requirements_files_resolved_against_the_package_folder(tmp_path):
    folder = _package(
        tmp_path,
        """
        FROM base
        COPY requirements.txt /tmp/reqs.txt
        WORKDIR /panorama
        COPY src .
        RUN pip install -r /tmp/reqs.txt
        RUN pip install --requirement=extra.txt -rnested/more.txt
        """,
        {
            "requirements.txt": """
                # comment
                opencv-python-headless==4.8.* # pinned
                Pillow \\
                    >=9 --hash=sha256:0000
                -i https://mirror/simple
                -r other.txt
                """,
            "other.txt": "python-dateutil\n",
            "src/extra.txt": "pyyaml>=6\n",
            "src/nested/more.txt": "-e ./local\nbeautifulsoup4\n",
        },
    )
    assert _found(folder) == [
        ("opencv-python-headless==4.8.*", "requirements.txt line 3"),
        ("Pillow >=9", "requirements.txt line 4"),
        ("python-dateutil", "other.txt line 1"),
        ("pyyaml>=6", "src/extra.txt line 1"),
        ("beautifulsoup4", "src/nested/more.txt line 2"),
    ]


def test_apt_python3_packages_and_only_the_final_stage(tmp_path):
    folder = _package(
        tmp_path,
        """
        FROM base AS builder
        RUN pip install cmake-only-in-builder
        FROM base AS runtime
        RUN apt-get update \\
         && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
                gir1.2-gstreamer-1.0 python3-gi python3-dev python3-pip \\
                python3-numpy=1:1.24.2-1 python3-opencv \\
         && rm -rf /var/lib/apt/lists/*
        FROM runtime
        RUN pip install scipy
        """,
    )
    found = collect(folder)
    assert [(i.text, i.apt, i.where) for i in found] == [
        ("gi", "python3-gi", "Dockerfile line 6"),
        ("numpy", "python3-numpy", "Dockerfile line 7"),
        ("opencv", "python3-opencv", "Dockerfile line 7"),
        ("scipy", None, "Dockerfile line 10"),
    ]


def test_local_paths_urls_and_variables_are_skipped_with_a_debug_line(tmp_path, caplog):
    folder = _package(
        tmp_path,
        """
        FROM base
        RUN pip install . ./vendor/pkg /tmp/x-1.0-py3-none-any.whl \\
            git+https://github.com/o/r.git https://h/p.tar.gz "$EXTRA" -e . \\
            -c constraints.txt -r missing.txt "named @ https://h/named.zip"
        """,
    )
    with caplog.at_level(logging.DEBUG, logger="panorama_cli.localrun.apps.deps"):
        found = collect(folder)
    assert [(i.requirement.name, i.requirement.url) for i in found] == [
        ("named", "https://h/named.zip")
    ]
    text = caplog.text
    for skipped in (
        "'.' is a local path", "'./vendor/pkg'", "x-1.0-py3-none-any.whl", "git+https",
        "https://h/p.tar.gz", "holds a variable", "editable", "-r missing.txt",
    ):  # fmt: skip
        assert skipped in text, skipped


def test_no_dockerfile_installs_nothing(tmp_path):
    (tmp_path / "pkg").mkdir()
    assert collect(tmp_path / "pkg") == []


# -- what the interpreter has ----------------------------------------------------------------
def test_probe_maps_distributions_to_modules_in_one_subprocess():
    result = probe(sys.executable, ["numpy", "opencv-python-headless", "not-a-dist-xyz", "PyYAML"])
    numpy = result.dists["numpy"]
    assert numpy["found"] and numpy["modules"] == ["numpy"] and not numpy["missing"]
    assert numpy["version"] == __import__("numpy").__version__
    assert result.dists["opencv-python-headless"]["modules"] == ["cv2"]  # its metadata
    assert result.dists["not-a-dist-xyz"] == {
        "found": False, "version": None, "modules": ["not_a_dist_xyz"],
        "missing": ["not_a_dist_xyz"],
    }  # fmt: skip
    assert result.markers["python_version"] == f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert any(p.endswith("site-packages") for p in result.site)


OLD_PYTHONS = sorted(Path("/root/.pyenv/versions").glob("3.7*/bin/python3.7"))


@pytest.mark.skipif(not OLD_PYTHONS, reason="no Python 3.7 on this machine")
def test_probe_runs_on_python_3_7_with_the_table_for_missing_names():
    result = probe(str(OLD_PYTHONS[0]), ["opencv-python", "pip"])
    assert result.version.startswith("3.7.")
    assert result.dists["opencv-python"]["modules"] == ["cv2"]  # not installed there: the table
    assert result.dists["pip"]["missing"] == []


# -- runs --------------------------------------------------------------------------------------
FIRST_LINE = "APP FIRST LINE"


def _project(tmp_path: Path, imports: str, dockerfile: str) -> Path:
    app = f"""
    print({FIRST_LINE!r}, flush=True)
    import {imports}
    open("/opt/aws/panorama/storage/imported", "w").write(repr({imports}.__name__))
    """
    root = make_project(tmp_path, app, cameras=(), hdmi=False, params={})
    package = root / "packages" / f"{ACCOUNT}-{PACKAGE}-1.0"
    (package / "Dockerfile").write_text(textwrap.dedent(dockerfile).lstrip())
    return root


MISSING = """
FROM public.ecr.aws/panorama/panorama-application
COPY src /panorama

RUN python3 -m pip install -U scipy_xyz_missing numpy \\
    'pyyaml_xyz_missing>=6'
"""


def test_a_missing_module_stops_the_run_before_any_app_starts(tmp_path):
    root = _project(tmp_path, "scipy_xyz_missing", MISSING)
    result = run_cli_subprocess(["run"], cwd=root)
    assert result.exit_code == 1, result.describe()
    assert FIRST_LINE not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.describe()
    assert lines[0] == (
        "Error: node code_node: the package installs scipy_xyz_missing (Dockerfile line 4), "
        f"pyyaml_xyz_missing>=6 (Dockerfile line 5), which {sys.executable} cannot import: "
        "pip install scipy_xyz_missing 'pyyaml_xyz_missing>=6' into it, or run with "
        "--in-container (--deps venv installs them into a cached virtualenv)"
    )
    assert not (root / ".panorama-run").exists()  # no run folder, no app


def test_installed_modules_pass(tmp_path):
    dockerfile = MISSING.replace("scipy_xyz_missing", "opencv-python-headless")
    root = _project(tmp_path, "numpy", dockerfile.replace("pyyaml_xyz_missing>=6", "numpy>=1.0"))
    out = tmp_path / "out"
    passed = run_cli_subprocess(["run", "--output-dir", str(out)], cwd=root)
    assert FIRST_LINE in passed.stderr + passed.stdout, passed.describe()
    assert (out / "storage" / "imported").read_text() == "'numpy'"


def test_another_version_is_a_debug_line_not_an_error(tmp_path):
    root = _project(tmp_path, "numpy", "FROM base\nRUN pip install 'numpy<1.0'\n")
    out = tmp_path / "out"
    result = run_cli_subprocess(["--debug", "run", "--output-dir", str(out)], cwd=root)
    assert (out / "storage" / "imported").read_text() == "'numpy'", result.describe()
    version = __import__("numpy").__version__
    assert f"Dockerfile line 2 wants numpy<1.0, {sys.executable} has {version}" in result.stderr


def test_deps_none_runs_into_the_module_not_found_error(tmp_path):
    root = _project(tmp_path, "scipy_xyz_missing", MISSING)
    result = run_cli_subprocess(["run", "--deps", "none"], cwd=root)
    output = result.stdout + result.stderr
    assert result.exit_code == 1, result.describe()
    assert FIRST_LINE in output
    assert "ModuleNotFoundError: No module named 'scipy_xyz_missing'" in output


# -- --deps venv -------------------------------------------------------------------------------
def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def make_wheel(folder: Path, name: str, version: str, module_source: str) -> Path:
    """A pure-Python wheel (PEP 427: the files, .dist-info METADATA, WHEEL and RECORD) of
    distribution ``name`` with one module ``name``."""
    folder.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": module_source.encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
        f"{info}/top_level.txt": f"{name}\n".encode(),
    }
    record = [_record_line(n, d) for n, d in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, data in files.items():
            wheel.writestr(member, data)
    return path


VENV_DOCKERFILE = """
FROM public.ecr.aws/panorama/panorama-application
COPY src /panorama
RUN pip3 install --no-cache-dir tinydep_panorama==0.3
"""


def test_deps_venv_builds_once_then_reuses_the_cached_environment(tmp_path):
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "tinydep_panorama", "0.3", "VALUE = 42\n")
    root = _project(tmp_path, "tinydep_panorama", VENV_DOCKERFILE)
    env = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}
    check = run_cli_subprocess(["run"], cwd=root, env=env)
    assert check.exit_code == 1 and "tinydep_panorama==0.3 (Dockerfile line 3)" in check.stderr

    outs = [tmp_path / "out1", tmp_path / "out2"]
    t0 = time.monotonic()
    first = run_cli_subprocess(
        ["run", "--deps", "venv", "--output-dir", str(outs[0])], cwd=root, env=env
    )
    first_s = time.monotonic() - t0
    assert (outs[0] / "storage" / "imported").read_text() == "'tinydep_panorama'", first.describe()
    assert "node code_node: built virtualenv .panorama-run/.venvs/" in first.stderr
    assert ".venvs/.env-" not in first.stderr  # the published name
    assert "(tinydep_panorama==0.3)" in first.stderr
    cache = root / ".panorama-run" / ".venvs"
    [link] = [p for p in cache.iterdir() if p.is_symlink()]
    python = link / "bin" / "python"
    assert (link / "bin" / "python").exists()
    stamp = {p: p.stat().st_mtime_ns for p in link.resolve().rglob("*") if p.is_file()}

    shutil.rmtree(wheels)  # a second pip run would now fail
    t0 = time.monotonic()
    second = run_cli_subprocess(
        ["run", "--deps", "venv", "--output-dir", str(outs[1])], cwd=root, env=env
    )
    second_s = time.monotonic() - t0
    assert (outs[1] / "storage" / "imported").read_text() == "'tinydep_panorama'", second.describe()
    assert "node code_node: using the cached virtualenv" in second.stderr
    assert {p: p.stat().st_mtime_ns for p in link.resolve().rglob("*") if p.is_file()} == stamp
    assert [p for p in cache.iterdir() if p.is_symlink()] == [link]
    # the base interpreter's packages stay importable in the environment, after its own
    both = subprocess.run(
        [str(python), "-c", "import numpy, tinydep_panorama; print(tinydep_panorama.VALUE)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert both.stdout.strip() == "42"
    print(f"--deps venv: first run {first_s:.1f} s, cached {second_s:.1f} s")


def test_a_failed_venv_build_leaves_nothing(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    root = _project(tmp_path, "tinydep_panorama", VENV_DOCKERFILE)
    env = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}
    result = run_cli_subprocess(["run", "--deps", "venv"], cwd=root, env=env)
    assert result.exit_code == 1, result.describe()
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: node code_node: pip install tinydep_panorama==0.3 failed")
    assert "tinydep_panorama" in lines[-1] and FIRST_LINE not in result.stderr
    assert not (root / ".panorama-run").exists()


def test_a_second_run_waits_for_the_build_in_progress_and_reuses_it(tmp_path):
    import threading

    from filelock import FileLock

    from panorama_cli.localrun.apps.deps.venv import cache_key, ensure_venv

    cache = tmp_path / "venvs"
    cache.mkdir()
    args = (sys.executable, "3.11.0", ["/site"], ["tinydep_panorama==0.3"])
    key = cache_key(*args)
    notes: list[str] = []
    lock = FileLock(str(cache / f".{key}.lock"))
    lock.acquire()  # another run building it
    got: list[tuple[str, bool]] = []
    waiter = threading.Thread(
        target=lambda: got.append(
            ensure_venv(cache, *args, label="node n", notify=lambda e, d: notes.append(d["text"]))
        )
    )
    waiter.start()
    deadline = time.monotonic() + 30
    while not notes and time.monotonic() < deadline:
        time.sleep(0.05)
    assert notes == [f"node n: waiting for another run building {cache / key}"]
    built = cache / f".env-{key}-other"  # what the other run publishes
    (built / "bin").mkdir(parents=True)
    (built / "bin" / "python").symlink_to(sys.executable)
    (cache / key).symlink_to(built.name)
    lock.release()
    waiter.join(30)
    assert got == [(str(built / "bin" / "python"), False)]  # no build of its own
    assert sorted(p.name for p in cache.iterdir()) == sorted([key, built.name, f".{key}.lock"])


def test_several_nodes_missing_modules_are_one_line(tmp_path):
    from tests.localrun.helpers import make_chain_project

    root = make_chain_project(tmp_path, {"first": "print('x')\n", "second": "print('y')\n"})
    for index, name in enumerate(["alpha_xyz_missing", "beta_xyz_missing"]):
        package = root / "packages" / f"{ACCOUNT}-STAGE{index}-1.0"
        (package / "Dockerfile").write_text(f"FROM base\nRUN pip install {name} numpy\n")
    result = run_cli_subprocess(["run", "--camera", "cam=nothing.avi"], cwd=root)
    assert result.exit_code == 1, result.describe()
    [line] = result.stderr.strip().splitlines()
    assert "node first: the package installs alpha_xyz_missing (Dockerfile line 2)" in line
    assert "; node second: the package installs beta_xyz_missing (Dockerfile line 2)" in line
