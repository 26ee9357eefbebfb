"""build-container / export-container: a container image as a content-addressed asset.

The image's flattened filesystem (``docker export`` of a created, never started container)
streams through gzip and sha256 into ``assets/<sha256>.tar.gz`` in one pass; the package's
descriptor.json is copied to ``assets/<sha256>.json``. The asset is registered in
package.json (type "container") with interface ``<asset>_interface`` (business_logic) and graph
node ``<asset>_node`` the first time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from panorama_cli.build import asset_registry, docker_build, docker_export, platforms
from panorama_cli.errors import UserError
from panorama_cli.project import descriptors, names
from panorama_cli.project.asset_cleanup import rollback_new_assets
from panorama_cli.project.assets import StoredAsset, store_bytes, store_stream
from panorama_cli.project.manifests import Transaction, loads
from panorama_cli.project.project import Package, Project

log = logging.getLogger(__name__)

DEFAULT_PLATFORM = "linux/arm64"


@dataclass
class ContainerResult:
    """What build-container / export-container did."""

    image: str
    asset: StoredAsset
    descriptor: StoredAsset
    registration: asset_registry.Registration
    warnings: list[str] = field(default_factory=list)
    #: the image id is the one the package's current asset was exported from: nothing done
    unchanged: bool = False


def check_runtime_descriptor(package: Package, project: Project) -> bytes:
    """The package's descriptor.json bytes, refused when invalid or unfinished.

    Raises:
        UserError: missing, malformed (file:line:col), not a runtimeDescriptor, schema-invalid,
            or the entry is still ``<entry_file_name_under_src>``.
    """
    raw, _ = descriptors.read_for_asset(
        package.descriptor_path, project.rel(package.descriptor_path), descriptors.RUNTIME
    )
    return raw


def project_key(package: Package) -> str:
    """8 hex digits of the sha256 of the absolute path of the package's project (the folder
    above ``packages/``): what makes two projects' image tags differ."""
    import hashlib

    root = package.folder.resolve().parent.parent
    return hashlib.sha256(str(root).encode("utf-8", "surrogateescape")).hexdigest()[:8]


def image_tag(package: Package, asset_name: str) -> str:
    """A Docker reference for the package's image: ``panorama-cli/<folder>-<project>:<asset>``.

    The repository is the lower-cased folder name and :func:`project_key`, so two projects
    with the same package on one engine never share a tag; the tag is the asset name,
    prefixed with ``_`` when it does not start with a letter, digit or ``_`` (Docker's tag
    grammar is ``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``). Assets are exported by image id, and
    ``run --in-container`` finds the image by the id its asset was exported from
    (:func:`panorama_cli.build.image_cache.images_for`); the tag is for people.
    """
    repo = re.sub(r"[^a-z0-9]+", "-", package.folder.name.lower()).strip("-") or "package"
    tag = re.sub(r"[^A-Za-z0-9_.-]", "-", asset_name)
    if not re.match(r"[A-Za-z0-9_]", tag):
        tag = "_" + tag
    return f"panorama-cli/{repo[:200]}-{project_key(package)}:{tag[:128]}"


def parse_build_args(values: tuple[str, ...]) -> dict[str, str]:
    """``("K=V", ...)`` → ``{"K": "V"}``.

    Raises:
        UserError: an item without ``=`` or with an empty key.
    """
    result = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(
                f"--build-arg {item!r} is not KEY=VALUE",
                hint="e.g. --build-arg BASE_IMAGE=my/base:1",
            )
        result[key] = value
    return result


def _prepare(
    project: Project, package_path: str, asset_name: str
) -> tuple[Package, bytes, dict[str, Any]]:
    names.check(names.ASSET_NAME, asset_name)
    package = project.package_for_path(package_path)
    raw = check_runtime_descriptor(package, project)
    graph = project.load_graph_for_update()
    return package, raw, graph


def _store_and_register(
    project: Project,
    package: Package,
    graph: dict[str, Any],
    raw: bytes,
    asset_name: str,
    image: str,
    platform: str | None,
    progress: Callable[[int], None] | None,
) -> ContainerResult:
    from panorama_cli.build import image_cache
    from panorama_cli.build.export_normalize import normalized

    with image_cache.engine() as client:
        mtime = image_cache.created_epoch(client, image)
        image_id = image_cache.image_id_of(client, image)
    if image_id is not None:
        image = image_id  # export exactly that image, and remember it: a tag can move
    tx = Transaction()
    with rollback_new_assets(project.assets_dir) as new:
        with docker_export.export_filesystem(image, platform=platform) as chunks:
            asset = new.add(
                store_stream(
                    normalized(chunks, mtime=mtime),  # the same image gives the same bytes
                    project.assets_dir,
                    suffix=".tar.gz",
                    progress=progress,
                )
            )
        descriptor = new.add(store_bytes(raw, project.assets_dir, suffix=".json"))
        [registration] = asset_registry.register(
            project,
            [package],
            graph,
            asset_name=asset_name,
            kind="container",
            asset=asset,
            descriptor=descriptor,
            tx=tx,
        )
        tx.on_commit(new.keep)
        tx.commit()
    if image.startswith("sha256:"):
        image_cache.remember(image, asset.uri)
    return ContainerResult(image, asset, descriptor, registration, tx.warnings)


