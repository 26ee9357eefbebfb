"""Local Debian base images for the Docker tests, built without pulling anything.

No container registry is reachable from CI (or from the dev machines), so the images the
tests run on are made by what ``panorama-cli base-image`` runs
(:func:`panorama_cli.build.base_image.ensure_base_image`: mmdebstrap or debootstrap writes a
root filesystem, the engine builds ``FROM scratch`` + ``ADD rootfs.tar /`` with
``platform=linux/<arch>``), with the tests' own names (``panorama-cli-test/base:...``) and
packages (python3 only) and the rootfs cache under ``/var/cache/panorama-cli-ci/``
(``PANORAMA_CLI_CI_CACHE`` overrides). The Panorama stand-ins (``base-image --flavor
panorama``: bullseye, pip, numpy 1.x, OpenCV's libraries) are built under their own names
(``panorama-cli/base:panorama-<arch>``), which build-container looks for, with the same
cache. This module adds the binfmt diagnosis, parallel builds and logging for CI.

Everything is cached by content: a key (sha256 of suite, arch, mirror, packages, variant
and builder version) is stored as an image label and names the rootfs tarball. With an
empty cache everything is rebuilt; with a warm one nothing is.

Use it from Python::

    from tests.support.base_images import ensure_base_image
    image = ensure_base_image(docker_client, "arm64")

or from a shell (CI does this before pytest)::

    python -m tests.support.base_images --arch all
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panorama_cli.build import base_image as library
from panorama_cli.build import debian_mirror

SUITE = library.SUITE
VARIANT = library.VARIANT
PACKAGES: tuple[str, ...] = ("python3",)
DEFAULT_MIRROR = debian_mirror.DEFAULT_MIRROR

IMAGE_REPO = "panorama-cli-test/base"
BASE_IMAGE_AMD64 = f"{IMAGE_REPO}:{SUITE}-amd64"
BASE_IMAGE_ARM64 = f"{IMAGE_REPO}:{SUITE}-arm64"
BASE_IMAGES = {"amd64": BASE_IMAGE_AMD64, "arm64": BASE_IMAGE_ARM64}
ARCHES: tuple[str, ...] = ("amd64", "arm64")
#: The stand-ins of public.ecr.aws/panorama/panorama-application (build-container's names).
PANORAMA_IMAGES = {arch: library.default_tag(f"linux/{arch}", "panorama") for arch in ARCHES}

LABEL_KEY = library.LABEL_KEY

DEFAULT_CACHE_DIR = Path("/var/cache/panorama-cli-ci")
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")

# ELF header magic/mask of each architecture, as binfmt_misc prints them (hex, no separators).
_ELF_MAGIC = {
    "arm64": (
        "7f454c460201010000000000000000000200b700",
        "ffffffffffffff00fffffffffffffffffeffffff",
    ),
    "amd64": (
        "7f454c4602010100000000000000000002003e00",
        "fffffffffffefe00fffffffffffffffffeffffff",
    ),
}


class BaseImageError(RuntimeError):
    """The base image cannot be built here (message says why and what to do)."""


def log(message: str) -> None:
    print(f"[base-images] {message}", flush=True)


@contextlib.contextmanager
def timed(step: str) -> Iterator[None]:
    start = time.monotonic()
    log(f"{step} ...")
    try:
        yield
    except BaseException:
        log(f"{step}: FAILED after {time.monotonic() - start:.1f} s")
        raise
    log(f"{step}: done in {time.monotonic() - start:.1f} s")


# --------------------------------------------------------------------------- inputs


def host_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        machine, machine
    )


def _check_arch(arch: str) -> str:
    if arch not in BASE_IMAGES:
        raise ValueError(f"unsupported arch {arch!r}; expected one of {', '.join(ARCHES)}")
    return arch


_mirrors_from_sources = debian_mirror.mirrors_from_sources


def detect_mirror(suite: str = SUITE) -> str:
    """The Debian mirror the machine's apt uses for ``suite`` (env PANORAMA_CI_MIRROR wins)."""
    return debian_mirror.detect_mirror(suite)


