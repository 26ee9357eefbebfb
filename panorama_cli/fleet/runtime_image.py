"""panorama-cli's runtime as an image: what the appliance image of every fleet target runs.

``panorama-cli/runtime:<version>-<key>-<arch>`` is built FROM the local Debian base image
(``panorama-cli base-image``, :mod:`panorama_cli.build.base_image`; no registry pull) with:

* GStreamer 1.22 and PyGObject from Debian's packages (``python3-gi``, gst-rtsp-server): the
  RTSP cameras, ``gst:`` sources and RTSP out;
* a virtual environment (``--system-site-packages`` for ``gi``) installed offline from a
  wheelhouse that this machine downloads once with pip for the image's Python (3.11) and
  platform (``manylinux_2_36_<arch>``: bookworm's glibc) — pip's documented offline install
  (``pip download`` then ``pip install --no-index --find-links``) — in a build stage of its
  own, so the wheelhouse is in no layer of the image; pip and setuptools are removed after;
* only what serve runs: panorama-cli's dependencies but :data:`NOT_SERVE` (the cloud and
  Kubernetes clients of ``deploy``); of Debian's packages the GL/LLVM drivers, icon themes
  and sound fonts that GStreamer's plugins pull in but serve never loads
  (:data:`APT_UNUSED`, removed with ``dpkg --force-depends``: the libraries that link to
  them are plugins serve does not use), and the documentation (copyright files kept);
* panorama-cli's own code (``panorama_cli``, ``backpack``, templates, schemas) as installed
  here, on ``PYTHONPATH``;
* the AWS IoT Device SDK v2 (``awsiotsdk``, :data:`IMAGE_ONLY`): the Greengrass component
  runs its secret fetcher (:mod:`.greengrass_fetch`) with this image's Python (:data:`PYTHON`);
* the user serve runs as, ``panorama`` (:data:`~.model.SERVE_UID`, group
  :data:`~.model.APP_GID`; ``USER`` of the image), owning serve's state folder and the control
  socket's folder (a new volume mounted there takes their owner), ``HOME`` and caches in
  ``/tmp`` (the root is read-only in a fleet), and ``umask 007`` at start: the control socket
  is ``srwxrwx---``, so the node containers (users of the group) may connect and nobody else.

Why its own image and not a layer on the app's image: Panorama's application base image is
Ubuntu 18.04 with Python 3.7, which cannot host this runtime (Python >= 3.10, GStreamer 1.22);
so the runtime runs next to the app's containers, sharing the control socket
(:mod:`.model`), as several business-logic images must anyway.

The key is a sha256 of the Dockerfile, the requirements, the base image id and panorama-cli's
code: an unchanged installation reuses the image (and its wheelhouse) at once.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from panorama_cli.errors import UserError
from panorama_cli.fleet.model import APP_GID, CONTROL_DIR, SERVE_UID, STATE_DIR

log = logging.getLogger(__name__)

REPOSITORY = "panorama-cli/runtime"
#: The base image's Python (Debian bookworm) and glibc.
PYTHON_VERSION = "3.11"
GLIBC_TAG = "manylinux_2_36"
RUNTIME_DIR = "/opt/panorama-cli/runtime"
ENTRY = f"{RUNTIME_DIR}/bin/panorama-cli"
#: The runtime's Python (the Greengrass component runs its secret fetcher with it).
PYTHON = f"{RUNTIME_DIR}/venv/bin/python"
APT_PACKAGES = (
    "ca-certificates",
    "python3-venv",
    "python3-gi",
    "gir1.2-gstreamer-1.0",
    "gir1.2-gst-plugins-base-1.0",
    "gir1.2-gst-rtsp-server-1.0",
    "gstreamer1.0-plugins-base",
    "gstreamer1.0-plugins-good",
    "gstreamer1.0-plugins-bad",
    "gstreamer1.0-plugins-ugly",
    "gstreamer1.0-libav",
)
#: Installed by the packages above, loaded by nothing serve runs (GL drivers and the LLVM
#: they need, GTK's icons and themes, MIDI sound fonts): removed from the image.
APT_UNUSED = (
    "libgl1-mesa-dri",
    "libllvm15",
    "libz3-4",
    "adwaita-icon-theme",
    "libgtk-3-common",
    "timgm6mb-soundfont",
)
#: panorama-cli's dependencies serve never imports (deploy's AWS and Kubernetes clients).
NOT_SERVE = frozenset({"boto3", "kubernetes"})
#: What the image has beyond panorama-cli's dependencies: the AWS IoT Device SDK v2, the
#: Greengrass component's IPC client (:mod:`.greengrass_fetch`), pinned like the others when
#: installed here.
IMAGE_ONLY = ("awsiotsdk>=1.21",)
_MACHINE = {"amd64": "x86_64", "arm64": "aarch64"}
DOCKERFILE = f"""\
ARG BASE
FROM $BASE AS system
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
    {" ".join(APT_PACKAGES)} \\
 && dpkg --purge --force-depends {" ".join(APT_UNUSED)} \\
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \\
 && find /usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete \\
 && rm -rf /usr/share/man /usr/share/info