def _unchanged(
    project: Project, package: Package, raw: bytes, asset_name: str, image_id: str
) -> ContainerResult | None:
    """The result of a rebuild whose image the package's current asset was exported from
    (same descriptor too), or None when something has to be exported."""
    import hashlib

    from panorama_cli.build import image_cache

    uri = image_cache.asset_for(image_id)
    existing = package.asset(asset_name)
    impls = existing.get("implementations") if existing else None
    if not uri or not isinstance(impls, list) or len(impls) != 1:
        return None
    descriptor_uri = f"{hashlib.sha256(raw).hexdigest()}.json"
    current = impls[0]
    files = [project.assets_dir / uri, project.assets_dir / descriptor_uri]
    if (
        current.get("assetUri") != uri
        or current.get("descriptorUri") != descriptor_uri
        or not all(f.is_file() and not f.is_symlink() for f in files)
        or not any(i.get("asset") == asset_name for i in package.interfaces())
    ):
        return None
    asset = StoredAsset(uri.split(".")[0], files[0], files[0].stat().st_size, created=False)
    descriptor = StoredAsset(descriptor_uri[:-5], files[1], files[1].stat().st_size, created=False)
    log.debug("image %s is the one %s was exported from: nothing to do", image_id, uri)
    registration = asset_registry.Registration(package.name)
    return ContainerResult(image_id, asset, descriptor, registration, unchanged=True)


def build_container(
    project: Project,
    package_path: str,
    asset_name: str,
    *,
    platform: str = DEFAULT_PLATFORM,
    build_args: dict[str, str] | None = None,
    local_image: bool = False,
    on_log: Callable[[str], None] | None = None,
    progress: Callable[[int], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    base_image: str | None = None,
) -> ContainerResult:
    """Build the package's Dockerfile for ``platform`` and store the image as the asset.

    Args:
        package_path: the node package folder (holds Dockerfile, descriptor.json, src/).
        asset_name: NodeAssetName of the container asset.
        platform: target platform, default linux/arm64 (the appliance). A host that cannot run
            it (no binfmt handler) fails here, before building, with the fix.
        build_args: Dockerfile ARGs, e.g. ``{"BASE_IMAGE": "..."}``.
        local_image: accepted for upstream compatibility; the base image is never pulled.
        on_log: receives each build log line; progress: bytes of filesystem exported.
        on_note: receives the line saying which local image a Panorama FROM builds on
            (:func:`panorama_cli.build.panorama_from.panorama_base`).
        base_image: ``--base-image``: the image Panorama FROM lines build on (default: the
            local stand-in of ``panorama-cli base-image --flavor panorama``).

    Raises:
        UserError: invalid inputs, the Panorama stand-in missing (the line names the command
            that makes it), a failing build, Docker unreachable. The project is unchanged on
            any failure (Ctrl-C included).
    """
    del local_image  # builds never pull: base images come from the local engine
    package, raw, graph = _prepare(project, package_path, asset_name)
    if not (package.folder / "Dockerfile").is_file():
        raise UserError(
            f"{project.rel(package.folder)}: no Dockerfile",
            hint="create one (create-package --type Container writes a starter)",
        )
    platforms.check_platform(platform)
    from panorama_cli.build import image_cache
    from panorama_cli.build.panorama_from import panorama_base

    build_args = dict(build_args or {})
    dockerfile = package.folder / "Dockerfile"
    tag = image_tag(package, asset_name)
    with image_cache.engine() as client:
        previous = image_cache.image_id_of(client, tag)
    with panorama_base(
        dockerfile, build_args, platform, base_image=base_image, on_note=on_note
    ) as copy:
        image = docker_build.build_image(
            package.folder,
            tag=tag,
            platform=platform,
            build_args=build_args,
            on_log=on_log,
            dockerfile=str(copy or "Dockerfile"),
            source=dockerfile,
        )
    result = _unchanged(project, package, raw, asset_name, image) or _store_and_register(
        project, package, graph, raw, asset_name, image, platform, progress
    )
    with image_cache.engine() as client:
        image_cache.remove_superseded(client, previous, image)
    result.image = tag
    return result


def export_container(
    project: Project,
    package_path: str,
    asset_name: str,
    image: str,
    *,
    progress: Callable[[int], None] | None = None,
) -> ContainerResult:
    """Store an existing local image ``image`` as the package's container asset.

    Raises:
        UserError: invalid inputs, the image is not in the local engine, Docker unreachable.
    """
    if not image.strip():
        raise UserError(
            "--container-image-uri is empty",
            hint="name an image of the local engine, e.g. my/app:1.0 (docker image ls)",
        )
    package, raw, graph = _prepare(project, package_path, asset_name)
    result = _store_and_register(project, package, graph, raw, asset_name, image, None, progress)
    result.image = image  # the reference as given (the asset came from its id)
    return result


def entry_command(package: Package) -> list[str]:
    """The entry command of the runtime descriptor: ``[path, name, *arguments]``."""
    data = loads(Path(package.descriptor_path).read_text(encoding="utf-8"), package.descriptor_path)
    entry = data["runtimeDescriptor"].get("entry", {})
    return [entry.get("path", "python3"), entry["name"], *entry.get("arguments", [])]
