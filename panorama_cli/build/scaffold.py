"""init-project and create-package: new projects and node packages from templates/.

Package types (create-package --type):

* Container: src/ with a runnable starter app and a stamped copy of backpack in src/backpack/
  (see backpack_injection), descriptor.json (runtimeDescriptor), package.json, Dockerfile
  (``ARG BASE_IMAGE`` / ``FROM ${BASE_IMAGE}``, stages from dockerfile_stages).
* Model: package.json and an mlModelDescriptor descriptor.json to fill in.
* Camera: package.json with the system asset ``source/video/camera/rtsp/source_rtsp`` and the
  interface ``rtsp_interface``, plus a graph node.
* Datasink: package.json with the system asset ``sink/video/hdmi/sink_hdmi`` and the interface
  ``sink_interface``, plus a graph node.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from panorama_cli.build.render import render_json, render_text
from panorama_cli.errors import UserError
from panorama_cli.project import graph_edit, names
from panorama_cli.project.graph_elements import WELL_KNOWN
from panorama_cli.project.manifests import Transaction, dumps
from panorama_cli.project.project import PROJECT_DIRS, SETTINGS_FILE, Project

log = logging.getLogger(__name__)

PACKAGE_TYPES = ("Container", "Model", "Camera", "Datasink")
ENTRY_FILE = "app.py"
_SYSTEM_INTERFACES = {"Camera": "rtsp_interface", "Datasink": "sink_interface"}

#: What a new project keeps out of git: run folders (videos, logs; localrun.plan.RUNS_FOLDER),
#: the project lock (project.lock.LOCK_FILE and its owner file), serve's state folder.
GITIGNORE = """\
# panorama-cli: local output and state, not part of the application
/.panorama-run/
/.panorama-serve/
/.panorama-cli.lock
/.panorama-cli.lock.owner
"""


def new_project_folders(parent: Path, name: str) -> tuple[Path, Path]:
    """``parent/name`` and its staging folder ``parent/.name.creating``, neither existing.

    Raises:
        UserError: either exists (the staging one is left by an interrupted run).
    """
    root = Path(parent) / name
    if root.exists():
        raise UserError(f"{root} already exists", hint="choose another --name or remove the folder")
    staging = Path(parent) / f".{name}.creating"
    if staging.exists():
        raise UserError(
            f"{staging} exists (left by an interrupted run)", hint="remove it and re-run"
        )
    return root, staging


def init_project(parent: Path, name: str, account_id: str | None = None) -> Project:
    """Create ``parent/name`` with assets/, graphs/<name>/graph.json, packages/ and a
    .gitignore (:data:`GITIGNORE`).

    Raises:
        UserError: invalid name, or the folder exists already.
    """
    names.check(names.PROJECT_NAME, name)
    if account_id is not None:
        names.check(names.USER_ACCOUNT_ID, account_id)
    root, staging = new_project_folders(parent, name)
    try:
        for folder in PROJECT_DIRS:
            (staging / folder).mkdir(parents=True)
        graph_dir = staging / "graphs" / name
        graph_dir.mkdir()
        (graph_dir / "graph.json").write_text(dumps(render_json("project/graph.json.j2")))
        if account_id:
            (staging / SETTINGS_FILE).write_text(dumps({"accountId": account_id}))
        (staging / ".gitignore").write_text(GITIGNORE)
        staging.rename(root)
    except BaseException:
        _remove_tree(staging)
        raise
    return Project(root)


def set_account_id(project: Project, account_id: str) -> bool:
    """Record ``account_id`` in the project's settings (``.panorama-cli.json``), atomically.

    Returns:
        False when the project had that account already (nothing written).

    Raises:
        UserError: not 12 digits, or graph.json already lists packages of another account
            (import-application --account-id rewrites those).
    """
    names.check(names.USER_ACCOUNT_ID, account_id)
    try:
        accounts = project.graph_accounts()
    except UserError:
        accounts = []
    others = [a for a in accounts if a != account_id]
    if others:
        raise UserError(
            f"graph.json lists packages of account {others[0]}",
            hint=f"run `panorama-cli import-application --account-id {account_id}` to rewrite them",
        )
    settings = project.read_settings()
    if settings.get("accountId") == account_id:
        return False
    settings["accountId"] = account_id
    tx = Transaction()
    tx.write_json(project.root / SETTINGS_FILE, settings)
    tx.commit()
    log.debug("account id %s recorded in %s", account_id, SETTINGS_FILE)
    return True


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class CreatedPackage:
    """What create-package made: the folder and the graph package name."""

    folder: Path
    package_ref: str
    node: str | None


def create_package(
    project: Project,
    name: str,
    account: str,
    *,
    package_type: str = "Container",
    version: str = "1.0",
    backpack: bool = True,
    stages: tuple[str, ...] = (),
) -> CreatedPackage:
    """Create node package ``name`` and list it in graph.json (a node too for Camera/Datasink).

    Args:
        project: the project to add to.
        name: package name (NodePackageName pattern).
        account: the account id used in the folder name and the graph package name.
        package_type: one of PACKAGE_TYPES.
        version: ``<major>.<minor>``.
        backpack: Container only: put a stamped copy of backpack in src/backpack/
            (panorama_cli.project.backpack_injection) and a starter app that uses it.
        stages: Container only: Dockerfile stages (panorama_cli.build.dockerfile_stages.STAGES).

    Raises:
        UserError: invalid name/version/type, a package of that name exists, or graph.json is
            malformed / schema-invalid. Nothing is changed then.
    """
    names.check(names.PACKAGE_NAME, name)
    names.check(names.PACKAGE_VERSION, version)
    names.check(names.ACCOUNT_ID, account)
    if package_type not in PACKAGE_TYPES:
        raise UserError(
            f"unknown package type {package_type!r}", hint=f"use one of {', '.join(PACKAGE_TYPES)}"
        )
    graph = project.load_graph_for_update()
    ref = f"{account}::{name}"
    folder = project.packages_dir / names.package_folder_name(account, name, version)
    if folder.exists():
        raise UserError(
            f"{project.rel(folder)} already exists", hint="choose another --name or --version"
        )
    for existing in project.package_folders():
        pkg = project.load_package(existing)
        if pkg.name == name:
            raise UserError(
                f"package {name} already exists in {project.rel(existing)}",
                hint="node package names are unique within an application",
            )
    if any(p.get("name") == ref for p in graph_edit.body(graph).get("packages", [])):
        raise UserError(
            f"graph.json already lists package {ref}", hint="remove it first or choose another name"
        )

    files = _package_files(name, version, package_type, backpack, stages)
    graph_edit.add_package(graph, ref, version)
    node = None
    if package_type in _SYSTEM_INTERFACES:
        node = name
        if graph_edit.find_node(graph, node) is not None:
            raise UserError(
                f"graph.json already has a node called {node}", hint="choose another --name"
            )
        graph_edit.add_node(
            graph, {"name": node, "interface": f"{ref}.{_SYSTEM_INTERFACES[package_type]}"}
        )

    staging = project.packages_dir / f".{folder.name}.creating"
    if staging.exists():
        _remove_tree(staging)
    try:
        for relpath, text in files.items():
            target = staging / relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        tx = Transaction()
        tx.rename(staging, folder)
        tx.write_json(project.graph_path, graph)
        tx.commit()
    except BaseException:
        _remove_tree(staging)
        raise
    return CreatedPackage(folder, ref, node)


def _package_files(
    name: str, version: str, package_type: str, backpack: bool, stages: tuple[str, ...]
) -> dict[str, str | bytes]:
    from panorama_cli.build import dockerfile_stages
    from panorama_cli.project import backpack_injection

    ctx = {"name": name, "version": version}
    if package_type == "Camera":
        return {"package.json": dumps(render_json("package/camera/package.json.j2", **ctx))}
    if package_type == "Datasink":
        return {"package.json": dumps(render_json("package/datasink/package.json.j2", **ctx))}
    files: dict[str, str | bytes] = {
        "package.json": dumps(render_json("package/package.json.j2", **ctx))
    }
    if package_type == "Model":
        files["descriptor.json"] = dumps(render_json("package/model/descriptor.json.j2"))
        return files
    files["descriptor.json"] = dumps(
        render_json("package/container/descriptor.json.j2", entry=ENTRY_FILE)
    )
    chosen = dockerfile_stages.resolve(stages)
    files["Dockerfile"] = dockerfile_stages.render_dockerfile(name, version, chosen)
    app = "app.py.j2" if backpack else "app_plain.py.j2"
    files[f"src/{ENTRY_FILE}"] = render_text(f"package/container/{app}", **ctx, stages=chosen)
    if backpack:
        files.update(backpack_injection.package_files())
    return files


PANORAMA_PACKAGES = {
    "camera": ("panorama::abstract_rtsp_media_source", "graph/camera_node.json.j2"),
    "data_sink": ("panorama::hdmi_data_sink", "graph/data_sink_node.json.j2"),
}


def panorama_package_port(package_type: str) -> str:
    """The media port of a ``camera`` (``video_out``) or ``data_sink`` (``video_in``) node."""
    ref = PANORAMA_PACKAGES[package_type][0]
    (interface,) = WELL_KNOWN[ref].values()
    return interface.media_port or ""


def add_panorama_package(project: Project, package_type: str, name: str) -> bool:
    """Add an abstract camera or the HDMI data sink to graph.json (package once, node ``name``).

    Returns:
        False when the node exists already with the same interface (nothing to do).

    Raises:
        UserError: unknown type, invalid node name, a different node of that name exists,
            or graph.json is malformed / schema-invalid.
    """
    if package_type not in PANORAMA_PACKAGES:
        raise UserError(f"unknown type {package_type!r}", hint="use camera or data_sink")
    names.check(names.NODE_NAME, name)
    ref, template = PANORAMA_PACKAGES[package_type]
    graph = project.load_graph_for_update()
    node = render_json(template, name=name)
    existing = graph_edit.find_node(graph, name)
    if existing is not None:
        if existing.get("interface") == node["interface"]:
            return False
        raise UserError(
            f"graph.json already has a node called {name} ({existing.get('interface')})",
            hint="choose another --name",
        )
    graph_edit.add_package(graph, ref, "1.0")
    graph_edit.add_node(graph, node)
    tx = Transaction()
    tx.write_json(project.graph_path, graph)
    tx.commit()
    return True
