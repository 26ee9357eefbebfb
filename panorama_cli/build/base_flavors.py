"""What each local base image holds: the ``debian`` and ``panorama`` flavors of
``panorama-cli base-image``.

* ``debian`` (``panorama-cli/base:bookworm-<arch>``): Debian bookworm minbase with python3 and
  python3-numpy, the Panorama layout (``/opt/aws/panorama/{logs,storage}``, ``/panorama``).
* ``panorama`` (``panorama-cli/base:panorama-<arch>``): the local stand-in for
  ``public.ecr.aws/panorama/panorama-application``, which no registry serves here. Debian
  bullseye (Python 3.9, the closest to the appliance's 3.7/3.8 that Debian still serves) with
  pip, numpy 1.19 (numpy 1.x: apps written for it call ``tostring()`` and the like), the
  system libraries PyPI's OpenCV wheels load (libGL, GLib, X11/xcb, SM/ICE), CA certificates
  plus the ones this machine adds in ``/usr/local/share/ca-certificates`` (so that pip reaches
  PyPI through the same TLS-inspecting proxy as the host), ``python3.7`` / ``python3.8`` /
  ``python`` names for python3 and ``pip3.7`` / ``pip3.8`` / ``pip`` in ``/usr/local/bin``,
  and ``/etc/pip.conf`` holding every ``pip install`` to ``numpy<2`` (pip picks the newest
  package versions that still work with numpy 1; OpenCV is held below 4.12, the first
  release that needs numpy 2, so that pip does not download the newer wheels to find out).

A flavor gives the Debian suite and packages of the root filesystem (cached by content, see
:mod:`.base_image`), the extra files and links of the image (a deterministic tar), and the
extra Dockerfile lines; :func:`layout_digest` covers all of it, so a change rebuilds the image.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

from panorama_cli.errors import UserError

log = logging.getLogger(__name__)

#: Where Debian's update-ca-certificates takes local CA certificates from (``*.crt``, PEM).
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
#: Folder of the image the host's certificates are copied into.
IMAGE_CA_DIR = "usr/local/share/ca-certificates/panorama-cli-host"
#: Bounds on the host certificates copied (count, bytes of one file).
MAX_HOST_CAS = 256
MAX_CA_BYTES = 1 << 20
#: The folders of the Panorama layout, in every flavor.
PANORAMA_DIRS = ("opt/aws/panorama/logs", "opt/aws/panorama/storage", "panorama")

_PIP_SHIM = b'#!/bin/sh\nexec /usr/bin/python3 -m pip "$@"\n'
_PIP_CONF = b"""\
# panorama-cli base-image --flavor panorama: apps for the Panorama Appliance are written for
# numpy 1.x, so every pip install keeps numpy below 2 (pip then picks package versions that
# work with it). Remove this file, or pass --constraint of your own, to lift it.
[install]
constraint = /etc/pip/constraints.txt
[global]
disable-pip-version-check = true
"""
_CONSTRAINTS = b"""\
# the Panorama application base image ships numpy 1.x
numpy<2
# OpenCV 4.12 and later require numpy 2: without these, pip downloads each of those wheels
# (about 70 MB apiece) before it settles on 4.11
opencv-python<4.12
opencv-python-headless<4.12
opencv-contrib-python<4.12
opencv-contrib-python-headless<4.12
"""


@dataclass(frozen=True)
class Flavor:
    """One kind of local base image.

    Attributes:
        name: ``debian`` or ``panorama`` (``--flavor``).
        suite: the Debian suite of the root filesystem.
        packages: Debian packages bootstrapped into it (their dependencies come along).
        tag_prefix: the image tag is ``panorama-cli/base:<tag_prefix>-<arch>``.
        files: extra image files: (path in the image, content, mode).
        links: extra symbolic links: (path in the image, target).
        run: extra Dockerfile ``RUN`` lines (exec form), after the files are in place.
        host_ca: copy this machine's local CA certificates (:data:`HOST_CA_DIR`) in.
        summary: one line on what the image holds (help and notes).
    """

    name: str
    suite: str
    packages: tuple[str, ...]
    tag_prefix: str
    files: tuple[tuple[str, bytes, int], ...] = ()
    links: tuple[tuple[str, str], ...] = ()
    run: tuple[str, ...] = ()
    host_ca: bool = False
    summary: str = ""


DEBIAN = Flavor(
    "debian",
    "bookworm",
    ("python3", "python3-numpy"),
    "bookworm",
    summary="Debian bookworm, python3 3.11, numpy",
)
#: What PyPI's OpenCV wheels (opencv-python and -contrib, not only -headless) load at import.
OPENCV_LIBRARIES: tuple[str, ...] = (
    "libgl1",
    "libglib2.0-0",
    "libsm6",
    "libice6",
    "libxext6",
    "libxrender1",
    "libxcb1",
    "libx11-6",
)
PANORAMA = Flavor(
    "panorama",
    "bullseye",
    ("python3", "python3-pip", "python3-numpy", "ca-certificates", *OPENCV_LIBRARIES),
    "panorama",
    files=(
        ("etc/pip.conf", _PIP_CONF, 0o644),
        ("etc/pip/constraints.txt", _CONSTRAINTS, 0o644),
        *((f"usr/local/bin/{name}", _PIP_SHIM, 0o755) for name in ("pip", "pip3.7", "pip3.8")),
    ),
    links=tuple(
        (f"usr/local/bin/{name}", "/usr/bin/python3")
        for name in ("python", "python3.7", "python3.8")
    ),
    run=('RUN ["/usr/sbin/update-ca-certificates"]',),
    host_ca=True,
    summary="Debian bullseye, python3 3.9 (also as python3.7/python3.8), pip, numpy 1.x, "
    "OpenCV's system libraries, CA certificates",
)
FLAVORS: dict[str, Flavor] = {f.name: f for f in (DEBIAN, PANORAMA)}


def flavor_named(name: str) -> Flavor:
    """The flavor called ``name``.

    Raises:
        UserError: no such flavor.
    """
    try:
        return FLAVORS[name]
    except KeyError:
        raise UserError(
            f"unknown base image flavor {name!r}", hint=f"use {', '.join(FLAVORS)}"
        ) from None


def _read_certificate(path: Path) -> bytes | None:
    """The bytes of a regular PEM file at ``path`` (not followed when a link), or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        log.debug("skipping CA file %s: %s", path, exc)
        return None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_CA_BYTES:
            log.debug("skipping CA file %s: not a regular file of at most 1 MiB", path)
            return None
        data = fh.read(MAX_CA_BYTES + 1)
    if len(data) > MAX_CA_BYTES or b"-----BEGIN CERTIFICATE-----" not in data:
        log.debug("skipping CA file %s: no PEM certificate", path)
        return None
    return data


