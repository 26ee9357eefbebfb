"""Tests of the CI infrastructure: base-image builder helpers, Docker fixtures, scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import base_images

REPO = Path(__file__).resolve().parent.parent

ARM64_ENTRY = """\
enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: {flags}
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
"""


def _fake_binfmt(tmp_path: Path, flags: str, status: str = "enabled") -> Path:
    d = tmp_path / "binfmt_misc"
    d.mkdir()
    (d / "status").write_text(status + "\n")
    (d / "register").write_text("")
    (d / "qemu-aarch64").write_text(ARM64_ENTRY.format(flags=flags))
    return d


# ------------------------------------------------------------------ pure helpers


def test_mirror_from_deb822_and_one_line_sources(tmp_path: Path) -> None:
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "debian.sources").write_text(
        "Types: deb\n"
        "# a comment\n"
        "URIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\n"
        "Components: main\n"
        "\n"
        "Types: deb\n"
        "URIs: http://security.example/debian-security\n"
        "Suites: bookworm-security\n"
        "Components: main\n"
    )
    (d / "off.sources.disabled").write_text(
        "Types: deb\nURIs: http://wrong.example/\nSuites: bookworm\nComponents: main\n"
    )
    assert list(base_images._mirrors_from_sources(d, tmp_path / "none", "bookworm")) == [
        "http://mirror.example/debian"
    ]
    one_line = tmp_path / "sources.list"
    one_line.write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://opt.example/debian bookworm main contrib\n"
    )
    assert list(base_images._mirrors_from_sources(tmp_path / "nodir", one_line, "bookworm")) == [
        "http://opt.example/debian"
    ]


def test_detect_mirror_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PANORAMA_CI_MIRROR", "http://override.example/debian/")
    assert base_images.detect_mirror() == "http://override.example/debian"


def test_cache_key_is_stable_and_content_sensitive() -> None:
    m = "http://deb.debian.org/debian"
    key = base_images.cache_key("amd64", m)
    assert key == base_images.cache_key("amd64", m)
    assert len(key) == 64
    assert key != base_images.cache_key("arm64", m)
    assert key != base_images.cache_key("amd64", "http://other.example/debian")
    with pytest.raises(ValueError):
        base_images.cache_key("riscv64", m)


def test_image_names() -> None:
    assert base_images.BASE_IMAGE_AMD64 == "panorama-cli-test/base:bookworm-amd64"
    assert base_images.BASE_IMAGE_ARM64 == "panorama-cli-test/base:bookworm-arm64"


def test_dockerfile_is_from_scratch_with_labels() -> None:
    text = base_images.render_dockerfile({base_images.LABEL_KEY: "abc", "x": 'q"uote'})
    lines = text.splitlines()
    assert lines[0] == "FROM scratch"
    assert "ADD rootfs.tar /" in lines
    assert f'"{base_images.LABEL_KEY}"="abc"' in text
    assert '"x"="q\\"uote"' in text
    assert lines[-1] == 'CMD ["python3"]'


def test_binfmt_handler_detection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base_images, "host_arch", lambda: "amd64")
    good = _fake_binfmt(tmp_path, "PF")
    handler = base_images.find_binfmt_handler("arm64", good)
    assert handler is not None and handler.name == "qemu-aarch64" and handler.fix_binary
    assert base_images.binfmt_problem("arm64", good) is None
    assert base_images.binfmt_problem("amd64", good) is None  # native


def test_binfmt_without_fix_binary_flag_is_a_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base_images, "host_arch", lambda: "amd64")
    d = _fake_binfmt(tmp_path, "P")
    problem = base_images.binfmt_problem("arm64", d)
    assert problem is not None and "F (fix-binary)" in problem
    assert "not mounted" in (base_images.binfmt_problem("arm64", tmp_path / "nope") or "")


# ------------------------------------------------------------------ scripts


def test_scripts_are_executable_bash() -> None:
    for rel in (".ci/run", "install.sh"):
        path = REPO / rel
        assert os.access(path, os.X_OK), f"{rel} is not executable"
        assert path.read_text().startswith("#!/usr/bin/env bash")
        subprocess.run(["bash", "-n", str(path)], check=True)


def test_install_help_and_python_version_check(tmp_path: Path) -> None:
    out = subprocess.run(
        ["bash", str(REPO / "install.sh"), "--help"], capture_output=True, text=True, check=True
    )
    assert "--dev" in out.stdout
    fake = tmp_path / "python-old"
    fake.write_text("#!/bin/sh\necho 3.8\nexit 1\n")
    fake.chmod(0o755)
    res = subprocess.run(
        ["bash", str(REPO / "install.sh"), "--dev"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": str(fake)},
    )
    assert res.returncode != 0
    assert "3.10" in res.stderr


def test_install_is_quiet_installs_the_samples_extra_and_shows_pip_errors(tmp_path: Path) -> None:
    # offline on purpose (no index, an empty find-links): pip fails on the build backend, so
    # what is printed before the failure, and the failure itself, are what a user sees
    env = {
        **os.environ,
        "PANORAMA_CLI_HOME": str(tmp_path / "home"),
        "PANORAMA_CLI_BIN": str(tmp_path / "bin"),
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(tmp_path),
    }
    env.pop("PIP_VERBOSE", None)
    res = subprocess.run(
        ["bash", str(REPO / "install.sh")], capture_output=True, text=True, env=env, timeout=300
    )
    assert res.returncode != 0
    lines = res.stdout.splitlines()
    assert lines and all(line.startswith("[install] ") for line in lines), res.stdout
    # with PyGObject's build packages there, the gi extra (RTSP out) is tried first, then
    # the install without it; without them, install.sh names them (3 lines)
    assert len(lines) <= 7, res.stdout
    assert f"pip install {REPO}[samples" in res.stdout
    assert "No matching distribution found for hatchling" in res.stderr  # errors still shown


def test_base_images_cli_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tests.support.base_images", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert "--arch" in out.stdout


# ------------------------------------------------------------------ docker (required in CI)


def test_base_image_amd64_runs_python(docker_client, base_image_amd64) -> None:
    out = docker_client.containers.run(
        base_image_amd64,
        ["python3", "-c", "import platform; print(platform.machine())"],
        platform="linux/amd64",
        remove=True,
    )
    assert out.decode().strip() == "x86_64"


def test_base_image_arm64_runs_python_under_emulation(
    docker_client, arm64_emulation, base_image_arm64
) -> None:
    image = docker_client.images.get(base_image_arm64)
    assert image.attrs["Architecture"] == "arm64"
    assert image.labels[base_images.LABEL_KEY] == base_images.cache_key("arm64")
    out = docker_client.containers.run(
        base_image_arm64,
        ["python3", "-c", "import platform; print(platform.machine())"],
        platform="linux/arm64",
        remove=True,
    )
    assert out.decode().strip() == "aarch64"


def test_containers_reach_the_debian_mirror(docker_client, base_image_amd64) -> None:
    """apt inside containers works (later image builds rely on it)."""
    out = docker_client.containers.run(
        base_image_amd64,
        ["sh", "-c", "apt-get update -qq >/dev/null && echo apt-ok"],
        remove=True,
    )
    assert out.decode().strip().endswith("apt-ok")
