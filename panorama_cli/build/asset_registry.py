"""Registering a stored asset in node packages and the application graph.

Used by add-raw-model (type "model") and build-container / export-container (type
"container"). Re-running with the same asset name replaces the asset's implementation; files
the old implementation pointed to are deleted only after the new manifests are in place, only
when no other package still refers to them (nothing when a package cannot be read), and only
when they are content-addressed files directly in assets/ (see panorama_cli.project.asset_cleanup).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from panorama_cli.build.render import render_json
from panorama_cli.errors import UserError
from panorama_cli.project import asset_cleanup, graph_edit, names
from panorama_cli.project.assets import StoredAsset
from panorama_cli.project.manifests import Transaction
from panorama_cli.project.project import Package, Project

log = logging.getLogger(__name__)

CATEGORY = {"model": "ml_model", "container": "business_logic"}


def implementation(kind: str, asset: StoredAsset, descriptor: StoredAsset) -> dict[str, Any]:
    """An asset implementation entry: ``{"type", "assetUri", "descriptorUri"}``."""
    return {"type": kind, "assetUri": asset.uri, "descriptorUri": descriptor.uri}


def asset_entry(
    name: str, kind: str, asset: StoredAsset, descriptor: StoredAsset
) -> dict[str, Any]:
    """The package.json asset entry for ``name`` (what add-raw-model prints to paste)."""
    return {"name": name, "implementations": [implementation(kind, asset, descriptor)]}


@dataclass
class Registration:
    """What :func:`register` changed in one package."""

    package: str
    replaced: bool = False
    interface_added: str | None = None
    node_added: str | None = None
    superseded: list[str] = field(default_factory=list)


def _node_for(kind: str, asset_name: str, interface_ref: str) -> dict[str, Any]:
    if kind == "model":
        return {"name": asset_name, "interface": interface_ref}
    return {
        "name": f"{asset_name}_node",
        "interface": interface_ref,
        "overridable": False,
        "launch": "onAppStart",
    }


def _uris(impls: Any) -> set[str]:
    if not isinstance(impls, list):
        return set()
    return {
        impl[key]
        for impl in impls
        if isinstance(impl, dict) and impl.get("type") != "system"
        for key in ("assetUri", "descriptorUri")
        if isinstance(impl.get(key), str) and impl[key]
    }


def register(
    project: Project,
    packages: list[Package],
    graph: dict[str, Any] | None,
    *,
    asset_name: str,
    kind: str,
    asset: StoredAsset,
    descriptor: StoredAsset,
    tx: Transaction,
) -> list[Registration]:
    """Stage the package.json and graph.json changes for a new asset version.

    For each package: replace (or append) asset ``asset_name`` with one implementation; keep
    the old implementation's ``requirements`` (containers); add interface ``<asset>_interface``
    unless an interface already uses the asset; when an interface is added, add a graph node
    for it (model: node ``<asset>``; container: node ``<asset>_node``) unless one exists.
    Files of the replaced implementation that no other package uses are deleted after commit.

    Raises:
        UserError: a package is not listed in the graph under the account of its folder.
    """
    names.check(names.ASSET_NAME, asset_name)
    results = []
    old_uris: set[str] = set()
    for package in packages:
        result = Registration(package.name)
        impl = implementation(kind, asset, descriptor)
        existing = package.asset(asset_name)
        if existing is not None:
            old_impls = existing.get("implementations", [])
            old_uris |= _uris(old_impls)
            requirements = next((i["requirements"] for i in old_impls if "requirements" in i), None)
            if requirements is not None:
                impl["requirements"] = requirements
            existing["implementations"] = [impl]
            result.replaced = True
        else:
            package.add_asset({"name": asset_name, "implementations": [impl]})
        if not any(i.get("asset") == asset_name for i in package.interfaces()):
            interface_name = f"{asset_name}_interface"
            if package.interface(interface_name) is not None:
                raise UserError(
                    f"{project.rel(package.manifest_path)}: interface {interface_name} "
                    f"exists but uses another asset",
                    hint="rename that interface",
                )
            package.add_interface(
                render_json(
                    "package/interface.json.j2",
                    name=interface_name,
                    category=CATEGORY[kind],
                    asset=asset_name,
                )
            )
            result.interface_added = interface_name
            if graph is not None:
                account = package.account
                if account is None:
                    raise UserError(
                        f"{project.rel(package.folder)}: folder is not named "
                        f"<account>-{package.name}-{package.version}",
                        hint="run import-application to fix the package folders",
                    )
                ref = f"{account}::{package.name}"
                graph_edit.add_package(graph, ref, package.version)
                interface_ref = f"{ref}.{interface_name}"
                if not graph_edit.nodes_using(graph, interface_ref):
                    node = _node_for(kind, asset_name, interface_ref)
                    if graph_edit.find_node(graph, node["name"]) is not None:
                        raise UserError(
                            f"graph.json already has a node called {node['name']}",
                            hint="choose another asset name",
                        )
                    graph_edit.add_node(graph, node)
                    result.node_added = node["name"]
        tx.write_json(package.manifest_path, package.data)
        results.append(result)
    if graph is not None:
        tx.write_json(project.graph_path, graph)
    keep = {asset.uri, descriptor.uri}
    for package in packages:
        keep |= {u for a in package.assets() for u in _uris(a.get("implementations", []))}
    superseded = sorted(old_uris - keep)
    if superseded:
        tx.after_commit(
            lambda warn: _remove_superseded(project, packages, superseded, results, warn)
        )
    return results


def _remove_superseded(
    project: Project,
    packages: list[Package],
    superseded: list[str],
    results: list[Registration],
    warn: Callable[[str], None],
) -> None:
    """After the commit: delete the old files no package uses (best effort, warns)."""
    try:
        in_use = _uris_in_use(project, exclude={p.folder for p in packages})
    except UserError as exc:
        warn(
            f"kept the superseded {', '.join(superseded)}: {exc.message} "
            "(a package that cannot be read may still use them)"
        )
        return
    removed = asset_cleanup.remove_superseded(
        project.assets_dir, superseded, keep=in_use, warn=warn
    )
    for result in results:
        result.superseded.extend(path.name for path in removed)


def _uris_in_use(project: Project, exclude: set[Path]) -> set[str]:
    """Asset names the other packages refer to.

    Raises:
        UserError: a package.json cannot be read or is not a nodePackage manifest; then
            nobody can tell what it uses, so the caller deletes nothing.
    """
    used: set[str] = set()
    skip = {f.resolve() for f in exclude}
    for folder in project.package_folders():
        if folder.resolve() in skip:
            continue
        package = project.load_package(folder)
        if not isinstance(package.data, dict) or not isinstance(
            package.data.get("nodePackage"), dict
        ):
            raise UserError(f"{project.rel(package.manifest_path)} is not a nodePackage manifest")
        for entry in package.assets():
            used |= _uris(entry.get("implementations", []))
    return used