def host_certificates(folder: Path = HOST_CA_DIR) -> list[tuple[str, bytes]]:
    """This machine's local CA certificates: (file name in the image, PEM bytes), sorted.

    ``*.crt`` regular files under ``folder`` (links and non-PEM files are skipped, as are
    files past :data:`MAX_HOST_CAS`); a missing folder gives ``[]``.
    """
    try:
        found = sorted(p for p in folder.rglob("*.crt") if not p.is_symlink())
    except OSError as exc:
        log.debug("no host CA certificates from %s: %s", folder, exc)
        return []
    certificates = []
    for path in found[:MAX_HOST_CAS]:
        data = _read_certificate(path)
        if data is not None:
            name = str(path.relative_to(folder)).replace("/", "_")
            certificates.append((name, data))
    return certificates


def _add(tar: tarfile.TarFile, name: str, *, data: bytes = b"", mode: int = 0o644,
         link: str | None = None, folder: bool = False) -> None:  # fmt: skip
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.mode = 0, 0, 0, mode
    if folder:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    elif link is not None:
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, link, 0o777
    else:
        info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if info.isfile() else None)


def layout_tar(flavor: Flavor, certificates: list[tuple[str, bytes]]) -> bytes:
    """The tar (deterministic bytes) added over the root filesystem: the Panorama folders,
    the flavor's files and links, and ``certificates`` under :data:`IMAGE_CA_DIR`."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        folders: list[str] = []
        for folder in PANORAMA_DIRS:
            parts = folder.split("/")
            folders += ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]
        for folder in dict.fromkeys(folders):
            _add(tar, folder, folder=True)
        for name, data, mode in flavor.files:
            _add(tar, name, data=data, mode=mode)
        for name, target in flavor.links:
            _add(tar, name, link=target)
        for name, data in certificates:
            _add(tar, f"{IMAGE_CA_DIR}/{name}", data=data)
    return out.getvalue()


def layout_digest(flavor: Flavor, layout: bytes) -> str:
    """sha256 of what the image adds over its root filesystem ("" for the debian flavor,
    whose images predate flavors and keep their keys)."""
    if flavor is DEBIAN:
        return ""
    return hashlib.sha256(layout + "\n".join(flavor.run).encode()).hexdigest()
