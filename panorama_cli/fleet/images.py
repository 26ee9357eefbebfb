"""The images a fleet bundle runs: the appliance (serve) image and one image per node.

* **serve**: FROM the runtime image (:mod:`.runtime_image`) with the project inside at
  ``/opt/panorama-cli/project/<project folder>``: graphs, overrides, the packages' manifests,
  descriptors and src, the model assets and ``--model`` files — every file of the project
  except the container filesystem assets (the nodes' own images carry those) and run/serve
  output folders. ``ENTRYPOINT panorama-cli``, ``WORKDIR`` the project.
* **node**: FROM the node's image from build-container (the one its container asset was
  exported from, as ``run --in-container`` finds it) plus the simulated ``panoramasdk`` at
  :data:`~panorama_cli.localrun.apps.appliance.SDK_TARGET`: nothing else changes in it.

Both are tagged by content (``panorama-cli/<app>-serve:<12 hex>``,
``panorama-cli/<app>-<node>:<12 hex>``): an unchanged project finds its tags and builds
nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panorama_cli.fleet.model import LABEL_APP, LABEL_ROLE, LABEL_VERSION, PROJECT_DIR

log = logging.getLogger(__name__)

#: Folders of a project that never go into an image (run output, serve state, VCS, caches).
SKIP_DIRS = frozenset({".panorama-run", ".panorama-serve", ".git", "__pycache__", ".venv"})
SERVE_DOCKERFILE = """\
ARG RUNTIME
FROM $RUNTIME
COPY project {project}
WORKDIR {project}
LABEL {labels}
"""
NODE_DOCKERFILE = """\
ARG APP
FROM $APP
COPY sdk {sdk}
LABEL {labels}
"""


@dataclass(frozen=True)
class ProjectFile:
    """One file of the serve image: path inside the project folder of the image, source."""

    path: str
    source: Path


def container_assets(project: Any) -> set[str]:
    """File names (in assets/) of every container implementation's filesystem asset."""
    found: set[str] = set()
    for folder in project.package_folders():
        package = project.load_package(folder)
        for asset in package.assets():
            for impl in asset.get("implementations", []) or []:
                if isinstance(impl, dict) and impl.get("type") == "container":
                    uri = impl.get("assetUri")
                    if isinstance(uri, str) and uri:
                        found.add(uri)
    return found


def _walk(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.iterdir()):
        if path.name in SKIP_DIRS or path.is_symlink():
            continue
        if path.is_dir():
            yield from _walk(path)
        elif path.is_file():
            yield path


def project_files(project: Any, extra: Mapping[str, Path] | None = None) -> list[ProjectFile]:
    """What the serve image holds of ``project`` (see the module docstring), plus ``extra``
    (path in the image's project folder -> file: overrides, ``--model`` files)."""
    skip = {project.assets_dir / name for name in container_assets(project)}
    files = [
        ProjectFile(path.relative_to(project.root).as_posix(), path)
        for path in _walk(project.root)
        if path not in skip
    ]
    for path, source in sorted((extra or {}).items()):
        files.append(ProjectFile(path, Path(source)))
    return files


def _digest(parts: list[str], files: list[tuple[str, Path]]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() + b"\0")
    for name, path in files:
        digest.update(name.encode() + b"\0")
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


def _labels(app: str, version: str, role: str) -> str:
    return " ".join(
        f"{key}={json.dumps(value)}"
        for key, value in ((LABEL_APP, app), (LABEL_VERSION, version), (LABEL_ROLE, role))
    )


def _build(
    client: Any, tag: str, dockerfile: str, args: dict[str, str], platform: str,
    fill: Callable[[Path], None],
) -> None:  # fmt: skip
    from panorama_cli.build.docker_build import build_image

    with tempfile.TemporaryDirectory(prefix="panorama-fleet-") as tmp:
        context = Path(tmp)
        (context / "Dockerfile").write_text(dockerfile)
        fill(context)
        build_image(
            context, tag=tag, platform=platform, build_args=args, client=client,
            on_log=lambda line: log.debug("%s", line),
        )  # fmt: skip


def serve_image(
    client: Any,
    app: str,
    runtime: str,
    folder_name: str,
    files: list[ProjectFile],
    platform: str,
    on_log: Callable[[str], None],
) -> str:
    """The serve image of ``files`` on ``runtime``: found by its content tag, else built.

    Args:
        client: a Docker client.
        app: the application's DNS label (the repository name part).
        runtime: the runtime image's tag (:func:`.runtime_image.ensure_runtime_image`).
        folder_name: the project folder's name (the graph is found by it).
        files: :func:`project_files`.
        platform: ``linux/amd64`` or ``linux/arm64``.
        on_log: progress lines.

    Returns:
        ``panorama-cli/<app>-serve:<12 hex>``.

    Raises:
        UserError: the build fails.
    """
    from panorama_cli.build.image_cache import image_id_of

    runtime_id = image_id_of(client, runtime) or runtime
    key = _digest([runtime_id, folder_name, platform], [(f.path, f.source) for f in files])
    tag = f"panorama-cli/{app}-serve:{key}"
    if image_id_of(client, tag) is not None:
        return tag
    on_log(f"building {tag}")
    project = f"{PROJECT_DIR}/{folder_name}"
    dockerfile = SERVE_DOCKERFILE.format(project=project, labels=_labels(app, key, "serve"))

    def fill(context: Path) -> None:
        for item in files:
            target = context / "project" / item.path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(item.source, target)

    _build(client, tag, dockerfile, {"RUNTIME": runtime}, platform, fill)
    return tag


def node_image(
    client: Any, app: str, node_label: str, image_id: str, platform: str,
    on_log: Callable[[str], None],
) -> str:  # fmt: skip
    """The node's image from build-container (``image_id``) with the simulated SDK added:
    found by its content tag, else built.

    Returns:
        ``panorama-cli/<app>-<node label>:<12 hex>``.

    Raises:
        UserError: the build fails.
    """
    from panorama_cli.build.image_cache import image_id_of
    from panorama_cli.localrun.apps.appliance import SDK_DIR, SDK_TARGET

    sdk = [(p.relative_to(SDK_DIR).as_posix(), p) for p in sorted(SDK_DIR.rglob("*.py"))]
    key = _digest([image_id, platform], sdk)
    tag = f"panorama-cli/{app}-{node_label}:{key}"
    if image_id_of(client, tag) is not None:
        return tag
    on_log(f"building {tag}")
    base = f"panorama-cli/fleet-from:{image_id.split(':')[-1][:20]}"
    client.images.get(image_id).tag(base)  # FROM takes a reference, not an id
    dockerfile = NODE_DOCKERFILE.format(sdk=SDK_TARGET, labels=_labels(app, key, "node"))

    def fill(context: Path) -> None:
        for name, path in sdk:
            target = context / "sdk" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)

    try:
        _build(client, tag, dockerfile, {"APP": base}, platform, fill)
    finally:
        try:
            client.images.remove(base, noprune=True)  # the tag only
        except Exception:  # noqa: BLE001 - docker.errors.APIError: nothing to undo
            pass
    return tag
