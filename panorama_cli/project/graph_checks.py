"""Semantic checks of the application graph (graph.json and its override files).

Plain functions over an :class:`~panorama_cli.project.appgraph.AppGraph` built from graph.json
alone (pointers then point into graph.json): nodes name listed packages and interfaces those
packages define; edges go from an output (or a parameter node) to an input of the same type;
network routing rules and node overrides name existing nodes. Each returns a list of
:class:`~panorama_cli.project.problems.Problem`; none raises on odd input (documents are
schema-checked first).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Set
from pathlib import Path
from typing import Any

from panorama_cli.errors import UserError
from panorama_cli.project import names, schemas
from panorama_cli.project.appgraph import AppGraph, Edge, Node, find_override_files
from panorama_cli.project.graph_warnings import wiring_warnings
from panorama_cli.project.manifests import load_json, pointer
from panorama_cli.project.node_kinds import NodeKind
from panorama_cli.project.problems import ERROR, NOTE, WARNING, Problem, located
from panorama_cli.project.project import Package, Project

log = logging.getLogger(__name__)


def graph_problems(
    project: Project,
    packages: Mapping[str, Package],
    broken: set[str],
    graph_path: Path | None = None,
) -> list[Problem]:
    """Every problem of graph.json and the override files of the application.

    Args:
        packages: the schema-valid local packages by name.
        broken: folder names under packages/ whose package.json is unusable (already reported).
        graph_path: the graph to check (default: the project's graph.json).
    """
    try:
        path = graph_path if graph_path is not None else project.graph_path
    except UserError as exc:
        return [located(project, project.graphs_dir, "", exc.message, exc.hint or "")]
    data, found = load_checked(project, path, schemas.GRAPH)
    if data is None:
        return found
    graph = AppGraph.build(project, path, data, packages=packages)
    log.debug("checking %r", graph)
    notes: list[str] = []
    overrides = find_override_files(project, notes)
    in_overrides = {
        names.split_package_ref(str(ref.get("name")))
        for path in overrides
        for ref in _override_packages(path)
    }
    found += package_list_problems(
        project, graph, packages, broken, {p[1] for p in in_overrides if p}
    )
    found += node_problems(project, graph)
    found += wiring_warnings(project, graph)
    for edge in graph.edges:
        found += edge_problems(project, graph, edge)
    for rule in graph.routing_rules:
        if rule.node not in graph.nodes:
            found.append(
                located(
                    project,
                    path,
                    rule.pointer + "/node",
                    f"node {rule.node!r} does not exist",
                    "name a node of nodeGraph.nodes",
                )
            )
    found += [
        Problem(line.split(": ", 1)[0], "", line.split(": ", 1)[1], "", NOTE) for line in notes
    ]
    for override in overrides:
        found += template_note(project, override, override_problems(project, graph, override))
    return found


def template_note(project: Project, path: Path, problems: list[Problem]) -> list[Problem]:
    """``problems`` of an override file, or one note instead when the file's name says it is
    a template (``override_configuration_template.json``, as the official samples ship them:
    replacements naming nodes the user is to add) and it is not complete as given: a
    template is filled in a copy, never applied as it is (run and deploy check what they
    apply)."""
    errors = [p for p in problems if p.severity == ERROR]
    if not errors or "template" not in path.name.lower():
        return problems
    first = errors[0]
    more = f" and {len(errors) - 1} more" if len(errors) > 1 else ""
    return [
        Problem(
            project.rel(path),
            "",
            f"skipped, an override template to fill in (as given: {first.pointer or '/'}: "
            f"{first.message}{more})",
            "copy it, complete it and pass the copy with --override",
            NOTE,
        )
    ]


def load_checked(project: Project, path: Path, kind: str) -> tuple[Any | None, list[Problem]]:
    """Parse + schema-check a manifest: (data or None when unusable, the problems)."""
    try:
        data = load_json(path)
    except UserError as exc:
        return None, [located(project, path, "", exc.message, exc.hint or "")]
    found = schemas.check(kind, data, project.rel(path))
    return (None if found else data), found


def _override_packages(path: Path) -> list[dict[str, Any]]:
    """The ``packages`` entries of an override file ([] when it cannot be read)."""
    try:
        data = load_json(path)
    except UserError:
        return []
    body = data.get("nodeGraphOverrides") if isinstance(data, dict) else None
    found = body.get("packages") if isinstance(body, dict) else None
    return [p for p in found if isinstance(p, dict)] if isinstance(found, list) else []


def package_list_problems(
    project: Project,
    graph: AppGraph,
    packages: Mapping[str, Package],
    broken: set[str],
    in_overrides: Set[str] = frozenset(),
) -> list[Problem]:
    """``nodeGraph.packages``: listed once, a folder for each local one, versions agree; every
    local package listed in graph.json or an override file (``in_overrides``: package names),
    else a warning."""
    path = graph.path
    found: list[Problem] = []
    if not graph.packages:
        found.append(
            located(
                project,
                path,
                "/nodeGraph/packages",
                "the graph lists no package",
                "add one with create-package or add-panorama-package",
            )
        )
    listed: set[str] = set()
    for ref in graph.packages:
        if ref.name in listed:
            found.append(
                located(
                    project,
                    path,
                    ref.pointer,
                    f"package {ref.name} is listed twice",
                    "keep one entry",
                )
            )
        listed.add(ref.name)
        if ref.account == names.PANORAMA_ACCOUNT:
            continue
        folder = names.package_folder_name(ref.account, ref.package_name, ref.version)
        package = ref.local
        if package is None and folder in broken:
            continue
        if package is None:
            found.append(
                located(
                    project,
                    path,
                    ref.pointer,
                    f"package {ref.name} {ref.version} has no folder under packages/",
                    f"run `panorama-cli create-package --name {ref.package_name}` or remove it",
                )
            )
        elif package.version != ref.version:
            found.append(
                located(
                    project,
                    path,
                    ref.pointer + "/version",
                    f"graph names {ref.name} version {ref.version} but package.json has "
                    f"{package.version}",
                    "make the versions agree",
                )
            )
        elif package.folder.name != folder:
            found.append(
                located(
                    project,
                    package.folder,
                    "",
                    f"folder should be packages/{folder} for {ref.name} {ref.version}",
                    "rename the folder, or run import-application to set the account",
                )
            )
    listed_names = {ref.package_name for ref in graph.packages} | set(in_overrides)
    for package in packages.values():
        if package.name not in listed_names:
            found.append(
                located(
                    project,
                    package.manifest_path,
                    "",
                    f"package {package.name} is not listed in {project.rel(path)}",
                    "add it to nodeGraph.packages or delete the folder",
                    WARNING,
                )
            )
    return found


def node_problems(project: Project, graph: AppGraph) -> list[Problem]:
    """Node names valid and unique; each interface resolves (see ``Node.unresolved``)."""
    path = graph.path
    found: list[Problem] = []
    if not graph.declared:
        found.append(
            located(
                project,
                path,
                "/nodeGraph/nodes",
                "the graph has no node",
                "add nodes with add-panorama-package, add-raw-model or build-container",
            )
        )
    seen: set[str] = set()
    for node in graph.declared:
        if not names.NODE_NAME.matches(node.name):
            found.append(
                located(
                    project,
                    path,
                    node.pointer + "/name",
                    f"invalid node name {node.name!r}",
                    f"it {names.NODE_NAME.describe()}",
                )
            )
        if node.name in seen:
            found.append(
                located(
                    project,
                    path,
                    node.pointer + "/name",
                    f"node {node.name!r} is defined twice",
                    "rename one of them",
                )
            )
            continue
        seen.add(node.name)
        if node.unresolved:
            found.append(
                located(
                    project,
                    path,
                    node.pointer + "/interface",
                    node.unresolved,
                    "fix the interface or add the package / interface it names",
                )
            )
    return found


def edge_problems(project: Project, graph: AppGraph, edge: Edge) -> list[Problem]:
    """Both ends exist, producer an output (or a parameter node), consumer an input, same type."""
    found: list[Problem] = []
    producer = _port_type(project, graph, edge, "producer", found)
    consumer = _port_type(project, graph, edge, "consumer", found)
    if producer and consumer and producer != consumer:
        found.append(
            located(
                project,
                graph.path,
                edge.pointer,
                f"edge connects a {producer} output to a {consumer} input",
                "connect ports of the same type",
            )
        )
    return found


def _port_type(
    project: Project, graph: AppGraph, edge: Edge, end: str, found: list[Problem]
) -> str | None:
    """The type at one end of an edge (None when unknown or wrong; problems appended)."""
    ptr = f"{edge.pointer}/{end}"
    ref = edge.producer if end == "producer" else edge.consumer
    name, dot, port = ref.partition(".")

    def add(message: str, hint: str) -> None:
        found.append(located(project, graph.path, ptr, message, hint))

    node: Node | None = graph.nodes.get(name)
    if node is None:
        add(f"node {name!r} does not exist", "name a node of nodeGraph.nodes")
        return None
    if node.kind == NodeKind.PARAMETER:  # its interface is its type
        if dot or end == "consumer":
            add(
                f"{name!r} is a {node.interface} value node: it has no ports and can only "
                "be a producer",
                'use "producer": "<value node name>"',
            )
            return None
        return node.interface
    if not dot:
        add(f"{ref!r} names no port", f'use "{name}.<port>"')
        return None
    if not node.resolved:
        return None
    direction, other = ("output", "input") if end == "producer" else ("input", "output")
    found_port = node.port(port, direction)
    if found_port is not None:
        return found_port.type
    what = f"an {direction} of {name!r}"
    if node.port(port, other) is not None:
        add(
            f"port {port!r} is an {other}, not {what}",
            "edges go from an output (producer) to an input (consumer)",
        )
    else:
        have = ", ".join(node.outputs if direction == "output" else node.inputs) or "none"
        add(f"port {port!r} is not {what} (it has: {have})", "use a port of the node's interface")
    return None


def override_problems(project: Project, graph: AppGraph, path: Path) -> list[Problem]:
    """A nodeGraphOverrides file: schema, each ``replace`` names a graph node, each ``with``
    names a node of the file or of the graph."""
    data, found = load_checked(project, path, schemas.OVERRIDES)
    if data is None:
        return found
    body = data["nodeGraphOverrides"]
    defined = {n["name"] for n in body.get("nodes", [])}
    for i, override in enumerate(body.get("nodeOverrides", [])):
        ptr = pointer("nodeGraphOverrides", "nodeOverrides", i)
        if override["replace"] not in graph.nodes:
            found.append(
                located(
                    project,
                    path,
                    ptr + "/replace",
                    f"replaces node {override['replace']!r}, which the graph does not define",
                    "name a node of graph.json",
                )
            )
        for j, item in enumerate(override["with"]):
            if item["name"] not in defined and item["name"] not in graph.nodes:
                found.append(
                    located(
                        project,
                        path,
                        f"{ptr}/with/{j}/name",
                        f"node {item['name']!r} is not defined",
                        "define it in this file's nodes",
                    )
                )
    return found
