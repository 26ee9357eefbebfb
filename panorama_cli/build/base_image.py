"""``panorama-cli base-image``: local stand-ins for the Panorama application base image.

No registry is needed: a Debian root filesystem (the flavor's suite and packages,
:mod:`.base_flavors`: ``debian`` is bookworm + python3 + numpy, ``panorama`` is the bullseye
stand-in for ``public.ecr.aws/panorama/panorama-application``) comes from the machine's own
Debian mirror through a well-kept bootstrapper — ``mmdebstrap`` (also unprivileged) or
``debootstrap`` (as root) — and the Docker engine builds ``FROM scratch`` + ``ADD rootfs.tar /``
+ the flavor's layout (``/opt/aws/panorama/logs``, ``/opt/aws/panorama/storage``,
``WORKDIR /panorama``, its files and links) for the platform.

Cached by content: the rootfs tarball is kept under the cache folder
(``$PANORAMA_CLI_CACHE`` or ``~/.cache/panorama-cli/base-images``) named by a key (sha256
of suite, arch, mirror, variant, packages, builder version), and the image carries the key
(with the digest of its layout) in a label, so a second call with the same inputs returns at
once.
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
from panorama_cli.build.base_flavors import (
    DEBIAN,
    Flavor,
    flavor_named,
    host_certificates,
    layout_digest,
    layout_tar,
)
from panorama_cli.build.debian_mirror import detect_mirror
from panorama_cli.errors import UserError

log = logging.getLogger(__name__)

SUITE = DEBIAN.suite
VARIANT = "minbase"
PACKAGES: tuple[str, ...] = DEBIAN.packages
REPOSITORY = "panorama-cli/base"
#: The Dockerfile default this image stands in for.
PANORAMA_BASE = "public.ecr.aws/panorama/panorama-application"
ROOTFS_BUILDER = "1"  # bump when the rootfs changes for the same inputs
LAYOUT_VERSION = "1"  # bump when the image on top of the rootfs changes
LABEL_KEY = "org.panorama-cli.base-key"
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


def default_tag(platform: str, flavor: Flavor | str = DEBIAN) -> str:
    """``panorama-cli/base:bookworm-<arch>`` (debian flavor), ``panorama-cli/base:panorama-<arch>``
    (panorama flavor).

    Raises:
        UserError: an unsupported platform or flavor.
    """
    chosen = flavor_named(flavor) if isinstance(flavor, str) else flavor
    return f"{REPOSITORY}:{chosen.tag_prefix}-{arch_of(platform)}"


def cache_dir() -> Path:
    """``$PANORAMA_CLI_CACHE`` or ``$XDG_CACHE_HOME/panorama-cli/base-images``."""
    if os.environ.get("PANORAMA_CLI_CACHE"):
        return Path(os.environ["PANORAMA_CLI_CACHE"])
    home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(home) / "panorama-cli" / "base-images"


def rootfs_key(
    arch: str, mirror: str, packages: tuple[str, ...] = PACKAGES, suite: str = SUITE
) -> str:
    """Content key of a root filesystem (also in the cached tarball's name)."""
    spec = {
        "suite": suite,
        "arch": arch,
        "mirror": mirror,
        "variant": VARIANT,
        "packages": sorted(packages),
        "builder": ROOTFS_BUILDER,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def image_key(rootfs: str, layout: str = "") -> str:
    """Content key of the image built on a root filesystem (stored in a label); ``layout`` is
    the digest of what the flavor adds (:func:`~.base_flavors.layout_digest`)."""
    extra = f":{layout}" if layout else ""
    return hashlib.sha256(f"{rootfs}:{LAYOUT_VERSION}{extra}".encode()).hexdigest()


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


def _bootstrap(
    arch: str, mirror: str, packages: tuple[str, ...], out: Path, work: Path, suite: str = SUITE
) -> None:
    """Write the rootfs tarball ``out`` with mmdebstrap, else debootstrap (root) + tar."""
    include = f"--include={','.join(packages)}"
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap:
        command = [mmdebstrap, f"--variant={VARIANT}", f"--arch={arch}", include]
        command += [suite, str(out), mirror]
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
    command = [debootstrap, f"--variant={VARIANT}", f"--arch={arch}", include, suite, str(root)]
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
    arch: str,
    mirror: str,
    packages: tuple[str, ...],
    cache: Path,
    *,
    force: bool = False,
    suite: str = SUITE,
) -> Path:
    """The cached rootfs tarball ``<cache>/rootfs-<suite>-<arch>-<key16>.tar``, built when
    missing (tarballs of other keys stay: another tag may use them).

    Raises:
        UserError: no bootstrapper, emulation missing for a foreign arch, bootstrap failed.
    """
    key = rootfs_key(arch, mirror, packages, suite)
    target = cache / f"rootfs-{suite}-{arch}-{key[:16]}.tar"
    if target.is_file() and not force:
        return target
    platforms.check_platform(f"linux/{arch}")
    work = Path(tempfile.mkdtemp(prefix=f"rootfs-{arch}-", dir=cache))
    try:
        partial = work / "rootfs.tar"
        _bootstrap(arch, mirror, packages, partial, work, suite)
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


def dockerfile_text(labels: dict[str, str], flavor: Flavor = DEBIAN) -> str:
    """The Dockerfile of a base image: :data:`DOCKERFILE` with the labels (one LABEL line)
    and the flavor's RUN lines after its layout is added."""
    label_text = " ".join(f"{json.dumps(k)}={json.dumps(v)}" for k, v in sorted(labels.items()))
    text = DOCKERFILE.format(labels=label_text)
    if flavor.run:
        anchor = "ADD layout.tar /\n"
        text = text.replace(anchor, anchor + "".join(f"{line}\n" for line in flavor.run), 1)
    return text


def _context(rootfs: Path, dockerfile: str, layout: bytes, dest: Path) -> None:
    with tarfile.open(dest, "w") as ctx:
        for name, data in (("Dockerfile", dockerfile.encode()), ("layout.tar", layout)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            ctx.addfile(info, io.BytesIO(data))
        ctx.add(str(rootfs), arcname="rootfs.tar")


def ensure_base_image(
    platform: str = "linux/arm64",
    tag: str | None = None,
    *,
    flavor: Flavor | str = DEBIAN,
    packages: tuple[str, ...] | None = None,
    mirror: str | None = None,
    cache: Path | None = None,
    force: bool = False,
    client: Any | None = None,
    on_log: Callable[[str], None] | None = None,
) -> BaseImage:
    """The local base image for ``platform``: found by its content key, else built.

    Args:
        platform: ``linux/arm64`` (the appliance; needs qemu binfmt on x86) or ``linux/amd64``.
        tag: image name (default :func:`default_tag` of the flavor).
        flavor: ``debian`` / ``panorama`` or a :class:`~.base_flavors.Flavor`
            (what the image holds).
        packages: Debian packages in the rootfs (default: the flavor's).
        mirror: Debian mirror (default: the one this machine's apt uses).
        cache: where rootfs tarballs are kept (default :func:`cache_dir`).
        force: rebuild the rootfs and the image.
        client: a Docker client (default: connect from the environment).
        on_log: called with progress lines.

    Raises:
        UserError: unsupported platform or flavor, Docker unreachable, no bootstrapper, no
            emulator, a failed bootstrap or build.
    """
    from filelock import FileLock

    from panorama_cli.build import docker_client

    chosen = flavor_named(flavor) if isinstance(flavor, str) else flavor
    packages = packages or chosen.packages
    arch = arch_of(platform)
    tag = tag or default_tag(platform, chosen)
    mirror = mirror or detect_mirror()
    cache = cache or cache_dir()
    certificates = host_certificates() if chosen.host_ca else []
    layout = layout_tar(chosen, certificates)
    key = image_key(rootfs_key(arch, mirror, packages, chosen.suite), layout_digest(chosen, layout))
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
            say(f"bootstrapping Debian {chosen.suite} {arch} from {mirror} (a few minutes, once)")
            rootfs = rootfs_tarball(arch, mirror, packages, cache, force=force, suite=chosen.suite)
            if certificates:
                say(
                    f"adding this machine's {len(certificates)} local CA certificate(s) from "
                    "/usr/local/share/ca-certificates (pip and apt in builds trust them)"
                )
            say(f"building {tag} from {rootfs.name}")
            labels = {
                LABEL_KEY: key,
                "org.panorama-cli.flavor": chosen.name,
                "org.panorama-cli.suite": chosen.suite,
                "org.panorama-cli.mirror": mirror,
                "org.panorama-cli.stands-in-for": PANORAMA_BASE,
            }
            dockerfile = dockerfile_text(labels, chosen)
            image_id = _build(client, tag, arch, rootfs, dockerfile, layout)
            return BaseImage(tag, image_id, cached=False)
    finally:
        if own:
            client.close()


def _build(client: Any, tag: str, arch: str, rootfs: Path, dockerfile: str, layout: bytes) -> str:
    try:
        old_id = client.images.get(tag).id
    except Exception:
        old_id = None
    with tempfile.TemporaryDirectory(prefix="base-image-ctx-", dir=rootfs.parent) as tmp:
        context = Path(tmp) / "context.tar"
        _context(rootfs, dockerfile, layout, context)
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
