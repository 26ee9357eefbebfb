"""Can this host build and run images of a platform? The binfmt_misc pre-flight.

Building ``linux/arm64`` (the Panorama Appliance) on an x86_64 host needs a qemu user-mode
emulator registered with binfmt_misc with the F (fix binary) flag, so that it also works
inside containers. :func:`check_platform` finds such a handler or raises the exact fix.
"""

from __future__ import annotations

import logging
import platform as _host_platform
from pathlib import Path

from panorama_cli.errors import UserError

log = logging.getLogger(__name__)

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")

# platform string -> kernel machine name (uname -m)
_PLATFORMS = {
    "linux/amd64": "x86_64",
    "linux/arm64": "aarch64",
    "linux/arm64/v8": "aarch64",
}
_MACHINE_ALIASES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
# binfmt handler names used by qemu-user-static/binfmt-support, tonistiigi/binfmt, distros
_HANDLER_NAMES = {
    "aarch64": ("qemu-aarch64", "qemu-aarch64-static", "qemu-arm64", "aarch64", "arm64"),
    "x86_64": ("qemu-x86_64", "qemu-x86_64-static", "qemu-amd64", "x86_64", "amd64"),
}
# ELF header magic of 64-bit little-endian executables for the machine (e_machine at byte 18)
_ELF_MAGIC = {
    "aarch64": "7f454c460201010000000000000000000200b700",
    "x86_64": "7f454c4602010100000000000000000002003e00",
}
_DOCKER_ARCH = {"aarch64": "arm64", "x86_64": "amd64"}


def target_machine(platform: str) -> str:
    machine = _PLATFORMS.get(platform.strip().lower())
    if machine is None:
        raise UserError(
            f"unsupported platform {platform!r}",
            hint="use linux/arm64 (Panorama appliances) or linux/amd64",
        )
    return machine


def _read_handler(path: Path) -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return info
    for line in text.splitlines():
        line = line.strip()
        if line in ("enabled", "disabled"):
            info["state"] = line
        elif " " in line:
            key, _, value = line.partition(" ")
            info[key.rstrip(":")] = value.strip()
    return info


def check_platform(
    platform: str,
    *,
    binfmt_dir: Path | None = None,
    host_machine: str | None = None,
) -> None:
    """Pre-flight for building/running images of ``platform`` on this host.

    A platform the host runs natively needs nothing. Any other one needs an enabled
    binfmt_misc handler for its architecture (e.g. ``qemu-aarch64`` for ``linux/arm64`` on
    x86_64) registered with the ``F`` flag, so that containers can use the emulator.

    Args:
        platform: ``"linux/arm64"`` (also ``"linux/arm64/v8"``) or ``"linux/amd64"``.
        binfmt_dir: where binfmt_misc is mounted (default: ``BINFMT_DIR``, looked up at call
            time; injectable for tests).
        host_machine: the host's ``uname -m`` (default: this machine's).

    Raises:
        UserError: the platform string is not supported, or no usable emulator is
            registered; the hint gives the exact Debian/Ubuntu commands to fix it.
    """
    target = target_machine(platform)
    host_raw = host_machine or _host_platform.machine()
    host = _MACHINE_ALIASES.get(host_raw.lower(), host_raw.lower())
    if host == target:
        return

    arch = _DOCKER_ARCH[target]
    what = f"cannot build or run {platform} images on this {host_raw} host"
    install = "sudo apt-get install qemu-user-static binfmt-support"
    alternative = f"docker run --privileged --rm tonistiigi/binfmt --install {arch}"
    binfmt_dir = Path(binfmt_dir if binfmt_dir is not None else BINFMT_DIR)

    try:
        entries = sorted(p for p in binfmt_dir.iterdir() if p.is_file())
    except OSError:
        entries = []
    if not entries:
        raise UserError(
            f"{what}: binfmt_misc is not mounted at {binfmt_dir}",
            hint=f"run: sudo mount -t binfmt_misc binfmt_misc {binfmt_dir} && {install} "
            f"(Debian/Ubuntu); or instead: {alternative}",
        )

    status = binfmt_dir / "status"
    if status.is_file() and _read_handler(status).get("state") == "disabled":
        raise UserError(
            f"{what}: binfmt_misc is disabled ({status} says 'disabled')",
            hint=f"run: echo 1 | sudo tee {status}",
        )

    by_name = {p.name: p for p in entries}
    candidates = [by_name[n] for n in _HANDLER_NAMES[target] if n in by_name]
    magic = _ELF_MAGIC[target]
    for p in entries:
        if p in candidates or p.name in ("register", "status"):
            continue
        if _read_handler(p).get("magic", "").lower().startswith(magic):
            candidates.append(p)

    problems = []
    for p in candidates:
        info = _read_handler(p)
        if info.get("state") != "enabled":
            problems.append(
                UserError(
                    f"{what}: the emulator handler {p} is disabled",
                    hint=f"run: sudo update-binfmts --enable {p.name} (or: echo 1 | sudo tee {p})",
                )
            )
        elif not info.get("interpreter"):
            problems.append(
                UserError(
                    f"{what}: the emulator handler {p} names no interpreter",
                    hint=f"run: {install} (Debian/Ubuntu); or instead: {alternative}",
                )
            )
        elif "F" not in info.get("flags", ""):
            problems.append(
                UserError(
                    f"{what}: the emulator handler {p} lacks the F flag, so containers "
                    f"cannot use {info['interpreter']}",
                    hint=f"run: {install} (its static qemu registers with F) ; or instead: "
                    f"{alternative}",
                )
            )
        else:
            return
    if problems:
        raise problems[0]
    raise UserError(
        f"{what}: no emulator for {target} is registered in {binfmt_dir}",
        hint=f"run: {install} (Debian/Ubuntu); or instead: {alternative}",
    )


# --------------------------------------------------------------------------- building
