"""Dockerfiles FROM a Panorama application image, built on a local stand-in, never pulled.

Official Panorama samples start with ``FROM public.ecr.aws/panorama/panorama-application``
(any tag or digest, e.g. ``:latest``, ``:1.2.0-py3.8``, or a path below it), literally or
through ``ARG BASE_IMAGE=<that image>`` + ``FROM ${BASE_IMAGE}``. No registry is reachable from
builds, so build-container builds a rewritten copy of the Dockerfile (kept in a temporary
folder and sent as the build context's Dockerfile; the package's own file is never written)
whose Panorama FROM lines name:

* ``--base-image IMAGE`` when given;
* else nothing changes for a Panorama image that is already in the local engine for the
  platform (pulled or tagged there by someone);
* else the local stand-in ``panorama-cli/base:panorama-<arch>`` that ``panorama-cli base-image
  --flavor panorama`` makes (:mod:`.base_flavors`); when it is missing, the build stops before
  it starts with one line naming that command.

FROM lines are read with dockerfile-parse (continuations, ``--platform=`` flags, ``AS`` stage
names, ARG defaults and ``--build-arg`` values); a FROM that is not a Panorama image (another
image, ``scratch``, an earlier stage) is built as written.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panorama_cli.errors import UserError

log = logging.getLogger(__name__)

#: The repository official samples build FROM.
PANORAMA_REPOSITORY = "public.ecr.aws/panorama/panorama-application"
#: Largest Dockerfile read (bytes).
MAX_DOCKERFILE_BYTES = 1 << 20
_PANORAMA_RE = re.compile(
    re.escape(PANORAMA_REPOSITORY)
    + r"(?:/[a-z0-9._/-]+)?"  # a path below it, e.g. .../python3.8/aarch64
    + r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"  # :tag
    + r"(?:@sha256:[0-9a-f]{64})?"  # @digest
)


def is_panorama_image(reference: str) -> bool:
    """True when ``reference`` names a Panorama application image (any tag, digest or path
    below :data:`PANORAMA_REPOSITORY`)."""
    return _PANORAMA_RE.fullmatch(reference.strip()) is not None


@dataclass(frozen=True)
class FromLine:
    """One FROM instruction of a Dockerfile.

    Attributes:
        line: its first line, 1-based.
        end: its last line, 1-based (a FROM continued with ``\\``).
        written: the image as written, e.g. ``${BASE_IMAGE}``.
        image: the image with ARG defaults and build arguments put in ("" when unset).
        stage: the ``AS`` name, or None.
        flags: the ``--platform=...`` flag as written, or None.
    """

    line: int
    end: int
    written: str
    image: str
    stage: str | None
    flags: str | None


def read_dockerfile(path: Path) -> str:
    """The text of the Dockerfile at ``path``: a regular file (a link is not followed) of at
    most :data:`MAX_DOCKERFILE_BYTES`, decoded as UTF-8 (bad bytes replaced).

    Raises:
        UserError: missing, a link or not a regular file, too large.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise UserError(
            f"{path}: cannot read the Dockerfile ({exc.strerror or exc})",
            hint="the Dockerfile must be a regular file in the package folder (not a link)",
        ) from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise UserError(f"{path}: the Dockerfile is not a regular file")
        data = fh.read(MAX_DOCKERFILE_BYTES + 1)
    if len(data) > MAX_DOCKERFILE_BYTES:
        raise UserError(f"{path}: the Dockerfile is larger than {MAX_DOCKERFILE_BYTES} bytes")
    return data.decode("utf-8", errors="replace")


def from_lines(text: str, build_args: dict[str, str] | None = None) -> list[FromLine]:
    """The FROM instructions of Dockerfile ``text``, images resolved as the builder does
    (ARGs before the first FROM, overridden by ``build_args``)."""
    from dockerfile_parse import DockerfileParser
    from dockerfile_parse.parser import image_from

    parser = DockerfileParser(fileobj=io.BytesIO(), build_args=dict(build_args or {}))
    parser.content = text
    images = iter(parser.parent_images)  # one per FROM that image_from can read
    found = []
    for instruction in parser.structure:
        if instruction["instruction"] != "FROM":
            continue
        written, stage = image_from(instruction["value"])
        if written is None:
            continue
        flags = re.match(r"\s*(--platform=\S+)", instruction["value"])
        found.append(
            FromLine(
                line=instruction["startline"] + 1,
                end=instruction["endline"] + 1,
                written=written,
                image=next(images, "") or "",
                stage=stage,
                flags=flags.group(1) if flags else None,
            )
        )
    return found


