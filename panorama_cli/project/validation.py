"""``validate``: schema checks plus the semantic checks of the packages and application graph.

Checks (each finding names the file and a JSON pointer and says how to fix it):

* every manifest parses and satisfies schemas/ (graph.json, package.json, descriptor.json,
  override files beside graph.json and in ``deployment_overrides/``; override templates are
  skipped with a note);
* packages: one name per package (package.json, else the folder name), folder
  ``<account>-<name>-<version>``, assets and interfaces defined once, port names valid;
* the application graph (see :mod:`panorama_cli.project.graph_checks`);
* assets: every non-system assetUri / descriptorUri exists in assets/ and its sha256 matches
  its name; interfaces name assets their package defines;
* no placeholder left (empty model framework, ``<entry_file_name_under_src>``).

A Container package whose code asset is not built yet (its interface names an asset the
package does not define, or the asset's file is not in assets/) is a *warning* naming
build-container: ``run`` needs no asset. It is an error with ``for_upload=True``
(package-application), which sends the asset.

Nothing here raises on odd input: semantic checks run only on schema-valid documents.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from panorama_cli.errors import UserError
from panorama_cli.project import backpack_injection, descriptors, names, schemas
from panorama_cli.project.assets import sha256_file
from panorama_cli.project.descriptors import ENTRY_PLACEHOLDER
from panorama_cli.project.graph_checks import graph_problems, load_checked
from panorama_cli.project.manifests import load_json, pointer
from panorama_cli.project.node_kinds import NodeKind
from panorama_cli.project.problems import ERROR, WARNING, Problem, located
from panorama_cli.project.project import Package, Project

log = logging.getLogger(__name__)

#: Ends the message of an unbuilt code asset (a warning, see the module doc).
NOT_BUILT = " (not built yet; `run` works without it, `run --in-container` and export need it)"

_SHA_NAME = re.compile(r"^([0-9a-f]{64})\.[A-Za-z0-9.]+$")


def validate_project(project: Project, *, for_upload: bool = False) -> list[Problem]:
    """Run every check on ``project``; returns the problems (empty when the project is valid).

    Args:
        for_upload: an unbuilt code asset is an error (package-application), not a warning.
    """
    found: list[Problem] = []
    packages: dict[str, Package] = {}  # schema-valid packages by name
    broken: set[str] = set()  # folder names whose package.json is unusable
    hashes: dict[Path, str] = {}
    for folder in project.package_folders():
        data, problems = load_checked(project, folder / "package.json", schemas.PACKAGE)
        found += problems
        if data is None:
            broken.add(folder.name)
            continue
        package = Package(folder, data)
        where = package.manifest_path
        if not package.name:
            found.append(
                located(
                    project,
                    where,
                    "/nodePackage",
                    "package.json has no name, and the folder is not named "
                    "<account>-<name>-<version>",
                    'add "name" to nodePackage or rename the folder',
                )
            )
            continue
        if package.name in packages:
            other = project.rel(packages[package.name].folder)
            found.append(
                located(
                    project,
                    where,
                    "/nodePackage/name",
                    f"package name {package.name!r} is also used by {other}",
                    "give each node package its own name",
                )
            )
            continue
        packages[package.name] = package
        found += package_problems(project, package, hashes, for_upload=for_upload)
    found += graph_problems(project, packages, broken)
    log.debug("validated %s: %d package(s), %d problem(s)", project.root, len(packages), len(found))
    return found


def graph_errors(project: Project, graph_path: Path | None = None) -> list[Problem]:
    """The errors ``validate`` reports about the application graph (graph.json and its
    override files: nodes, packages, interfaces, edges, routing rules), without the package
    and asset checks (no hashing): what serve checks before a SIGHUP reload.

    Args:
        graph_path: the graph to check (default: the project's graph.json).

    Returns:
        The graph's errors (empty: it may be loaded); never raises on odd input.
    """
    packages: dict[str, Package] = {}
    broken: set[str] = set()
    for folder in project.package_folders():
        data, _problems = load_checked(project, folder / "package.json", schemas.PACKAGE)
        if data is None:
            broken.add(folder.name)
            continue
        package = Package(folder, data)
        if package.name and package.name not in packages:
            packages[package.name] = package
    return errors(graph_problems(project, packages, broken, graph_path))


def errors(problems: list[Problem]) -> list[Problem]:
    """The problems that fail validation."""
    return [p for p in problems if p.severity == ERROR]


def unbuilt(problems: list[Problem]) -> list[Problem]:
    """The warnings of code assets not built yet (errors for package-application)."""
    return [p for p in problems if p.severity == WARNING and p.message.endswith(NOT_BUILT)]


def package_problems(
    project: Project, package: Package, hashes: dict[Path, str], *, for_upload: bool = False
) -> list[Problem]:
    """Checks of one schema-valid package (``hashes``: sha256 already computed, by file;
    ``for_upload``: see :func:`validate_project`)."""
    path = package.manifest_path
    found: list[Problem] = []
    # a container's code asset is built by build-container; run works without it
    unbuilt = WARNING if package.kind == NodeKind.BUSINESS_LOGIC and not for_upload else ERROR

    def add(ptr: str, message: str, hint: str = "", severity: str = ERROR) -> None:
        found.append(located(project, path, ptr, message, hint, severity))

    if package.account is None:
        found.append(
            located(
                project,
                package.folder,
                "",
                f"folder name does not end with -{package.name}-{package.version}",
                "node package folders are named <account>-<name>-<version>",
            )
        )
    if not package.version:
        add("/nodePackage/version", "package.json has no version", 'add "version": "1.0"')
    asset_names: set[str] = set()
    for i, asset in enumerate(package.assets()):
        ptr = pointer("nodePackage", "assets", i)
        if asset["name"] in asset_names:
            add(ptr + "/name", f"asset {asset['name']!r} is defined twice", "keep one definition")
        asset_names.add(asset["name"])
        for j, impl in enumerate(asset.get("implementations", [])):
            found += implementation_problems(
                project, path, f"{ptr}/implementations/{j}", impl, hashes, missing=unbuilt
            )
    interfaces = package.interfaces()
    if not interfaces:
        add(
            "/nodePackage/interfaces",
            "package defines no interface",
            asset_hint(project, package, "<asset>"),
        )
    seen: set[str] = set()
    for i, interface in enumerate(interfaces):
        ptr = pointer("nodePackage", "interfaces", i)
        if interface["name"] in seen:
            add(
                ptr + "/name",
                f"interface {interface['name']!r} is defined twice",
                "keep one definition",
            )
        seen.add(interface["name"])
        named = interface.get("asset")
        if named is not None and named not in asset_names:
            add(
                ptr + "/asset",
                f"interface {interface['name']!r} names asset {named!r}, which the "
                "package does not define" + (NOT_BUILT if unbuilt == WARNING else ""),
                asset_hint(project, package, str(named)),
                unbuilt,
            )
        for direction in ("inputs", "outputs"):
            ports = [p["name"] for p in interface.get(direction, [])]
            for k, port in enumerate(ports):
                if not names.PORT_NAME.matches(port):
                    add(
                        f"{ptr}/{direction}/{k}/name",
                        f"invalid port name {port!r}",
                        f"it {names.PORT_NAME.describe()}",
                    )
                elif ports.index(port) != k:
                    add(
                        f"{ptr}/{direction}/{k}/name",
                        f"port {port!r} is defined twice",
                        "rename one of them",
                    )
    if package.descriptor_path.is_file():
        found += descriptor_problems(project, package.descriptor_path, package)
    stale = backpack_injection.stale_problem(package.folder, project.rel(package.folder))
    if stale is not None:
        found.append(stale)
    return found


def asset_hint(project: Project, package: Package, asset: str) -> str:
    """The command that creates ``asset`` for this kind of package."""
    where = project.rel(package.folder)
    kind = package.kind
    if kind == NodeKind.BUSINESS_LOGIC:
        return (
            f"run `panorama-cli build-container --container-asset-name {asset} "
            f"--package-path {where}`"
        )
    if kind == NodeKind.MODEL:
        return (
            f"run `panorama-cli add-raw-model --model-asset-name {asset} --model-local-path "
            f"<model.tar.gz> --descriptor-path {where}/descriptor.json --packages-path {where}`"
        )
    return "add the asset to package.json"


def implementation_problems(
    project: Project,
    path: Path,
    ptr: str,
    impl: dict[str, Any],
    hashes: dict[Path, str],
    *,
    missing: str = ERROR,
) -> list[Problem]:
    """The files an asset implementation names exist in assets/ and match their sha256 name
    (``missing``: the severity of a file that is not there)."""
    found: list[Problem] = []
    if impl.get("type") == "system":
        return found
    for key in ("assetUri", "descriptorUri"):
        uri = impl.get(key)
        if uri is None:
            continue
        file = project.assets_dir / uri
        where = f"{ptr}/{key}"
        if "/" in uri or "\\" in uri or uri in (".", ".."):
            found.append(
                located(
                    project,
                    path,
                    where,
                    f"{key} {uri!r} must be a file name in assets/",
                    "re-run the command that created the asset",
                )
            )
        elif file.is_symlink():
            found.append(
                located(
                    project,
                    path,
                    where,
                    f"{key} assets/{uri} is a symlink (panorama-cli never follows one in assets/)",
                    "put the file itself in assets/ (re-run add-raw-model / build-container)",
                )
            )
        elif not file.is_file():
            found.append(
                located(
                    project,
                    path,
                    where,
                    f"{key} assets/{uri} is missing" + (NOT_BUILT if missing == WARNING else ""),
                    "re-run add-raw-model / build-container to recreate it",
                    missing,
                )
            )
        else:
            found += _hash_problems(project, path, where, file, hashes)
            if key == "descriptorUri":
                found += descriptor_problems(project, file, None)
    return found


def _hash_problems(
    project: Project, path: Path, ptr: str, file: Path, hashes: dict[Path, str]
) -> list[Problem]:
    match = _SHA_NAME.match(file.name)
    if match is None:
        return [
            located(
                project,
                path,
                ptr,
                f"assets/{file.name} is not named by its sha256",
                "re-run the command that created the asset",
                WARNING,
            )
        ]
    if file not in hashes:
        hashes[file] = sha256_file(file)
    if hashes[file] != match.group(1):
        return [
            located(
                project,
                path,
                ptr,
                f"assets/{file.name} does not match its sha256 (changed or corrupt)",
                "re-run add-raw-model / build-container to recreate it",
            )
        ]
    return []


def descriptor_problems(project: Project, file: Path, package: Package | None) -> list[Problem]:
    """A descriptor: parses, no placeholder, schema; the entry file exists under src/."""
    try:
        data = load_json(file)
    except UserError as exc:
        return [located(project, file, "", exc.message, exc.hint or "")]
    found = descriptors.problems(data, project.rel(file))
    name = descriptors.entry_name(data)
    if (
        package is not None
        and name is not None
        and name.startswith("/panorama/")
        and ENTRY_PLACEHOLDER not in name
        and (package.folder / "src").is_dir()
    ):
        source = package.folder / "src" / name[len("/panorama/") :]
        if not source.is_file():
            found.append(
                located(
                    project,
                    file,
                    "/runtimeDescriptor/entry/name",
                    f"entry {name} has no file src/{source.name} in the package",
                    "the Dockerfile copies src/ to /panorama/; create the file or fix the name",
                    WARNING,
                )
            )
    return found
