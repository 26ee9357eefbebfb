"""What package-application would send: the local side, before any AWS call.

For each node package: its patch version (the sha256 of package.json's bytes, so any change
of the manifest -- including a new asset, whose URI is its own sha256 -- is a new patch), and
the files named in package.json (every ``assetUri`` and ``descriptorUri`` of non-``system``
implementations, from ``assets/``). Validation problems are split into those that stop one
package (found in its files) and those that stop everything (e.g. in graph.json: a graph
naming a package version no package folder has fails here, not at deploy).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from panorama_cli.errors import UserError
from panorama_cli.project import names
from panorama_cli.project.problems import Problem
from panorama_cli.project.project import Package, Project
from panorama_cli.project.validation import errors, validate_project

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalFile:
    """A file package-application uploads.

    Attributes:
        path: the local file (``assets/<uri>``).
        uri: its name in the package manifest (``assetUri`` / ``descriptorUri``).
    """

    path: Path
    uri: str


@dataclass
class PlannedPackage:
    """One node package as it will be registered.

    Attributes:
        package: the local package.
        rel_folder: its folder relative to the project root, for reports.
        manifest_bytes: package.json exactly as on disk (uploaded as is).
        patch: sha256 hex of ``manifest_bytes`` (the patch version, 64 characters).
        files: assets and descriptors to upload, in manifest order, without duplicates.
        problems: validation errors that stop this package (empty when it can go).
    """

    package: Package
    rel_folder: str
    manifest_bytes: bytes
    patch: str
    files: list[LocalFile] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.package.name

    @property
    def version(self) -> str:
        return self.package.version


def patch_version(manifest_bytes: bytes) -> str:
    """The patch version of a package manifest: sha256 hex of its bytes (64 chars)."""
    return hashlib.sha256(manifest_bytes).hexdigest()


def plan(project: Project, package_paths: tuple[str, ...] = ()) -> list[PlannedPackage]:
    """Validate the project and list the packages to send.

    Args:
        project: the project.
        package_paths: package folders to send (``--packages-path``); empty = all of them.

    Returns:
        One :class:`PlannedPackage` per package, sorted by folder; those with ``problems``
        must not be registered.

    Raises:
        UserError: no package, an unknown --packages-path, or validation errors outside
            any package's files (graph.json, e.g. a version no package has), which would
            make the application undeployable whatever is registered.
    """
    if package_paths:
        packages = [project.package_for_path(p) for p in package_paths]
    else:
        packages = [project.load_package(f, for_update=True) for f in project.package_folders()]
    if not packages:
        raise UserError(
            f"no node package in {project.rel(project.packages_dir)}/",
            hint="create one with `panorama-cli create-package --name NAME`",
        )
    for package in packages:
        names.check(names.PACKAGE_NAME, package.name)
        names.check(names.PACKAGE_VERSION, package.version)

    planned = [_planned(project, p) for p in packages]
    by_file = _package_files(planned)
    global_errors: list[Problem] = []
    for problem in errors(validate_project(project, for_upload=True)):
        owners = _owners(problem.file, planned, by_file)
        if owners is None:
            global_errors.append(problem)
        for owner in owners or ():
            owner.problems.append(problem)
    if global_errors:
        first = global_errors[0]
        more = f" (and {len(global_errors) - 1} more)" if len(global_errors) > 1 else ""
        raise UserError(
            f"{first.line()}{more}; nothing was sent",
            hint="fix it (`panorama-cli validate` lists every problem) and re-run",
        )
    return sorted(planned, key=lambda p: p.rel_folder)


def _planned(project: Project, package: Package) -> PlannedPackage:
    manifest_bytes = package.manifest_path.read_bytes()
    planned = PlannedPackage(
        package=package,
        rel_folder=project.rel(package.folder),
        manifest_bytes=manifest_bytes,
        patch=patch_version(manifest_bytes),
    )
    planned.files = [LocalFile(project.assets_dir / uri, uri) for uri in package.asset_uris()]
    return planned


def _package_files(planned: list[PlannedPackage]) -> dict[str, list[PlannedPackage]]:
    """assets/ file (relative to the root) -> the planned packages whose manifest names it."""
    owners: dict[str, list[PlannedPackage]] = {}
    for item in planned:
        for local in item.files:
            owners.setdefault(f"assets/{local.uri}", []).append(item)
    return owners


def _owners(
    file: str, planned: list[PlannedPackage], by_file: dict[str, list[PlannedPackage]]
) -> list[PlannedPackage] | None:
    """The planned packages a problem's file belongs to; None when it stops everything.

    A package owns the files in its folder and the assets/ files its manifest names.
    Problems in packages or assets that are not being sent belong to nobody here (an empty
    list), so that ``--packages-path`` sends a subset despite them. Anything else, e.g.
    graphs/<app>/graph.json, stops everything.
    """
    for item in planned:
        if file.startswith(item.rel_folder + "/"):
            return [item]
    if file in by_file:
        return by_file[file]
    if file.startswith(("packages/", "assets/")):
        return []
    return None