def cache_key(arch: str, mirror: str | None = None) -> str:
    """Content key of one test base image (its label)."""
    mirror = mirror if mirror is not None else detect_mirror()
    return library.image_key(library.rootfs_key(_check_arch(arch), mirror, PACKAGES))


def cache_dir() -> Path:
    return Path(os.environ.get("PANORAMA_CLI_CI_CACHE", str(DEFAULT_CACHE_DIR)))


# --------------------------------------------------------------------------- binfmt


@dataclass(frozen=True)
class BinfmtHandler:
    name: str
    interpreter: str
    flags: str
    enabled: bool

    @property
    def fix_binary(self) -> bool:
        """F flag: interpreter opened at registration, so it works inside chroots/containers."""
        return "F" in self.flags


def find_binfmt_handler(arch: str, binfmt_dir: Path = BINFMT_DIR) -> BinfmtHandler | None:
    """The binfmt_misc handler whose ELF magic matches ``arch``, or None."""
    magic, mask = _ELF_MAGIC[_check_arch(arch)]
    try:
        entries = sorted(binfmt_dir.iterdir())
    except OSError:
        return None
    found = None
    for entry in entries:
        if entry.name in ("register", "status"):
            continue
        try:
            fields = entry.read_text(errors="replace").splitlines()
        except OSError:
            continue
        info: dict[str, str] = {}
        enabled = False
        for line in fields:
            if line.strip() == "enabled":
                enabled = True
            key, _, value = line.partition(" ")
            info[key.rstrip(":")] = value.strip()
        if info.get("magic") != magic or info.get("offset", "0") != "0":
            continue
        if info.get("mask", mask) != mask:
            continue
        handler = BinfmtHandler(
            entry.name, info.get("interpreter", ""), info.get("flags", ""), enabled
        )
        if handler.enabled and handler.fix_binary:
            return handler
        found = found or handler
    return found


def binfmt_problem(arch: str, binfmt_dir: Path = BINFMT_DIR) -> str | None:
    """Why foreign-``arch`` binaries cannot run in containers here, or None if they can."""
    if arch == host_arch():
        return None
    status = binfmt_dir / "status"
    try:
        if status.read_text().strip() != "enabled":
            return f"binfmt_misc is disabled ({status} is not 'enabled')"
    except OSError:
        return (
            f"binfmt_misc is not mounted at {binfmt_dir} "
            f"(mount -t binfmt_misc binfmt_misc {binfmt_dir})"
        )
    handler = find_binfmt_handler(arch, binfmt_dir)
    if handler is None:
        return (
            f"no binfmt_misc handler for {arch} ELF binaries; install qemu-user-static and "
            "binfmt-support, then `update-binfmts --enable qemu-aarch64`"
        )
    if not handler.enabled:
        return f"binfmt_misc handler {handler.name!r} is registered but disabled"
    if not handler.fix_binary:
        return (
            f"binfmt_misc handler {handler.name!r} lacks the F (fix-binary) flag "
            f"(flags {handler.flags!r}), so {handler.interpreter} would have to exist inside "
            "every chroot/container; re-register it with F (see .ci/run)"
        )
    return None


# --------------------------------------------------------------------------- images


def find_base_image(client: Any, arch: str, key: str | None = None) -> str | None:
    """The image name if it exists with the current content key and architecture."""
    name = BASE_IMAGES[_check_arch(arch)]
    return name if library.find_image(client, name, key or cache_key(arch), arch) else None


def render_dockerfile(labels: dict[str, str]) -> str:
    """The Dockerfile the library builds base images with (labels as one LABEL line)."""
    return library.DOCKERFILE.format(
        labels=" ".join(f"{json.dumps(k)}={json.dumps(v)}" for k, v in sorted(labels.items()))
    )


def ensure_base_image(client: Any, arch: str, *, force: bool = False) -> str:
    """Return the base image name for ``arch``, building it (and its rootfs) if needed."""
    from panorama_cli.errors import UserError

    _check_arch(arch)
    cdir = cache_dir()
    try:
        cdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BaseImageError(
            f"cannot create cache dir {cdir}: {exc} (set PANORAMA_CLI_CI_CACHE)"
        ) from exc
    start = time.monotonic()
    try:
        image = library.ensure_base_image(
            f"linux/{arch}",
            BASE_IMAGES[arch],
            packages=PACKAGES,
            cache=cdir,
            force=force,
            client=client,
            on_log=lambda line: log(f"{arch}: {line}"),
        )
    except UserError as exc:
        raise BaseImageError(str(exc)) from exc
    state = "up to date" if image.cached else f"built in {time.monotonic() - start:.1f} s"
    log(f"{image.tag}: {state} (key {cache_key(arch)[:12]})")
    return image.tag


