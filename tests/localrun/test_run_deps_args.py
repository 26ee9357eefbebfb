"""The dependency pre-flight reads a pip line's variables as the build does: an ``ARG``
default (in scope, a global one too) or an ``ENV`` value (``ARG TORCH_WHL=...`` then ``pip
install ${TORCH_WHL}``, as the official PyTorch samples write it); a wheel URL is the
distribution its file name says; variables without a known value stay unchecked."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

from panorama_cli.localrun.apps.deps.dockerfile import collect, substitute
from tests.localrun.helpers import ACCOUNT, PACKAGE, make_project
from tests.support.cli_runner import run_cli_subprocess

WHEEL = "https://download.example/whl/torch-1.10.0-cp37-cp37m-linux_aarch64.whl"


def _package(tmp_path: Path, dockerfile: str) -> Path:
    folder = tmp_path / "pkg"
    (folder / "src").mkdir(parents=True)
    (folder / "Dockerfile").write_text(textwrap.dedent(dockerfile).lstrip())
    return folder


def test_arg_defaults_and_env_values_reach_the_pip_line(tmp_path, caplog):
    folder = _package(
        tmp_path,
        f"""
        ARG OPENCV=opencv-python==4.7.0.72
        FROM public.ecr.aws/panorama/panorama-application
        ARG OPENCV
        ARG TORCH_WHL={WHEEL}
        ARG NO_DEFAULT
        ENV EXTRA=boto3
        ARG LATER=scipy==1.7.3
        RUN pip3 install ${{TORCH_WHL}} "$OPENCV" $EXTRA '$LATER' $NO_DEFAULT ${{EXTRA:-x}}
        """,
    )
    with caplog.at_level(logging.DEBUG, logger="panorama_cli.localrun.apps.deps"):
        found = collect(folder)
    assert [(i.text, str(i.requirement), i.where) for i in found] == [
        (WHEEL, f"torch @ {WHEEL}", "Dockerfile line 8"),
        ("opencv-python==4.7.0.72", "opencv-python==4.7.0.72", "Dockerfile line 8"),
        ("boto3", "boto3", "Dockerfile line 8"),
    ]
    assert "'$LATER' holds a variable" in caplog.text  # single quotes: no expansion
    assert "'$NO_DEFAULT' holds a variable" in caplog.text  # --build-arg decides it
    assert "'${EXTRA:-x}' holds a variable" in caplog.text


def test_an_arg_of_another_stage_is_not_in_scope(tmp_path):
    folder = _package(
        tmp_path,
        """
        FROM base AS build
        ARG PKG=requests
        FROM base
        RUN pip install $PKG six
        """,
    )
    assert [i.text for i in collect(folder)] == ["six"]


def test_substitution_follows_the_shell_quoting():
    names = {"A": "x", "W": "torch==1.10", "C": "$W-z"}
    assert substitute("pip install ${W} $A", names) == "pip install torch==1.10 x"
    assert substitute("echo '$A' \"it's $A\" \\$A $B", names) == "echo '$A' \"it's x\" \\$A $B"
    assert substitute("pip install $C", names) == "pip install torch==1.10-z"
    assert substitute("pip install $A", {}) == "pip install $A"


def test_the_run_checks_what_an_arg_installs(tmp_path):
    app = "print('never runs')\n"
    root = make_project(tmp_path, app, cameras=(), hdmi=False, params={})
    package = root / "packages" / f"{ACCOUNT}-{PACKAGE}-1.0"
    (package / "Dockerfile").write_text(
        "FROM public.ecr.aws/panorama/panorama-application\n"
        "ARG TORCH_WHL=https://download.example/whl/"
        "nosuchdist-1.10.0-cp37-cp37m-linux_aarch64.whl\n"
        "COPY src /panorama\n"
        "RUN pip3 install ${TORCH_WHL}\n"
    )
    result = run_cli_subprocess(["run"], cwd=root)
    assert result.exit_code == 1, result.describe()
    assert "the package installs https://download.example/whl/nosuchdist-1.10.0" in result.stderr
    assert "(Dockerfile line 4)" in result.stderr and "never runs" not in result.stderr