FROM system AS venv
COPY wheels /tmp/wheels
COPY requirements.txt /tmp/requirements.txt
RUN python3 -m venv --system-site-packages {RUNTIME_DIR}/venv \\
 && {RUNTIME_DIR}/venv/bin/python -m pip install --no-index --find-links /tmp/wheels \\
    --no-cache-dir -r /tmp/requirements.txt \\
 && {RUNTIME_DIR}/venv/bin/python -m pip uninstall -y -q pip setuptools

FROM system
COPY --from=venv {RUNTIME_DIR}/venv {RUNTIME_DIR}/venv
COPY lib {RUNTIME_DIR}/lib
COPY panorama-cli {ENTRY}
RUN groupadd --system --gid {APP_GID} panorama \\
 && useradd --system --uid {SERVE_UID} --gid {APP_GID} --home-dir /nonexistent --no-create-home \\
    --shell /usr/sbin/nologin panorama \\
 && install -d -o {SERVE_UID} -g {APP_GID} -m 0750 {STATE_DIR} {CONTROL_DIR}
ENV PYTHONPATH={RUNTIME_DIR}/lib PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \\
    HOME=/tmp XDG_CACHE_HOME=/tmp/.cache
USER {SERVE_UID}:{APP_GID}
ENTRYPOINT ["{ENTRY}"]
"""
ENTRY_SCRIPT = f"""#!/bin/sh
umask 007
exec {RUNTIME_DIR}/venv/bin/python -m panorama_cli "$@"
"""


def requirements() -> list[str]:
    """panorama-cli's own dependencies (no extras, none of :data:`NOT_SERVE`) and
    :data:`IMAGE_ONLY`, pinned to the
    versions installed here (importlib.metadata), e.g. ``["av==14.0.1", ...]``. From a source
    checkout (an editable install, whose metadata lags behind an edited pyproject.toml) the
    list is pyproject.toml's."""
    from importlib import metadata

    from packaging.requirements import Requirement

    found = []
    for requirement in _declared() or metadata.requires("panorama-cli") or []:
        spec, _, marker = requirement.partition(";")
        if "extra" in marker:
            continue
        name = Requirement(spec).name
        if name.lower() in NOT_SERVE:
            continue
        try:  # the version tested here, not whatever is newest on the index
            found.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(spec.strip())
    for spec in IMAGE_ONLY:
        name = Requirement(spec).name
        try:
            found.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(spec)
    return sorted(found)


def _declared() -> list[str] | None:
    """``[project].dependencies`` of the pyproject.toml beside the package when it is panorama-cli's
    (a source checkout), else None."""
    import importlib

    import panorama_cli

    try:
        tomllib = importlib.import_module("tomllib")  # Python >= 3.11
    except ImportError:
        return None

    path = Path(panorama_cli.__file__).resolve().parent.parent / "pyproject.toml"
    try:
        project = tomllib.loads(path.read_text(encoding="utf-8")).get("project") or {}
    except (OSError, ValueError):
        return None
    if project.get("name") != "panorama-cli":
        return None
    return [str(d) for d in project.get("dependencies") or []]


def _code_dirs() -> dict[str, Path]:
    """The folders of panorama-cli's code as installed here -> their name in the image."""
    import backpack
    import panorama_cli
    from panorama_cli.resources import data_dir

    package = Path(panorama_cli.__file__).resolve().parent
    return {
        "panorama_cli": package,
        "backpack": Path(backpack.__file__).resolve().parent,
        "panorama_cli/templates": data_dir("templates"),
        "panorama_cli/schemas": data_dir("schemas"),
    }


def _files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
    )


