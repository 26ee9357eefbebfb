"""``validate``: schema checks plus the semantic checks of an application graph.

Checks (each finding names the file and a JSON pointer and says how to fix it):

* every manifest parses and satisfies schemas/ (graph.json, package.json, descriptor.json,
  override files);
* graph packages: each local package listed once, with the version in package.json and the
  folder name ``<account>-<name>-<version>``;
* nodes: unique Panorama node names; each interface names a listed package and an interface
  that package defines (local packages, and the well-known ``panorama::`` packages);
* edges: producer is an output (or a value node), consumer an input, both exist, types match;
* assets: every non-system assetUri / descriptorUri exists in assets/ and its sha256 matches
  its name; interfaces name assets their package defines;
* no placeholder left (empty model framework, ``<entry_file_name_under_src>``).

The checker never raises on odd input: semantic checks run only on schema-valid documents.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from panorama_cli import backpack_injection, descriptors, names, schemas
from panorama_cli.assets import sha256_file
from panorama_cli.descriptors import ENTRY_PLACEHOLDER
from panorama_cli.errors import UserError
from panorama_cli.graph_checks import GraphChecks
from panorama_cli.manifests import load_json, pointer
from panorama_cli.problems import ERROR, WARNING, Problem
from panorama_cli.project import Package, Project

_SHA_NAME = re.compile(r"^([0-9a-f]{64})\.[A-Za-z0-9.]+$")


class _Checker(GraphChecks):
    def __init__(self, project: Project):
        self.project = project
        self.problems: list[Problem] = []
        self.packages: dict[str, Package] = {}  # by package name, schema-valid ones
        self._hash_cache: dict[Path, str] = {}
        self.broken: set[str] = set()  # folder names whose package.json is unusable

    def add(self, file: Path | str, ptr: str, message: str, hint: str = "", severity: str = ERROR):
        name = self.project.rel(file) if isinstance(file, Path) else file
        self.problems.append(Problem(name, ptr, message, hint, severity))

    def load(self, path: Path, kind: str) -> Any | None:
        """Parse + schema-check; None (and problems recorded) when unusable."""
        try:
            data = load_json(path)
        except UserError as exc:
            self.add(path, "", exc.message, exc.hint or "")
            return None
        found = schemas.check(kind, data, self.project.rel(path))
        self.problems.extend(found)
        return None if found else data

    # -- packages ----------------------------------------------------------------------------
    def check_packages(self) -> None:
        for folder in self.project.package_folders():
            data = self.load(folder / "package.json", schemas.PACKAGE)
            if data is None:
                self.broken.add(folder.name)
                continue
            package = Package(folder, data)
            if package.name in self.packages:
                self.add(
                    package.manifest_path,
                    "/nodePackage/name",
                    f"package name {package.name!r} is also used by "
                    f"{self.project.rel(self.packages[package.name].folder)}",
                    "give each node package its own name",
                )
                continue
            self.packages[package.name] = package
            self.check_package(package)

    def check_package(self, package: Package) -> None:
        path = package.manifest_path
        kind = self.package_kind(package)
        if package.account is None:
            self.add(
                package.folder,
                "",
                f"folder name does not end with -{package.name}-{package.version}",
                "node package folders are named <account>-<name>-<version>",
            )
        if not package.version:
            self.add(
                path, "/nodePackage/version", "package.json has no version", 'add "version": "1.0"'
            )
        asset_names: set[str] = set()
        for i, asset in enumerate(package.assets()):
            ptr = pointer("nodePackage", "assets", i)
            if asset["name"] in asset_names:
                self.add(
                    path,
                    ptr + "/name",
                    f"asset {asset['name']!r} is defined twice",
                    "keep one definition",
                )
            asset_names.add(asset["name"])
            for j, impl in enumerate(asset.get("implementations", [])):
                self.check_implementation(path, f"{ptr}/implementations/{j}", impl)
        interfaces = package.interfaces()
        if not interfaces:
            self.add(
                path,
                "/nodePackage/interfaces",
                "package defines no interface",
                self.asset_hint(package, kind, "<asset>"),
            )
        seen: set[str] = set()
        for i, interface in enumerate(interfaces):
            ptr = pointer("nodePackage", "interfaces", i)
            if interface["name"] in seen:
                self.add(
                    path,
                    ptr + "/name",
                    f"interface {interface['name']!r} is defined twice",
                    "keep one definition",
                )
            seen.add(interface["name"])
            asset = interface.get("asset")
            if asset is not None and asset not in asset_names:
                self.add(
                    path,
                    ptr + "/asset",
                    f"interface {interface['name']!r} names asset {asset!r}, which the "
                    "package does not define",
                    self.asset_hint(package, kind, asset),
                )
            for direction in ("inputs", "outputs"):
                ports = [p["name"] for p in interface.get(direction, [])]
                for k, port in enumerate(ports):
                    if not names.PORT_NAME.matches(port):
                        self.add(
                            path,
                            f"{ptr}/{direction}/{k}/name",
                            f"invalid port name {port!r}",
                            f"it {names.PORT_NAME.describe()}",
                        )
                    elif ports.index(port) != k:
                        self.add(
                            path,
                            f"{ptr}/{direction}/{k}/name",
                            f"port {port!r} is defined twice",
                            "rename one of them",
                        )
        if package.descriptor_path.is_file():
            self.check_descriptor(package.descriptor_path, package)
        stale = backpack_injection.stale_problem(package.folder, self.project.rel(package.folder))
        if stale is not None:
            self.problems.append(stale)

    def package_kind(self, package: Package) -> str:
        if (package.folder / "Dockerfile").is_file():
            return "container"
        try:
            descriptor = load_json(package.descriptor_path)
        except UserError:
            return "other"
        if isinstance(descriptor, dict) and "mlModelDescriptor" in descriptor:
            return "model"
        return (
            "container"
            if isinstance(descriptor, dict) and "runtimeDescriptor" in descriptor
            else "other"
        )

    def asset_hint(self, package: Package, kind: str, asset: str) -> str:
        where = self.project.rel(package.folder)
        if kind == "container":
            return (
                f"run `panorama-cli build-container --container-asset-name {asset} "
                f"--package-path {where}`"
            )
        if kind == "model":
            return (
                f"run `panorama-cli add-raw-model --model-asset-name {asset} --model-local-path "
                f"<model.tar.gz> --descriptor-path {where}/descriptor.json --packages-path {where}`"
            )
        return "add the asset to package.json"

    def check_implementation(self, path: Path, ptr: str, impl: dict[str, Any]) -> None:
        if impl.get("type") == "system":
            return
        for key in ("assetUri", "descriptorUri"):
            uri = impl.get(key)
            if uri is None:
                continue
            file = self.project.assets_dir / uri
            if "/" in uri or "\\" in uri or uri in (".", ".."):
                self.add(
                    path,
                    f"{ptr}/{key}",
                    f"{key} {uri!r} must be a file name in assets/",
                    "re-run the command that created the asset",
                )
            elif not file.is_file():
                self.add(
                    path,
                    f"{ptr}/{key}",
                    f"{key} assets/{uri} is missing",
                    "re-run add-raw-model / build-container to recreate it",
                )
            else:
                self.check_hash(path, f"{ptr}/{key}", file)
                if key == "descriptorUri":
                    self.check_descriptor(file, None)

    def check_hash(self, path: Path, ptr: str, file: Path) -> None:
        match = _SHA_NAME.match(file.name)
        if match is None:
            self.add(
                path,
                ptr,
                f"assets/{file.name} is not named by its sha256",
                "re-run the command that created the asset",
                WARNING,
            )
            return
        if file not in self._hash_cache:
            self._hash_cache[file] = sha256_file(file)
        if self._hash_cache[file] != match.group(1):
            self.add(
                path,
                ptr,
                f"assets/{file.name} does not match its sha256 (changed or corrupt)",
                "re-run add-raw-model / build-container to recreate it",
            )

    def check_descriptor(self, file: Path, package: Package | None) -> None:
        try:
            data = load_json(file)
        except UserError as exc:
            self.add(file, "", exc.message, exc.hint or "")
            return
        self.problems.extend(descriptors.problems(data, self.project.rel(file)))
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
                self.add(
                    file,
                    "/runtimeDescriptor/entry/name",
                    f"entry {name} has no file src/{source.name} in the package",
                    "the Dockerfile copies src/ to /panorama/; create the file or fix the name",
                    WARNING,
                )


def validate_project(project: Project) -> list[Problem]:
    """Run every check on ``project``; returns the problems (empty when the project is valid)."""
    checker = _Checker(project)
    checker.check_packages()
    checker.check_graph()
    return checker.problems


def errors(problems: list[Problem]) -> list[Problem]:
    """The problems that fail validation."""
    return [p for p in problems if p.severity == ERROR]
