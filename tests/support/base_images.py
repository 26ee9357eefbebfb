"""Local Debian base images for the Docker tests, built without pulling anything.

No container registry is reachable from CI (or from the dev machines), so the images the
tests run on are made here: ``debootstrap`` (minbase + python3) writes a root filesystem,
it is tarred, and the Docker engine builds ``FROM scratch`` + ``ADD rootfs.tar /`` with
``platform=linux/<arch>`` (``docker import --platform`` mislabels arm64 on Engine 20.10).

Everything is cached by content: a key (sha256 of suite, arch, mirror, packages, variant
and builder version) is stored as an image label, and the rootfs tarball is kept under
``/var/cache/panorama-cli-ci/`` (``PANORAMA_CLI_CI_CACHE`` overrides) with the key in its
name. With an empty cache everything is rebuilt; with a warm one nothing is.

Use it from Python::

    from tests.support.base_images import ensure_base_image
    image = ensure_base_image(docker_client, "arm64")

or from a shell (CI does this before pytest)::

    python -m tests.support.base_images --arch all
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUITE = "bookworm"
VARIANT = "minbase"
PACKAGES: tuple[str, ...] = ("python3",)
# Bump when anything about how the image is made changes (Dockerfile, tar options, ...).
BUILDER_VERSION = "1"
DEFAULT_MIRROR = "http://deb.debian.org/debian"

IMAGE_REPO = "panorama-cli-test/base"
BASE_IMAGE_AMD64 = f"{IMAGE_REPO}:{SUITE}-amd64"
BASE_IMAGE_ARM64 = f"{IMAGE_REPO}:{SUITE}-arm64"
BASE_IMAGES = {"amd64": BASE_IMAGE_AMD64, "arm64": BASE_IMAGE_ARM64}
ARCHES: tuple[str, ...] = ("amd64", "arm64")

LABEL_KEY = "org.panorama-cli.test.base-key"
LABEL_PREFIX = "org.panorama-cli.test."

DEFAULT_CACHE_DIR = Path("/var/cache/panorama-cli-ci")
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")

# {labels} becomes one LABEL instruction (one build step, not one per label).
DOCKERFILE = """\
FROM scratch
ADD rootfs.tar /
ENV LANG=C.UTF-8
LABEL {labels}
CMD ["python3"]
"""

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

# debootstrap prints four lines per package; only stage-level lines go to the CI log.
_NOISY_PREFIXES = (
    "I: Retrieving ",
    "I: Validating ",
    "I: Extracting ",
    "I: Unpacking ",
    "I: Configuring ",
)


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


def _deb822_stanzas(text: str) -> Iterator[dict[str, str]]:
    stanza: dict[str, str] = {}
    last = None
    for raw in text.splitlines() + [""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if stanza:
                yield stanza
            stanza, last = {}, None
            continue
        if raw[0] in " \t" and last:
            stanza[last] += " " + raw.strip()
            continue
        key, sep, value = raw.partition(":")
        if sep:
            last = key.strip().lower()
            stanza[last] = value.strip()


def _mirrors_from_sources(sources_dir: Path, sources_list: Path, suite: str) -> Iterator[str]:
    files = [sources_list] if sources_list.is_file() else []
    if sources_dir.is_dir():
        files += sorted(p for p in sources_dir.iterdir() if p.suffix in (".list", ".sources"))
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if path.suffix == ".sources":
            for st in _deb822_stanzas(text):
                if st.get("enabled", "yes").lower() == "no":
                    continue
                if "deb" not in st.get("types", "").split():
                    continue
                if suite not in st.get("suites", "").split():
                    continue
                if "main" not in st.get("components", "").split():
                    continue
                yield from st.get("uris", "").split()
        else:
            for line in text.splitlines():
                words = line.split("#", 1)[0].split()
                if len(words) >= 4 and words[0] == "deb":
                    rest = words[1:]
                    if rest[0].startswith("["):  # options: deb [arch=amd64 ...] uri suite comps
                        while rest and not rest[0].endswith("]"):
                            rest = rest[1:]
                        rest = rest[1:]
                    if len(rest) >= 3 and rest[1] == suite and "main" in rest[2:]:
                        yield rest[0]


def detect_mirror(suite: str = SUITE) -> str:
    """The Debian mirror the machine's apt uses for ``suite`` (env PANORAMA_CI_MIRROR wins)."""
    override = os.environ.get("PANORAMA_CI_MIRROR")
    if override:
        return override.rstrip("/")
    for uri in _mirrors_from_sources(
        Path("/etc/apt/sources.list.d"), Path("/etc/apt/sources.list"), suite
    ):
        if uri.startswith(("http://", "https://")):
            return uri.rstrip("/")
    return DEFAULT_MIRROR


