"""What the base image flavors put over their root filesystem, and their content keys: the
panorama stand-in's python3.7/python3.8 names, pip shims, numpy<2 pip constraint and this
machine's CA certificates (regular PEM files only, links never followed), deterministic
layout bytes, and the debian flavor's keys left as they were before flavors."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from panorama_cli.build import base_flavors, base_image
from panorama_cli.build.base_flavors import DEBIAN, PANORAMA, host_certificates, layout_tar
from panorama_cli.errors import UserError

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _members(layout: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(layout)) as tar:
        return {m.name: m for m in tar.getmembers()}


def _file(layout: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(layout)) as tar:
        handle = tar.extractfile(name)
        assert handle is not None
        return handle.read()


def test_panorama_layout_has_python_names_pip_and_the_numpy_constraint() -> None:
    layout = layout_tar(PANORAMA, [])
    members = _members(layout)
    for name in ("python", "python3.7", "python3.8"):
        link = members[f"usr/local/bin/{name}"]
        assert link.issym() and link.linkname == "/usr/bin/python3"
    for name in ("pip", "pip3.7", "pip3.8"):
        shim = members[f"usr/local/bin/{name}"]
        assert shim.isfile() and shim.mode == 0o755
        assert b"exec /usr/bin/python3 -m pip" in _file(layout, shim.name)
    assert b"constraint = /etc/pip/constraints.txt" in _file(layout, "etc/pip.conf")
    constraints = _file(layout, "etc/pip/constraints.txt").decode().splitlines()
    assert "numpy<2" in constraints and "opencv-python<4.12" in constraints
    for folder in ("opt/aws/panorama/logs", "opt/aws/panorama/storage", "panorama"):
        assert members[folder].isdir()
    assert all(m.uid == 0 and m.gid == 0 and m.mtime == 0 for m in members.values())
    assert layout == layout_tar(PANORAMA, [])  # same inputs, same bytes (the content key)


def test_panorama_packages_are_what_opencv_wheels_and_pip_need() -> None:
    assert PANORAMA.suite == "bullseye"
    for package in ("python3-pip", "python3-numpy", "ca-certificates", "libgl1", "libxcb1"):
        assert package in PANORAMA.packages
    assert PANORAMA.run == ('RUN ["/usr/sbin/update-ca-certificates"]',)


def test_host_certificates_are_regular_pem_files_only(tmp_path: Path) -> None:
    (tmp_path / "corp.crt").write_bytes(PEM)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "proxy.crt").write_bytes(PEM)
    (tmp_path / "notes.crt").write_text("not a certificate")
    (tmp_path / "other.pem").write_bytes(PEM)  # update-ca-certificates reads *.crt only
    (tmp_path / "huge.crt").write_bytes(PEM + b"#" * base_flavors.MAX_CA_BYTES)
    secret = tmp_path.parent / f"{tmp_path.name}-secret"
    secret.write_bytes(PEM + b"secret")
    os.symlink(secret, tmp_path / "link.crt")
    os.mkfifo(tmp_path / "fifo.crt")
    found = host_certificates(tmp_path)
    assert found == [("corp.crt", PEM), ("sub_proxy.crt", PEM)]
    assert host_certificates(tmp_path / "missing") == []
    layout = layout_tar(PANORAMA, found)
    assert _file(layout, f"{base_flavors.IMAGE_CA_DIR}/sub_proxy.crt") == PEM


def test_certificates_change_the_image_key_but_not_the_rootfs_key() -> None:
    plain = base_flavors.layout_digest(PANORAMA, layout_tar(PANORAMA, []))
    with_ca = base_flavors.layout_digest(PANORAMA, layout_tar(PANORAMA, [("a.crt", PEM)]))
    assert plain != with_ca
    rootfs = base_image.rootfs_key("amd64", "http://m", PANORAMA.packages, PANORAMA.suite)
    assert base_image.image_key(rootfs, plain) != base_image.image_key(rootfs, with_ca)
    assert rootfs != base_image.rootfs_key("amd64", "http://m", DEBIAN.packages, DEBIAN.suite)


def test_debian_flavor_keys_are_those_before_flavors() -> None:
    rootfs = base_image.rootfs_key("amd64", "http://m")
    legacy = hashlib.sha256(f"{rootfs}:{base_image.LAYOUT_VERSION}".encode()).hexdigest()
    assert base_flavors.layout_digest(DEBIAN, layout_tar(DEBIAN, [])) == ""
    assert base_image.image_key(rootfs, "") == legacy


def test_tags_and_dockerfiles_per_flavor() -> None:
    assert base_image.default_tag("linux/arm64") == "panorama-cli/base:bookworm-arm64"
    assert base_image.default_tag("linux/amd64", "panorama") == "panorama-cli/base:panorama-amd64"
    with pytest.raises(UserError, match="unknown base image flavor"):
        base_image.default_tag("linux/amd64", "ubuntu")
    debian = base_image.dockerfile_text({"k": "v"})
    assert debian == base_image.DOCKERFILE.format(labels='"k"="v"')
    lines = base_image.dockerfile_text({"k": "v"}, PANORAMA).splitlines()
    at = lines.index("ADD layout.tar /")
    assert lines[0] == "FROM scratch" and lines[at + 1] == PANORAMA.run[0]