def ensure_panorama_image(client: Any, arch: str, *, force: bool = False) -> str:
    """Return the Panorama stand-in's name for ``arch``, building it if needed."""
    from panorama_cli.errors import UserError

    _check_arch(arch)
    cdir = cache_dir()
    cdir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    try:
        image = library.ensure_base_image(
            f"linux/{arch}",
            PANORAMA_IMAGES[arch],
            flavor="panorama",
            cache=cdir,
            force=force,
            client=client,
            on_log=lambda line: log(f"{arch} panorama: {line}"),
        )
    except UserError as exc:
        raise BaseImageError(str(exc)) from exc
    state = "up to date" if image.cached else f"built in {time.monotonic() - start:.1f} s"
    log(f"{image.tag}: {state}")
    return image.tag


def verify_image(client: Any, arch: str, image: str | None = None, python: str = "python3") -> str:
    """Run ``python`` in the image (default: the test base) and check it reports the
    expected machine."""
    expected = {"amd64": "x86_64", "arm64": "aarch64"}[arch]
    image = image or BASE_IMAGES[arch]
    out = client.containers.run(
        image,
        [python, "-c", "import platform; print(platform.machine())"],
        platform=f"linux/{arch}",
        remove=True,
        network_disabled=True,
    )
    machine = out.decode().strip()
    if machine != expected:
        raise BaseImageError(f"{image} runs as {machine!r}, expected {expected!r}")
    return machine


def _ensure_and_verify(arch: str, force: bool, verify: bool) -> str:
    import docker

    client = docker.from_env(timeout=120)
    try:
        with timed(f"ensure {BASE_IMAGES[arch]}"):
            name = ensure_base_image(client, arch, force=force)
        if verify:
            with timed(f"verify {name}"):
                machine = verify_image(client, arch)
            log(f"{name}: python3 runs, platform.machine() = {machine}")
        with timed(f"ensure {PANORAMA_IMAGES[arch]}"):
            panorama = ensure_panorama_image(client, arch, force=force)
        if verify:
            verify_image(client, arch, panorama, "python3.8")
            log(f"{panorama}: python3.8 runs")
        return name
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.base_images",
        description="Build the local Debian base images the Docker tests use (no pulls).",
    )
    parser.add_argument("--arch", choices=[*ARCHES, "all"], default="all")
    parser.add_argument("--force", action="store_true", help="rebuild ignoring all caches")
    parser.add_argument(
        "--no-verify", action="store_true", help="do not run python3 in the built images"
    )
    parser.add_argument(
        "--serial", action="store_true", help="build one arch after the other (default: parallel)"
    )
    args = parser.parse_args(argv)

    import docker

    arches = list(ARCHES) if args.arch == "all" else [args.arch]
    total = time.monotonic()
    try:
        client = docker.from_env(timeout=120)
        client.ping()
        client.close()
    except Exception as exc:
        host = os.environ.get("DOCKER_HOST", "<unset>")
        log(f"ERROR: Docker engine unreachable (DOCKER_HOST={host}): {exc}")
        return 2
    log(f"mirror {detect_mirror()}, cache {cache_dir()}, host {host_arch()}, arches {arches}")
    failed = []
    with ThreadPoolExecutor(max_workers=1 if args.serial else len(arches)) as pool:
        futures = {
            arch: pool.submit(_ensure_and_verify, arch, args.force, not args.no_verify)
            for arch in arches
        }
        for arch, future in futures.items():
            try:
                future.result()
            except BaseImageError as exc:
                log(f"ERROR ({arch}): {exc}")
                failed.append(arch)
    if failed:
        log(f"FAILED: {', '.join(failed)} after {time.monotonic() - total:.1f} s")
        return 1
    log(f"all done in {time.monotonic() - total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