def cache_key(arch: str, mirror: str | None = None) -> str:
    """Content key for one base image; also names the cached rootfs tarball."""
    spec = {
        "suite": SUITE,
        "arch": _check_arch(arch),
        "mirror": mirror if mirror is not None else detect_mirror(),
        "variant": VARIANT,
        "packages": sorted(PACKAGES),
        "builder": BUILDER_VERSION,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


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
    import docker.errors

    name = BASE_IMAGES[_check_arch(arch)]
    key = key or cache_key(arch)
    try:
        image = client.images.get(name)
    except docker.errors.ImageNotFound:
        return None
    labels = (image.attrs.get("Config") or {}).get("Labels") or {}
    if labels.get(LABEL_KEY) != key or image.attrs.get("Architecture") != arch:
        return None
    return name


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve()).rstrip("/") + "/"
    mounts = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            point = line.split()[4].encode().decode("unicode_escape")
            if point.startswith(prefix) or point == prefix.rstrip("/"):
                mounts.append(point)
    return sorted(mounts, key=len, reverse=True)


def _safe_rmtree(root: Path) -> None:
    """Remove a chroot, never following a leftover /proc or /dev mount into the host."""
    if not root.exists():
        return
    for point in _mounts_under(root):
        subprocess.run(["umount", "-l", point], check=False)
    left = _mounts_under(root)
    if left:
        raise BaseImageError(f"refusing to delete {root}: still mounted: {', '.join(left)}")
    shutil.rmtree(root, ignore_errors=True)


def _run_streaming(argv: list[str], tag: str, log_path: Path) -> None:
    """Run argv, keeping a full log file and printing only the interesting lines."""
    tail: deque[str] = deque(maxlen=40)
    skipped = 0
    with open(log_path, "w", encoding="utf-8") as log_fh:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log_fh.write(line)
            line = line.rstrip()
            tail.append(line)
            if line.startswith(_NOISY_PREFIXES):
                skipped += 1
                continue
            print(f"  [{tag}] {line}", flush=True)
        rc = proc.wait()
    if skipped:
        print(f"  [{tag}] ({skipped} per-package lines in {log_path})", flush=True)
    if rc != 0:
        print(f"  [{tag}] --- last lines ---", flush=True)
        for line in tail:
            print(f"  [{tag}] {line}", flush=True)
        raise BaseImageError(f"{argv[0]} failed with exit code {rc}; full log: {log_path}")


def build_rootfs_tar(arch: str, mirror: str, key: str, *, force: bool = False) -> Path:
    """Debootstrap + tar a root filesystem, cached as <cache>/rootfs-<suite>-<arch>-<key>.tar."""
    cdir = cache_dir()
    tar_path = cdir / f"rootfs-{SUITE}-{arch}-{key[:16]}.tar"
    if tar_path.is_file() and not force:
        size = tar_path.stat().st_size / 1e6
        log(f"rootfs {arch}: cached {tar_path} ({size:.0f} MB)")
        return tar_path
    if os.geteuid() != 0:
        raise BaseImageError("building a base image needs root (debootstrap); run as root")
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise BaseImageError("debootstrap is not installed (apt-get install debootstrap)")
    problem = binfmt_problem(arch)
    if problem:
        raise BaseImageError(f"cannot debootstrap {arch} on a {host_arch()} host: {problem}")

    work = Path(tempfile.mkdtemp(prefix=f"rootfs-{arch}-", dir=cdir))
    root = work / "root"
    try:
        argv = [
            debootstrap,
            f"--variant={VARIANT}",
            f"--arch={arch}",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(root),
            mirror,
        ]
        with timed(f"debootstrap {arch} ({mirror})"):
            _run_streaming(argv, f"debootstrap {arch}", cdir / f"debootstrap-{arch}.log")
        leftover = _mounts_under(root)
        if leftover:
            raise BaseImageError(f"debootstrap left mounts behind: {', '.join(leftover)}")
        partial = work / "rootfs.tar"
        with timed(f"tar rootfs {arch}"):
            subprocess.run(
                [
                    "tar",
                    "--create",
                    "--file",
                    str(partial),
                    "--numeric-owner",
                    "--directory",
                    str(root),
                    "--exclude=./dev/*",
                    "--exclude=./proc/*",
                    "--exclude=./sys/*",
                    "--exclude=./tmp/*",
                    "--exclude=./var/cache/apt/archives/*.deb",
                    "--exclude=./debootstrap",
                    ".",
                ],
                check=True,
                stdin=subprocess.DEVNULL,
            )
        os.replace(partial, tar_path)
        log(f"rootfs {arch}: {tar_path} ({tar_path.stat().st_size / 1e6:.0f} MB)")
    finally:
        _safe_rmtree(work)
    # Tarballs of superseded keys are dead weight.
    for old in cdir.glob(f"rootfs-{SUITE}-{arch}-*.tar"):
        if old != tar_path:
            with contextlib.suppress(OSError):
                old.unlink()
    return tar_path