def runtime_key(base_id: str, arch: str) -> str:
    """12 hex digits over everything the image is made of (see the module docstring)."""
    digest = hashlib.sha256()
    for part in (DOCKERFILE, ENTRY_SCRIPT, base_id, arch, *requirements()):
        digest.update(part.encode() + b"\0")
    for name, folder in _code_dirs().items():
        for path in _files(folder):
            if name == "panorama_cli" and path.relative_to(folder).parts[0] in (
                "templates",
                "schemas",
            ):
                continue  # hashed under their own name (a wheel keeps them in the package)
            digest.update(f"{name}/{path.relative_to(folder)}".encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _abi_args() -> list[str]:
    abi = "cp" + PYTHON_VERSION.replace(".", "")
    return ["--abi", abi, "--abi", "abi3", "--abi", "none"]


def _platform_args(machine: str) -> list[str]:
    """Every manylinux tag the image's glibc runs (pip does not expand ``--platform``)."""
    newest = int(GLIBC_TAG.rsplit("_", 1)[1])
    tags = [f"manylinux_2_{minor}_{machine}" for minor in range(newest, 16, -1)]
    tags += [f"manylinux2014_{machine}", f"manylinux2010_{machine}", f"manylinux1_{machine}"]
    return [arg for tag in tags for arg in ("--platform", tag)]


def _wheelhouse(arch: str, folder: Path, on_log: Callable[[str], None]) -> None:
    """pip download of :func:`requirements` for the image's Python and platform."""
    machine = _MACHINE[arch]
    argv = [
        sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
        "--dest", str(folder), "--only-binary=:all:", "--implementation", "cp",
        "--python-version", PYTHON_VERSION, *_abi_args(), *_platform_args(machine),
        *requirements(),
    ]  # fmt: skip
    on_log(f"downloading the runtime's wheels for linux/{arch} (pip download, once)")
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise UserError(
            f"pip download of the runtime's wheels for linux/{arch} failed: "
            f"{lines[-1] if lines else 'exit ' + str(result.returncode)}",
            hint="this machine needs PyPI (or its pip index) once per panorama-cli version",
        )


def ensure_runtime_image(
    client: Any,
    platform: str,
    *,
    base: str | None = None,
    on_log: Callable[[str], None] | None = None,
) -> str:
    """The runtime image for ``platform``: found by its key, else built.

    Args:
        client: a Docker client (:func:`panorama_cli.build.docker_client.connect`).
        platform: ``linux/amd64`` or ``linux/arm64``.
        base: the Debian base image (default: ``panorama-cli base-image``'s tag).
        on_log: progress lines.

    Returns:
        The image's tag, ``panorama-cli/runtime:<version>-<key>-<arch>``.

    Raises:
        UserError: no base image (the command that builds it), the wheels cannot be
            downloaded, the build fails.
    """
    from panorama_cli import __version__
    from panorama_cli.build import base_image
    from panorama_cli.build.docker_build import build_image
    from panorama_cli.build.image_cache import image_id_of

    say = on_log or (lambda line: log.info("%s", line))
    arch = base_image.arch_of(platform)
    base = base or base_image.default_tag(platform)
    base_id = image_id_of(client, base)
    if base_id is None:
        raise UserError(
            f"no base image {base} in the Docker engine (the runtime image is built on it)",
            hint=f"build it: panorama-cli base-image --platform {platform}",
        )
    tag = f"{REPOSITORY}:{__version__}-{runtime_key(base_id, arch)}-{arch}"
    if image_id_of(client, tag) is not None:
        return tag
    say(f"building {tag} (once per panorama-cli version and platform)")
    with tempfile.TemporaryDirectory(prefix="panorama-runtime-") as tmp:
        context = Path(tmp)
        (context / "Dockerfile").write_text(DOCKERFILE)
        (context / "requirements.txt").write_text("\n".join(requirements()) + "\n")
        entry = context / "panorama-cli"
        entry.write_text(ENTRY_SCRIPT)
        entry.chmod(0o755)
        (context / "wheels").mkdir()
        _wheelhouse(arch, context / "wheels", say)
        for name, folder in _code_dirs().items():
            shutil.copytree(
                folder,
                context / "lib" / name,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                dirs_exist_ok=True,
            )
        build_image(
            context, tag=tag, platform=platform, build_args={"BASE": base}, client=client,
            on_log=lambda line: log.debug("%s", line),
        )  # fmt: skip
    return tag
