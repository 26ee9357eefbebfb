"""Building images with the engine's builder: streamed build logs, failing steps, base images.

Builds never pull: base images must be in the local engine, and a missing one is reported with
the ``panorama-cli base-image`` command that makes it (:class:`BuildFailed`, a UserError).
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from panorama_cli.build import docker_client
from panorama_cli.build.docker_client import _api_error, _docker_host, _first_line, _is_local_engine
from panorama_cli.build.platforms import check_platform, target_machine
from panorama_cli.errors import UserError

if TYPE_CHECKING:
    import docker

log = logging.getLogger(__name__)

#: How many build log lines a failed build reports.
LOG_TAIL = 30

# colour codes the builder wraps around a step's stderr
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# builder bookkeeping lines, not output of the step itself
_BUILDER_NOISE = (" ---> ", "Removing intermediate container ", "Step ")


class BuildFailed(UserError):
    """A ``docker build`` step failed.

    Attributes:
        step: the failing step as the builder printed it, e.g. ``"Step 3/5 : RUN make"``
            (empty when the build failed before the first step).
        log_tail: the last build output lines (at most ``LOG_TAIL``).
    """

    def __init__(self, message: str, *, hint: str, step: str, log_tail: list[str]):
        super().__init__(message, hint=hint)
        self.step = step
        self.log_tail = log_tail


def build_image(
    context_dir: Path,
    *,
    tag: str,
    platform: str,
    build_args: dict[str, str] | None = None,
    on_log: Callable[[str], None] | None = None,
    dockerfile: str = "Dockerfile",
    client: docker.DockerClient | None = None,
    preflight: bool = True,
    timeout_s: float | None = None,
    source: Path | None = None,
) -> str:
    """Build an image with the engine's builder, never pulling (base images must be local).

    Args:
        context_dir: the build context folder.
        tag: name:tag for the image, e.g. ``"people_counter:1.0"``.
        platform: ``"linux/arm64"`` or ``"linux/amd64"``.
        build_args: Dockerfile ``ARG`` values.
        on_log: called with each line of build output (without the newline).
        dockerfile: the Dockerfile's path relative to ``context_dir``, or an absolute path
            outside it (a rewritten copy: sent in the build context, the folder untouched).
        client: a client from :func:`connect` (default: connect from the environment).
        preflight: run :func:`check_platform` first when the engine is on this machine.
        timeout_s: HTTP timeout for the whole build in seconds; None waits as long as
            the build takes (Ctrl-C stops it).
        source: the Dockerfile messages name when ``dockerfile`` is a rewritten copy.

    Returns:
        The image id, ``"sha256:<hex>"``.

    Raises:
        UserError: the context or Dockerfile is missing, the platform is unsupported or
            cannot be emulated, the engine rejects the request.
        BuildFailed (a UserError): a step failed; the message names the step and the
            builder's error, ``log_tail`` holds the last output lines.
    """
    import docker

    context_dir = Path(context_dir)
    if not context_dir.is_dir():
        raise UserError(
            f"build context {context_dir} is not a folder",
            hint="pass the package folder that holds the Dockerfile",
        )
    dockerfile_path = context_dir / dockerfile
    if not dockerfile_path.is_file():
        raise UserError(
            f"no Dockerfile at {dockerfile_path}",
            hint="create it (see the package template) or pass the right package folder",
        )
    target_machine(platform)
    own_client = client is None
    client = client or docker_client.connect()
    try:
        if preflight and _is_local_engine(client):
            check_platform(platform)

        tail: deque[str] = deque(maxlen=LOG_TAIL)
        step = ""
        image_id = ""
        pending = ""

        def emit(line: str) -> None:
            nonlocal step
            line = _ANSI.sub("", line).rstrip("\r")
            if line.startswith("Step "):
                step = line
            tail.append(line)
            if on_log is not None:
                on_log(line)

        try:
            stream = client.api.build(
                path=str(context_dir),
                tag=tag,
                dockerfile=dockerfile,
                buildargs=dict(build_args or {}),
                decode=True,
                pull=False,
                rm=True,
                forcerm=True,
                platform=platform,
                timeout=timeout_s,
            )
            for item in stream:
                if "stream" in item:
                    pending += item["stream"]
                    *lines, pending = pending.split("\n")
                    for line in lines:
                        emit(line)
                elif "status" in item:
                    emit(
                        " ".join(str(item[k]) for k in ("id", "status", "progress") if item.get(k))
                    )
                if "aux" in item and isinstance(item["aux"], dict) and "ID" in item["aux"]:
                    image_id = item["aux"]["ID"]
                if "error" in item or "errorDetail" in item:
                    if pending:
                        emit(pending)
                        pending = ""
                    detail = item.get("errorDetail") or {}
                    error = _first_line(detail.get("message") or item.get("error") or "unknown")
                    raise _build_failure(
                        error, step, list(tail), dockerfile_path, dict(build_args or {}), source
                    )
            if pending:
                emit(pending)
        except docker.errors.APIError as exc:
            raise UserError(
                f"docker build of {context_dir} was refused: {_api_error(exc)}",
                hint=f"check {source or dockerfile_path}, the tag {tag!r} and the platform "
                f"{platform!r}",
            ) from exc
        except docker.errors.DockerException as exc:
            raise UserError(
                f"docker build of {context_dir} failed: {_first_line(str(exc))}",
                hint=f"check {source or dockerfile_path} and that the engine at "
                f"DOCKER_HOST={_docker_host()} is running",
            ) from exc

        if not image_id:
            for line in reversed(tail):
                if line.startswith("Successfully built "):
                    image_id = line.split()[-1]
                    break
            try:
                image_id = client.images.get(image_id or tag).id
            except docker.errors.ImageNotFound as exc:
                raise UserError(
                    f"docker build of {context_dir} ended without producing an image",
                    hint="run it again; if it persists, build with docker build to see why",
                ) from exc
        return image_id
    finally:
        if own_client:
            client.close()


def _from_image(written: str, dockerfile_path: Path, build_args: dict[str, str]) -> str:
    """The image a failing ``FROM <written>`` step stood for (ARGs put in)."""
    if "$" not in written:
        return written
    from panorama_cli.build.panorama_from import from_lines, read_dockerfile

    try:
        froms = from_lines(read_dockerfile(dockerfile_path), build_args)
    except UserError:
        froms = []
    return next((f.image for f in froms if f.written == written and f.image), "the base image")


def _build_failure(
    error: str,
    step: str,
    tail: list[str],
    dockerfile_path: Path,
    build_args: dict[str, str],
    source: Path | None = None,
) -> BuildFailed:
    from_step = step.split(" : ", 1)[-1].strip().upper().startswith("FROM ")
    if from_step or "pull access denied" in error or "manifest unknown" in error:
        words = [w for w in step.split(" : ", 1)[-1].strip()[5:].split() if not w.startswith("--")]
        base = "the base image"
        if from_step and words:
            base = _from_image(words[0], dockerfile_path, build_args)
        return BuildFailed(
            f"docker build failed at {step or 'FROM'}: {error}",
            hint=f"{base} is not in the local engine for this platform (builds use local "
            "images only): make one with `panorama-cli base-image --platform <platform>` "
            "(add --flavor panorama for the stand-in of the Panorama application image), "
            "or pass --base-image IMAGE (--build-arg BASE_IMAGE=IMAGE) naming a local image",
            step=step,
            log_tail=tail,
        )
    last = [line for line in tail if line.strip() and not line.startswith(_BUILDER_NOISE)][-3:]
    shown = " | ".join(_first_line(line, 160) for line in last)
    return BuildFailed(
        f"docker build failed at {step or 'the first step'}: {error}",
        hint=f"fix that step in {source or dockerfile_path}"
        + (f"; its last output: {shown}" if shown else ""),
        step=step,
        log_tail=tail,
    )
