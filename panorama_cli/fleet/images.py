"""The images a fleet bundle runs: the appliance (serve) image and one image per node.

* **serve**: FROM the runtime image (:mod:`.runtime_image`) with what serve reads of the
  project at ``/opt/panorama-cli/project/<project folder>``, from an allow-list
  (:func:`project_files`): the graph, the overrides and ``--model`` files export passes, and
  for each local package the graph uses its ``package.json``, ``descriptor.json`` and
  ``Dockerfile`` (they say what kind of node it is), the entry file of a business-logic
  node's ``src/`` (serve checks it is there; the code runs in the node's image) and the
  assets its manifest names but the container filesystem (model archives, descriptors).
  Never the project folder as a whole: bundles exported into it (camera credentials), run and
  state folders, ``.git``, caches, other graphs and packages stay out. ``ENTRYPOINT
  panorama-cli``, ``WORKDIR`` the project.
* **node**: FROM the node's image from build-container (the one its container asset was
  exported from, as ``run --in-container`` finds it) plus the simulated ``panoramasdk`` at
  :data:`~panorama_cli.localrun.apps.appliance.SDK_TARGET`, and its storage and logs folders
  made group :data:`~.model.APP_GID`'s, mode 2770 (a new volume mounted there takes them: the
  node's user, not root, writes there); its code and everything else are unchanged.

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

from panorama_cli.fleet.model import APP_GID, LABEL_APP, LABEL_ROLE, LABEL_VERSION, PROJECT_DIR

log = logging.getLogger(__name__)

#: Folders never walked for an image (run output, serve state, VCS, caches).
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
USER 0
RUN mkdir -p {folders} && chown 0:{gid} {folders} && chmod 2770 {folders}
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
    """Regular files under ``folder`` (no links followed; :data:`SKIP_DIRS` and dot-folders
    left out), sorted."""
    for path in sorted(folder.iterdir()):
        if path.name in SKIP_DIRS or path.name.startswith(".") or path.is_symlink():
            continue
        if path.is_dir():
            yield from _walk(path)
        elif path.is_file():
            yield path


def _regular(root: Path, path: Path) -> bool:
    """``path`` is a regular file inside ``root``, no link on the way (lstat)."""
    import stat

    try:
        relative = path.relative_to(root)
    except ValueError:
        return False
    here = root
    for part in relative.parts:
        here = here / part
        try:
            mode = here.lstat().st_mode
        except OSError:
            return False
        if stat.S_ISLNK(mode):
            return False
    return stat.S_ISREG(mode)


def _package_files(project: Any, package: Any, entry: Any, skip: set[str]) -> Iterator[Path]:
    """The files of one package serve reads (see the module docstring)."""
    yield from (package.manifest_path, package.descriptor_path, package.folder / "Dockerfile")
    if entry is not None:
        src = package.folder / "src"
        inside = entry.entry.removeprefix("/panorama/")
        if entry.entry.startswith("/panorama/") and inside:
            yield src / inside
        elif src.is_dir():  # an entry outside /panorama: serve only checks src/ exists
            yield from _walk(src)
    for uri in package.asset_uris():
        if "/" not in uri and uri not in (".", "..") and uri not in skip:
            yield project.assets_dir / uri


def project_files(plan: Any, extra: Mapping[str, Path] | None = None) -> list[ProjectFile]:
    """What the serve image holds of the project of ``plan`` (a
    :class:`~panorama_cli.localrun.plan.RunPlan`; see the module docstring), plus ``extra``
    (path in the image's project folder -> file: overrides, ``--model`` files, a graph from
    outside the project).

    Returns:
        The files, each once, sorted by path; a file that is missing or a link is left out
        (serve then says what is missing, as it would here).
    """
    from panorama_cli.project.node_kinds import NodeKind

    project = plan.project
    root = Path(project.root)
    skip = container_assets(project)
    entries = {b.node.name: b.entry for b in plan.business}
    wanted: list[Path] = [Path(plan.graph.path)]
    for node in plan.graph.nodes.values():
        if not node.is_local or node.package_folder is None:
            continue
        package = project.load_package(node.package_folder)
        entry = entries.get(node.name) if node.kind == NodeKind.BUSINESS_LOGIC else None
        wanted += _package_files(project, package, entry, skip)
    found: dict[str, ProjectFile] = {}
    for path in wanted:
        path = Path(path)
        if _regular(root, path):
            name = path.relative_to(root).as_posix()
            found.setdefault(name, ProjectFile(name, path))
        else:
            log.debug("serve image: %s left out (missing, a link or outside the project)", path)
    for name, source in (extra or {}).items():
        found[name] = ProjectFile(name, Path(source))
    return [found[name] for name in sorted(found)]


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
        from panorama_cli.project.project import PROJECT_DIRS

        for name in PROJECT_DIRS:  # how serve finds the project, even where one is empty
            (context / "project" / name).mkdir(parents=True, exist_ok=True)
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
    from panorama_cli.localrun.apps.appliance import LOGS, SDK_DIR, SDK_TARGET, STORAGE

    sdk = [(p.relative_to(SDK_DIR).as_posix(), p) for p in sorted(SDK_DIR.rglob("*.py"))]
    key = _digest([image_id, platform, NODE_DOCKERFILE], sdk)
    tag = f"panorama-cli/{app}-{node_label}:{key}"
    if image_id_of(client, tag) is not None:
        return tag
    on_log(f"building {tag}")
    base = f"panorama-cli/fleet-from:{image_id.split(':')[-1][:20]}"
    client.images.get(image_id).tag(base)  # FROM takes a reference, not an id
    dockerfile = NODE_DOCKERFILE.format(
        sdk=SDK_TARGET, labels=_labels(app, key, "node"), folders=f"{STORAGE} {LOGS}", gid=APP_GID
    )

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
