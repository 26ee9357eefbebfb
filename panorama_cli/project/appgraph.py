"""The application graph as one value: nodes with their kind and typed ports, edges, values.

:meth:`AppGraph.load` reads ``graphs/<app>/graph.json`` (a ``nodeGraph`` manifest) and applies
zero or more ``nodeGraphOverrides`` files, as the Panorama service does at deployment:

* override ``packages`` and ``nodes`` are added;
* each ``nodeOverrides`` entry ``{"replace": X, "with": [A, B, ...]}`` takes node X out and puts
  A, B, ... in its place; every edge (and network routing rule) of X is repeated for each of
  them, or dropped when ``with`` is ``[]``;
* override ``edges`` and ``networkRoutingRules`` are added (a routing rule for the same node and
  container port replaces the graph's).

Each node gets a :class:`NodeKind`, the interface it resolves to, and EVERY port that interface
declares (connected or not). Nodes whose package is not in the project's ``packages/`` (camera
packages that live only in an AWS account, named by an override) are kept, marked
``is_local=False``; when such a node replaces another, it takes the kind and ports of the node it
replaces (that is all the graph says of it).

Formats: manifest schema ver_2021-01-01 (nodeGraph, nodeGraphOverrides, nodePackage). This
module reads only; it never prints and never changes a file.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from panorama_cli.errors import UserError
from panorama_cli.project import schemas
from panorama_cli.project.graph_build import GraphBuilder, local_packages, read_checked
from panorama_cli.project.graph_elements import (
    WELL_KNOWN,
    Edge,
    Node,
    PackageRef,
    Port,
    RoutingRule,
    typed_value,
)
from panorama_cli.project.manifests import load_json
from panorama_cli.project.node_kinds import NodeKind, PortType
from panorama_cli.project.problems import Problem
from panorama_cli.project.project import Package, Project

__all__ = [
    "WELL_KNOWN",
    "AppGraph",
    "Edge",
    "Node",
    "NodeKind",
    "PackageRef",
    "Port",
    "PortType",
    "RoutingRule",
    "find_override_files",
    "is_override_template",
    "local_packages",
    "placeholders",
    "refuse_template",
    "typed_value",
]

log = logging.getLogger(__name__)

OVERRIDES_FOLDER = "deployment_overrides"
_PLACEHOLDER = re.compile(r"\{\{?\s*[A-Za-z_][A-Za-z0-9_.]*\s*\}\}?")


class AppGraph:
    """An application graph with its overrides applied (see the module docstring).

    Attributes:
        path: graph.json.
        override_paths: the nodeGraphOverrides files applied, in order.
        nodes: by name, in graph order (a replaced node's replacements take its place; override
            nodes no ``with`` names come last).
        edges: graph edges (rewritten by nodeOverrides), then override edges.
        routing_rules: ``networkRoutingRules`` of the graph and overrides.
        inbound_ports: node -> the container ports its interface declares in
            ``network.inboundPorts``.
        packages: every package entry of the graph, then of the overrides (duplicates kept).
        declared: the nodes exactly as graph.json declares them (before overrides, duplicates
            kept) for checks that point into graph.json.
        issues: what the graph could be built in spite of (a node defined twice, an override
            naming a node that does not exist); :meth:`load` raises on the first one.
    """

    def __init__(
        self,
        path: Path,
        override_paths: tuple[Path, ...],
        nodes: dict[str, Node],
        edges: tuple[Edge, ...],
        routing_rules: tuple[RoutingRule, ...],
        packages: tuple[PackageRef, ...],
        declared: tuple[Node, ...],
        issues: tuple[Problem, ...],
    ):
        self.path = path
        self.override_paths = override_paths
        self.nodes: Mapping[str, Node] = MappingProxyType(nodes)
        self.edges = edges
        self.routing_rules = routing_rules
        self.packages = packages
        self.declared = declared
        self.issues = issues
        self.inbound_ports: Mapping[str, tuple[int, ...]] = MappingProxyType(
            {n.name: n.inbound_ports for n in nodes.values() if n.inbound_ports}
        )

    def __repr__(self) -> str:
        return f"AppGraph({self.path}, {len(self.nodes)} nodes, {len(self.edges)} edges)"

    # -- building ----------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        project: Project,
        overrides: Sequence[Path] = (),
        graph_path: Path | None = None,
    ) -> AppGraph:
        """Read graph.json (default: the project's) and apply ``overrides`` in order.

        Raises:
            UserError: a manifest that cannot be read, is malformed JSON (file:line:col), fails
                its schema (file#pointer), defines a node twice, or an override that replaces
                or uses a node that does not exist (file#pointer).
        """
        path = graph_path if graph_path is not None else project.graph_path
        data = read_checked(project, path, schemas.GRAPH)
        for p in overrides:
            refuse_template(project, p)
        loaded = [(p, read_checked(project, p, schemas.OVERRIDES)) for p in overrides]
        graph = cls.build(project, path, data, loaded)
        if graph.issues:
            first = graph.issues[0]
            raise UserError(f"{first.file}#{first.pointer}: {first.message}", hint=first.hint)
        return graph

    @classmethod
    def build(
        cls,
        project: Project,
        path: Path,
        data: dict[str, Any],
        overrides: Iterable[tuple[Path, dict[str, Any]]] = (),
        packages: Mapping[str, Package] | None = None,
    ) -> AppGraph:
        """Build from parsed, schema-valid manifests; never raises on what it can build
        around (see :attr:`issues`).

        Args:
            project: for messages and, when ``packages`` is None, the local packages.
            path: graph.json; data: its parsed content.
            overrides: (path, parsed nodeGraphOverrides) pairs, applied in order.
            packages: local packages by name (default: :func:`local_packages`).
        """
        builder = GraphBuilder(
            project, packages if packages is not None else local_packages(project)
        )
        overrides = list(overrides)
        parts = builder.build(path, data, overrides)
        return cls(path, tuple(p for p, _ in overrides), *parts)

    # -- queries -----------------------------------------------------------------------------
    def nodes_of(self, kind: NodeKind) -> list[Node]:
        """The nodes of ``kind``, in graph order."""
        return [n for n in self.nodes.values() if n.kind == kind]

    def edges_into(self, node: str, port: str | None = None) -> list[Edge]:
        """Edges whose consumer is ``node`` (and ``port`` when given)."""
        return [
            e
            for e in self.edges
            if e.consumer_node == node and (port is None or e.consumer_port == port)
        ]

    def edges_from(self, node: str, port: str | None = None) -> list[Edge]:
        """Edges whose producer is ``node`` (and ``port`` when given)."""
        return [
            e
            for e in self.edges
            if e.producer_node == node and (port is None or e.producer_port == port)
        ]

    def node(self, name: str) -> Node:
        """The node called ``name``.

        Raises:
            UserError: no such node (the message lists the nodes).
        """
        found = self.nodes.get(name)
        if found is None:
            raise UserError(
                f"{self.path.name} has no node {name!r} (nodes: {', '.join(self.nodes) or 'none'})",
                hint="name a node of the application graph",
            )
        return found

    def package_ref(self, name: str) -> PackageRef | None:
        """The first package entry named ``<account>::<name>``, or None."""
        return next((p for p in self.packages if p.name == name), None)


# -- override files --------------------------------------------------------------------------
def is_override_template(path: Path) -> str | None:
    """Why ``path`` is not a usable nodeGraphOverrides manifest, or None when it is one.

    Templates beside graph.json (``{placeholders}``, other JSON) are common in real apps.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return f"cannot read it ({exc})"
    try:
        data = load_json(path)
    except UserError:
        if _PLACEHOLDER.search(text):
            return "a template with {placeholders}, not JSON"
        return "not valid JSON"
    if not isinstance(data, dict) or "nodeGraphOverrides" not in data:
        return "not a nodeGraphOverrides manifest"
    found = placeholders(text)
    if found:
        return f"a template with {{placeholders}} ({', '.join(found)})"
    return None


def placeholders(text: str) -> list[str]:
    """The distinct ``{placeholders}`` of an override file's text, in order of appearance
    (e.g. ``["{YourAwsAccountId}", "{YourCameraName}"]``; ``{{name}}`` counts too). In valid
    JSON they can only occur inside strings, so a real manifest has none."""
    return list(dict.fromkeys(m.group(0) for m in _PLACEHOLDER.finditer(text)))


def refuse_template(project: Project, path: Path) -> None:
    """For a command that applies ``path`` as given (``run --override``, ``deploy
    --override``).

    Raises:
        UserError: ``path`` is an override template with ``{placeholders}``.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return  # the reader that follows reports it
    found = placeholders(text)
    if found:
        shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
        raise UserError(
            f"{project.rel(path)} is an override template ({shown})",
            hint="copy it, replace each {placeholder} with a real value, and pass the copy",
        )


def override_candidates(project: Project, graph_path: Path | None = None) -> list[Path]:
    """Every ``*.json`` beside graph.json (graph.json excepted), then in
    ``<root>/deployment_overrides/``, sorted in each folder; templates included."""
    path = graph_path if graph_path is not None else project.graph_path
    found = [p for p in sorted(path.parent.glob("*.json")) if p != path and p.is_file()]
    folder = project.root / OVERRIDES_FOLDER
    if folder.is_dir():
        found += [p for p in sorted(folder.glob("*.json")) if p.is_file()]
    return found


def find_override_files(
    project: Project, notes: list[str] | None = None, graph_path: Path | None = None
) -> list[Path]:
    """nodeGraphOverrides files of the application: ``*.json`` beside graph.json and in
    ``<app root>/deployment_overrides/``.

    Files that are not override manifests (templates with ``{placeholders}``, invalid JSON,
    other JSON) are skipped; for each, one line naming the file and why is appended to
    ``notes`` (when given) and logged at debug level.

    Raises:
        UserError: the project has no (or an ambiguous) graph.json.
    """
    found = []
    for path in override_candidates(project, graph_path):
        why = is_override_template(path)
        if why is None:
            found.append(path)
            continue
        line = f"{project.rel(path)}: skipped, {why}"
        log.debug(line)
        if notes is not None:
            notes.append(line)
    return found