def rewrite(text: str, replace: list[FromLine], image: str) -> str:
    """``text`` with each FROM in ``replace`` naming ``image`` (its ``--platform`` flag and
    ``AS`` name kept); every other line as it was."""
    lines = text.splitlines(keepends=True)
    for item in sorted(replace, key=lambda f: f.line, reverse=True):
        words = ["FROM", *([item.flags] if item.flags else []), image]
        words += ["AS", item.stage] if item.stage else []
        lines[item.line - 1 : item.end] = [" ".join(words) + "\n"]
    return "".join(lines)


def _in_engine(client: Any, reference: str, arch: str) -> bool:
    """True when the engine has ``reference`` for ``arch``."""
    import docker

    try:
        image = client.images.get(reference)
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.APIError as exc:
        raise UserError(f"the Docker engine cannot look up image {reference}: {exc}") from None
    return bool(image.attrs.get("Architecture") == arch)


def _where(items: list[FromLine]) -> str:
    lines = ", ".join(str(f.line) for f in items)
    return f"Dockerfile line{'s' if len(items) > 1 else ''} {lines}"


@contextlib.contextmanager
def panorama_base(
    dockerfile: Path,
    build_args: dict[str, str],
    platform: str,
    *,
    base_image: str | None = None,
    client: Any | None = None,
    on_note: Callable[[str], None] | None = None,
) -> Iterator[Path | None]:
    """The Dockerfile to build ``dockerfile`` with (see the module docstring): a rewritten
    copy, alive while the context is open, or None when it builds as written.

    Args:
        dockerfile: the package's Dockerfile (read, never written).
        build_args: the build's ``--build-arg`` values (``BASE_IMAGE`` included).
        platform: ``linux/arm64`` or ``linux/amd64``: which stand-in.
        base_image: ``--base-image IMAGE``: what Panorama FROM lines name instead.
        client: a Docker client (default: connect from the environment).
        on_note: receives the one line naming the substitution.

    Raises:
        UserError: the Dockerfile cannot be read; the stand-in is not in the engine (the
            line names ``panorama-cli base-image --flavor panorama --platform ...``).
    """
    from panorama_cli.build import base_image as bases

    text = read_dockerfile(dockerfile)
    panorama = [f for f in from_lines(text, build_args) if is_panorama_image(f.image)]
    if not panorama:
        yield None
        return
    arch = bases.arch_of(platform)
    if base_image and not is_panorama_image(base_image):
        substitute, what = base_image, "--base-image"
    else:
        from panorama_cli.build import docker_client

        own = client is None
        client = client or docker_client.connect()
        try:
            panorama = [f for f in panorama if not _in_engine(client, f.image, arch)]
            substitute = bases.default_tag(platform, "panorama")
            if panorama and not _in_engine(client, substitute, arch):
                first = panorama[0]
                raise UserError(
                    f"{first.image} ({_where(panorama)}) is not in the local engine and builds "
                    "never pull: make its local stand-in with `panorama-cli base-image --flavor "
                    f"panorama --platform {platform}` (once, a few minutes)",
                    hint="or pass --base-image IMAGE naming a local image",
                )
        finally:
            if own:
                client.close()
        what = "the local stand-in made by `panorama-cli base-image --flavor panorama`"
    if not panorama:
        log.debug("the Panorama base images of %s are in the engine: built as written", dockerfile)
        yield None
        return
    images = sorted({f.image for f in panorama})
    if on_note:
        on_note(
            f"FROM {', '.join(images)} ({_where(panorama)}) builds on {substitute}, {what}; "
            f"{dockerfile.name} itself is unchanged"
            + ("" if base_image else " (--base-image IMAGE chooses another)")
        )
    with tempfile.TemporaryDirectory(prefix="panorama-cli-dockerfile-") as folder:
        copy = Path(folder) / "Dockerfile"
        copy.write_text(rewrite(text, panorama, substitute), encoding="utf-8")
        yield copy