def render_dockerfile(labels: dict[str, str]) -> str:
    return DOCKERFILE.format(
        labels=" ".join(f"{json.dumps(k)}={json.dumps(v)}" for k, v in sorted(labels.items()))
    )


def _write_context(dockerfile: str, rootfs_tar: Path, dest: Path) -> None:
    with tarfile.open(dest, "w") as ctx:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        info.mtime = 0
        ctx.addfile(info, io.BytesIO(data))
        ctx.add(str(rootfs_tar), arcname="rootfs.tar")


def build_image(client: Any, arch: str, rootfs_tar: Path, key: str, mirror: str) -> str:
    """docker build FROM scratch + ADD rootfs.tar, labelled with the content key."""
    name = BASE_IMAGES[arch]
    labels = {
        LABEL_KEY: key,
        LABEL_PREFIX + "suite": SUITE,
        LABEL_PREFIX + "arch": arch,
        LABEL_PREFIX + "mirror": mirror,
        LABEL_PREFIX + "builder-version": BUILDER_VERSION,
    }
    try:
        old_id = client.images.get(name).id
    except Exception:
        old_id = None
    with tempfile.TemporaryDirectory(prefix="base-image-ctx-", dir=cache_dir()) as tmp:
        ctx_path = Path(tmp) / "context.tar"
        _write_context(render_dockerfile(labels), rootfs_tar, ctx_path)
        image_id = None
        with open(ctx_path, "rb") as ctx:
            stream = client.api.build(
                fileobj=ctx,
                custom_context=True,
                tag=name,
                pull=False,
                platform=f"linux/{arch}",
                rm=True,
                forcerm=True,
                decode=True,
                timeout=1800,
            )
            for chunk in stream:
                if "error" in chunk:
                    detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                    raise BaseImageError(f"docker build of {name} failed: {detail}")
                text = chunk.get("stream", "").rstrip()
                if text:
                    for line in text.splitlines():
                        print(f"  [build {arch}] {line}", flush=True)
                aux = chunk.get("aux") or {}
                if "ID" in aux:
                    image_id = aux["ID"]
    image = client.images.get(name)
    if image_id and image.id != image_id:
        raise BaseImageError(f"{name} does not point at the image just built ({image_id})")
    if image.attrs.get("Architecture") != arch:
        raise BaseImageError(
            f"{name} is labelled {image.attrs.get('Architecture')!r}, not {arch!r}; "
            "the engine ignored platform="
        )
    if old_id and old_id != image.id:
        with contextlib.suppress(Exception):
            client.images.remove(old_id, noprune=False)
    return name


def ensure_base_image(client: Any, arch: str, *, force: bool = False) -> str:
    """Return the base image name for ``arch``, building it (and its rootfs) if needed."""
    _check_arch(arch)
    mirror = detect_mirror()
    key = cache_key(arch, mirror)
    if not force:
        found = find_base_image(client, arch, key)
        if found:
            log(f"{found}: up to date (key {key[:12]})")
            return found
    cdir = cache_dir()
    try:
        cdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BaseImageError(
            f"cannot create cache dir {cdir}: {exc} (set PANORAMA_CLI_CI_CACHE)"
        ) from exc
    with _locked(cdir / f"lock-{arch}"):
        # Another process may have built it while we waited for the lock.
        if not force:
            found = find_base_image(client, arch, key)
            if found:
                log(f"{found}: up to date (key {key[:12]}, built concurrently)")
                return found
        start = time.monotonic()
        log(f"{BASE_IMAGES[arch]}: building (key {key[:12]}, mirror {mirror})")
        rootfs = build_rootfs_tar(arch, mirror, key, force=force)
        with timed(f"docker build {BASE_IMAGES[arch]}"):
            name = build_image(client, arch, rootfs, key, mirror)
        log(f"{name}: ready in {time.monotonic() - start:.1f} s")
        return name


def verify_image(client: Any, arch: str) -> str:
    """Run python3 in the image and check it reports the expected machine."""
    expected = {"amd64": "x86_64", "arm64": "aarch64"}[arch]
    out = client.containers.run(
        BASE_IMAGES[arch],
        ["python3", "-c", "import platform; print(platform.machine())"],
        platform=f"linux/{arch}",
        remove=True,
        network_disabled=True,
    )
    machine = out.decode().strip()
    if machine != expected:
        raise BaseImageError(f"{BASE_IMAGES[arch]} runs as {machine!r}, expected {expected!r}")
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
