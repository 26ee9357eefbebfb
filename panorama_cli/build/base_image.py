"""``panorama-cli base-image``: a local stand-in for the Panorama application base image.

No registry is needed: a Debian root filesystem (bookworm, minbase + python3 + python3-numpy)
comes from the machine's own Debian mirror through a well-kept bootstrapper — ``mmdebstrap``
(also unprivileged) or ``debootstrap`` (as root) — and the Docker engine builds
``FROM scratch`` + ``ADD rootfs.tar /`` + the Panorama layout (``/opt/aws/panorama/logs``,
``/opt/aws/panorama/storage``, ``WORKDIR /panorama``) for the platform.

Cached by content: the rootfs tarball is kept under the cache folder
(``$PANORAMA_CLI_CACHE`` or ``~/.cache/panorama-cli/base-images``) named by a key (sha256
of suite, arch, mirror, variant, packages, builder version), and the image carries the key
in a label, so a second call with the same inputs returns at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panorama_cli.build import platforms
from panorama_cli.build.debian_mirror import detect_mirror
from panorama_cli.errors import UserError

log = logging.getLogger(__name__)

SUITE = "bookworm"
VARIANT = "minbase"
PACKAGES: tuple[str, ...] = ("python3", "python3-numpy")
REPOSITORY = "panorama-cli/base"
#: The Dockerfile default this image stands in for.
PANORAMA_BASE = "public.ecr.aws/panorama/panorama-application"
ROOTFS_BUILDER = "1"  # bump when the rootfs changes for the same inputs
LAYOUT_VERSION = "1"  # bump when the image on top of the rootfs changes
LABEL_KEY = "org.panorama-cli.base-key"
PANORAMA_DIRS = ("opt/aws/panorama/logs", "opt/aws/panorama/storage", "panorama")
DOCKERFILE = """\
FROM scratch
ADD rootfs.tar /
ADD layout.tar /
ENV LANG=C.UTF-8
WORKDIR /panorama
LABEL {labels}
CMD ["python3"]
"""
_EXCLUDES = ("./dev/*", "./proc/*", "./sys/*", "./tmp/*", "./var/cache/apt/archives/*.deb")


def arch_of(platform: str) -> str:
    """``linux/arm64`` → ``arm64``; ``linux/amd64`` → ``amd64``.

    Raises:
        UserError: an unsupported platform.
    """
    return {"aarch64": "arm64", "x86_64": "amd64"}[platforms.target_machine(platform)]


def default_tag(platform: str) -> str:
    """``panorama-cli/base:bookworm-<arch>``."""
    return f"{REPOSITORY}:{SUITE}-{arch_of(platform)}"


def cache_dir() -> Path:
    """``$PANORAMA_CLI_CACHE`` or ``$XDG_CACHE_HOME/panorama-cli/base-images``."""
    if os.environ.get("PANORAMA_CLI_CACHE"):
        return Path(os.environ["PANORAMA_CLI_CACHE"])
    home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(home) / "panorama-cli" / "base-images"


def rootfs_key(arch: str, mirror: str, packages: tuple[str, ...] = PACKAGES) -> str:
    """Content key of a root filesystem (also in the cached tarball's name)."""
    spec = {
        "suite": SUITE,
        "arch": arch,
        "mirror": mirror,
        "variant": VARIANT,
        "packages": sorted(packages),
        "builder": ROOTFS_BUILDER,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def image_key(rootfs: str) -> str:
    """Content key of the image built on a root filesystem (stored in a label)."""
    return hashlib.sha256(f"{rootfs}:{LAYOUT_VERSION}".encode()).hexdigest()


@dataclass(frozen=True)
class BaseImage:
    """A ready base image: ``tag``, its ``image_id``, ``cached`` (nothing was built)."""

    tag: str
    image_id: str
    cached: bool


def find_image(client: Any, tag: str, key: str, arch: str) -> str | None:
    """The id of ``tag`` when it exists with ``key`` and ``arch``, else None."""
    import docker

    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None
    labels = (image.attrs.get("Config") or {}).get("Labels") or {}
    if labels.get(LABEL_KEY) != key or image.attrs.get("Architecture") != arch:
        return None
    return str(image.id)


def _bootstrap(arch: str, mirror: str, packages: tuple[str, ...], out: Path, work: Path) -> None:
    """Write the rootfs tarball ``out`` with mmdebstrap, else debootstrap (root) + tar."""
    include = f"--include={','.join(packages)}"
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap:
        command = [mmdebstrap, f"--variant={VARIANT}", f"--arch={arch}", include]
        command += [SUITE, str(out), mirror]
        _run(command, work / "mmdebstrap.log")
        return
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None or os.geteuid() != 0:
        raise UserError(
            "no Debian bootstrapper to build the base image with",
            hint="install mmdebstrap (works unprivileged: sudo apt-get install mmdebstrap), "
            "or run as root with debootstrap installed",
        )
    root = work / "root"
    command = [debootstrap, f"--variant={VARIANT}", f"--arch={arch}", include, SUITE, str(root)]
    _run([*command, mirror], work / "debootstrap.log")
    tar = ["tar", "--create", "--file", str(out), "--numeric-owner", "--directory", str(root)]
    tar += [f"--exclude={pattern}" for pattern in _EXCLUDES]
    _run([*tar, "--exclude=./debootstrap", "."], work / "tar.log")


def _run(command: list[str], log_path: Path) -> None:
    log.debug("run %s (log %s)", command, log_path)
    with open(log_path, "wb") as fh:
        done = subprocess.run(command, stdout=fh, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        lines = log_path.read_text(errors="replace").strip().splitlines() or ["no output"]
        raise UserError(
            f"{Path(command[0]).name} failed (exit {done.returncode}): {lines[-1][:200]}",
            hint=f"see {log_path}; check the Debian mirror (PANORAMA_CI_MIRROR overrides it)",
        )


def rootfs_tarball(
    arch: str, mirror: str, packages: tuple[str, ...], cache: Path, *, force: bool = False
) -> Path:
    """The cached rootfs tarball ``<cache>/rootfs-<suite>-<arch>-<key16>.tar``, built when
    missing (tarballs of other keys stay: another tag may use them).

    Raises:
        UserError: no bootstrapper, emulation missing for a foreign arch, bootstrap failed.
    """
    key = rootfs_key(arch, mirror, packages)
    target = cache / f"rootfs-{SUITE}-{arch}-{key[:16]}.tar"
    if target.is_file() and not force:
        return target
    platforms.check_platform(f"linux/{arch}")
    work = Path(tempfile.mkdtemp(prefix=f"rootfs-{arch}-", dir=cache))
    try:
        partial = work / "rootfs.tar"
        _bootstrap(arch, mirror, packages, partial, work)
        os.replace(partial, target)
    finally:
        _remove_work(work)
    return target


def _remove_work(work: Path) -> None:
    """Remove a bootstrap folder, unmounting what debootstrap may have left mounted in it."""
    prefix = str(work.resolve()) + "/"
    with contextlib.suppress(OSError), open("/proc/self/mountinfo", encoding="utf-8") as fh:
        points = [line.split()[4] for line in fh if line.split()[4].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)
    shutil.rmtree(work, ignore_errors=True)


def _context(rootfs: Path, labels: dict[str, str], dest: Path) -> None:
    label_text = " ".join(f"{json.dumps(k)}={json.dumps(v)}" for k, v in sorted(labels.items()))
    layout = io.BytesIO()
    with tarfile.open(fileobj=layout, mode="w") as tar:
        for folder in PANORAMA_DIRS:
            parts = folder.split("/")
            for depth in range(1, len(parts) + 1):
                info = tarfile.TarInfo("/".join(parts[:depth]))
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                if info.name not in tar.getnames():
                    tar.addfile(info)
    with tarfile.open(dest, "w") as ctx:
        for name, data in (
            ("Dockerfile", DOCKERFILE.format(labels=label_text).encode()),
            ("layout.tar", layout.getvalue()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            ctx.addfile(info, io.BytesIO(data))
        ctx.add(str(rootfs), arcname="rootfs.tar")


def ensure_base_image(
    platform: str = "linux/arm64",
    tag: str | None = None,
    *,
    packages: tuple[str, ...] = PACKAGES,
    mirror: str | None = None,
    cache: Path | None = None,
    force: bool = False,
    client: Any | None = None,
    on_log: Callable[[str], None] | None = None,
) -> BaseImage:
    """The local base image for ``platform``: found by its content key, else built.

    Args:
        platform: ``linux/arm64`` (the appliance; needs qemu binfmt on x86) or ``linux/amd64``.
        tag: image name (default :func:`default_tag`).
        packages: Debian packages in the rootfs.
        mirror: Debian mirror (default: the one this machine's apt uses).
        cache: where rootfs tarballs are kept (default :func:`cache_dir`).
        force: rebuild the rootfs and the image.
        client: a Docker client (default: connect from the environment).
        on_log: called with progress lines.

    Raises:
        UserError: unsupported platform, Docker unreachable, no bootstrapper, no emulator,
            a failed bootstrap or build.
    """
    from filelock import FileLock

    from panorama_cli.build import docker_client

    arch = arch_of(platform)
    tag = tag or default_tag(platform)
    mirror = mirror or detect_mirror()
    cache = cache or cache_dir()
    key = image_key(rootfs_key(arch, mirror, packages))
    say = on_log or (lambda line: None)
    own = client is None
    client = client or docker_client.connect()
    try:
        found = None if force else find_image(client, tag, key, arch)
        if found:
            return BaseImage(tag, found, cached=True)
        cache.mkdir(parents=True, exist_ok=True)
        with FileLock(str(cache / f"lock-{arch}")):
            found = None if force else find_image(client, tag, key, arch)
            if found:  # built by another process while this one waited
                return BaseImage(tag, found, cached=True)
            say(f"bootstrapping Debian {SUITE} {arch} from {mirror} (a few minutes, once)")
            rootfs = rootfs_tarball(arch, mirror, packages, cache, force=force)
            say(f"building {tag} from {rootfs.name}")
            return BaseImage(tag, _build(client, tag, arch, rootfs, key, mirror), cached=False)
    finally:
        if own:
            client.close()


def _build(client: Any, tag: str, arch: str, rootfs: Path, key: str, mirror: str) -> str:
    labels = {
        LABEL_KEY: key,
        "org.panorama-cli.suite": SUITE,
        "org.panorama-cli.mirror": mirror,
        "org.panorama-cli.stands-in-for": PANORAMA_BASE,
    }
    try:
        old_id = client.images.get(tag).id
    except Exception:
        old_id = None
    with tempfile.TemporaryDirectory(prefix="base-image-ctx-", dir=rootfs.parent) as tmp:
        context = Path(tmp) / "context.tar"
        _context(rootfs, labels, context)
        with open(context, "rb") as fh:
            stream = client.api.build(
                fileobj=fh,
                custom_context=True,
                tag=tag,
                pull=False,
                platform=f"linux/{arch}",
                rm=True,
                forcerm=True,
                decode=True,
            )
            for chunk in stream:
                if "error" in chunk:
                    detail = (chunk.get("errorDetail") or {}).get("message") or chunk["error"]
                    raise UserError(f"docker build of {tag} failed: {detail}")
    image = client.images.get(tag)
    if image.attrs.get("Architecture") != arch:
        raise UserError(f"{tag} was built as {image.attrs.get('Architecture')}, not {arch}")
    if old_id and old_id != image.id:
        with contextlib.suppress(Exception):
            client.images.remove(old_id)
    return str(image.id)


def dockerfile_default_base(dockerfile: Path) -> str | None:
    """The default of ``ARG BASE_IMAGE=...`` in ``dockerfile``, or None."""
    for line in dockerfile.read_text(encoding="utf-8", errors="replace").splitlines():
        words = line.strip().split(None, 1)
        if len(words) == 2 and words[0].upper() == "ARG" and words[1].startswith("BASE_IMAGE="):
            return words[1].partition("=")[2].strip().strip("\"'") or None
    return None


def with_local_base(
    dockerfile: Path,
    build_args: dict[str, str],
    platform: str,
    *,
    on_note: Callable[[str], None] | None = None,
    client: Any | None = None,
) -> dict[str, str]:
    """``build_args`` with ``BASE_IMAGE`` set to the local base image when the Dockerfile's
    default base is not in the local engine (and none was chosen); unchanged otherwise.

    Raises:
        UserError: as :func:`ensure_base_image` when the local base has to be built.
    """
    import docker

    from panorama_cli.build import docker_client

    default = None if "BASE_IMAGE" in build_args else dockerfile_default_base(dockerfile)
    if default is None:
        return build_args
    own = client is None
    client = client or docker_client.connect()
    try:
        try:
            client.images.get(default)
            return build_args
        except docker.errors.ImageNotFound:
            pass
        tag = default_tag(platform)
        if on_note:
            on_note(
                f"{default} is not in the local engine: building on {tag} (panorama-cli "
                "base-image); choose another with --base-image IMAGE or "
                "--build-arg BASE_IMAGE=IMAGE"
            )
        image = ensure_base_image(platform, tag, client=client, on_log=on_note)
        return {**build_args, "BASE_IMAGE": image.tag}
    finally:
        if own:
            client.close()
