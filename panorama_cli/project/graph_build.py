"""Building an application graph: resolve each node's interface, then apply override files.

Internal to :mod:`panorama_cli.project.appgraph` (see there for the rules of nodeOverrides).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from panorama_cli.errors import UserError
from panorama_cli.project import names, schemas
from panorama_cli.project.graph_elements import (
    NO_PORTS,
    WELL_KNOWN,
    Edge,
    Node,
    PackageRef,
    Port,
    RoutingRule,
    declared_inbound_ports,
    frozen,
    ports,
    typed_value,
)
from panorama_cli.project.manifests import load_json, pointer
from panorama_cli.project.node_kinds import CATEGORY_KINDS, VALUE_TYPES, NodeKind
from panorama_cli.project.problems import Problem, located
from panorama_cli.project.project import Package, Project

log = logging.getLogger(__name__)


class GraphParts(NamedTuple):
    """What :class:`GraphBuilder` makes (the fields of an AppGraph)."""

    nodes: dict[str, Node]
    edges: tuple[Edge, ...]
    routing_rules: tuple[RoutingRule, ...]
    packages: tuple[PackageRef, ...]
    declared: tuple[Node, ...]
    issues: tuple[Problem, ...]


def local_packages(project: Project) -> dict[str, Package]:
    """The project's packages whose package.json parses, by package name (first folder wins)."""
    found: dict[str, Package] = {}
    for folder in project.package_folders():
        try:
            package = project.load_package(folder)
        except UserError as exc:
            log.debug("skipping package %s: %s", folder.name, exc)
            continue
        if package.name and package.name not in found:
            found[package.name] = package
    return found


def read_checked(project: Project, path: Path, kind: str) -> dict[str, Any]:
    data = load_json(path)
    problems = schemas.check(kind, data, project.rel(path))
    if problems:
        raise UserError(
            problems[0].line(), hint="fix it; `panorama-cli validate` lists every problem"
        )
    assert isinstance(data, dict)
    return data


@dataclass
class GraphBuilder:
    project: Project
    packages: Mapping[str, Package]
    refs: list[PackageRef] = field(default_factory=list)
    issues: list[Problem] = field(default_factory=list)

    def issue(self, path: Path, ptr: str, message: str, hint: str) -> None:
        self.issues.append(located(self.project, path, ptr, message, hint))

    def build(
        self, path: Path, data: dict[str, Any], overrides: list[tuple[Path, dict[str, Any]]]
    ) -> GraphParts:
        body = data["nodeGraph"]
        self.add_refs(path, "nodeGraph", body.get("packages", []))
        declared = tuple(
            self.node(path, pointer("nodeGraph", "nodes", i), raw)
            for i, raw in enumerate(body.get("nodes", []))
        )
        nodes = self.by_name(path, declared)
        edges = [
            Edge.parse(e["producer"], e["consumer"], path, pointer("nodeGraph", "edges", i))
            for i, e in enumerate(body.get("edges", []))
        ]
        rules = self.rules(path, "nodeGraph", body.get("networkRoutingRules", []))
        for opath, odata in overrides:
            nodes, edges, rules = self.apply(
                opath, odata["nodeGraphOverrides"], nodes, edges, rules
            )
        log.debug(
            "application graph %s: %d nodes, %d edges, %d override file(s)",
            self.project.rel(path),
            len(nodes),
            len(edges),
            len(overrides),
        )
        return GraphParts(
            nodes, tuple(edges), tuple(rules), tuple(self.refs), declared, tuple(self.issues)
        )

    def by_name(self, path: Path, declared: Iterable[Node]) -> dict[str, Node]:
        """``declared`` by name; a second node of one name is an issue and is left out."""
        nodes: dict[str, Node] = {}
        for node in declared:
            if node.name in nodes:
                self.issue(
                    path,
                    node.pointer + "/name",
                    f"node {node.name!r} is defined twice",
                    "rename one of them",
                )
                continue
            nodes[node.name] = node
        return nodes

    def add_refs(self, path: Path, top: str, entries: list[dict[str, Any]]) -> None:
        for i, entry in enumerate(entries):
            name, version = str(entry["name"]), str(entry["version"])
            account, package_name = names.split_package_ref(name) or ("", "")
            local = self.packages.get(package_name) if account != names.PANORAMA_ACCOUNT else None
            ptr = pointer(top, "packages", i)
            self.refs.append(PackageRef(name, version, account, package_name, local, path, ptr))

    def rules(self, path: Path, top: str, entries: list[dict[str, Any]]) -> list[RoutingRule]:
        return [
            RoutingRule(
                r["node"],
                int(r["containerPort"]),
                int(r["hostPort"]),
                r.get("decorator"),
                path,
                pointer(top, "networkRoutingRules", i),
            )
            for i, r in enumerate(entries)
        ]

    def node(self, path: Path, ptr: str, raw: dict[str, Any]) -> Node:
        """One node as declared, its interface resolved."""
        interface = str(raw["interface"])
        common: dict[str, Any] = {
            "name": str(raw["name"]),
            "interface": interface,
            "overridable": bool(raw.get("overridable", False)),
            "override_mandatory": bool(raw.get("overrideMandatory", False)),
            "decorator": raw.get("decorator"),
            "launch": raw.get("launch"),
            "source": path,
            "pointer": ptr,
        }
        if interface in VALUE_TYPES:
            return _node(
                common,
                kind=NodeKind.PARAMETER,
                value=typed_value(interface, raw.get("value")),
                resolved=True,
            )
        parts = names.split_interface_ref(interface)
        if parts is None:
            return _node(
                common,
                unresolved=f"interface {interface!r} is not <account>::<package>.<interface>",
            )
        account, package_name, interface_name = parts
        ref_name = f"{account}::{package_name}"
        ref = next((r for r in self.refs if r.name == ref_name), None)
        if ref is None:
            return _node(
                common,
                package=ref_name,
                interface_name=interface_name,
                unresolved=f"interface {interface} names package {ref_name}, "
                "which the graph does not list",
            )
        located: dict[str, Any] = {
            **common,
            "package": ref_name,
            "package_version": ref.version,
            "interface_name": interface_name,
        }
        if account == names.PANORAMA_ACCOUNT:
            return _well_known(located, ref_name, interface_name)
        package = ref.local
        if package is None:
            return _node(located)
        declared = package.interface(interface_name)
        if declared is None:
            have = ", ".join(str(i.get("name")) for i in package.interfaces()) or "none"
            return _node(
                located,
                kind=package.kind,
                is_local=True,
                package_folder=package.folder,
                unresolved=f"package {ref_name} defines no interface {interface_name!r} "
                f"(it has: {have})",
            )
        return _node(
            located,
            kind=CATEGORY_KINDS.get(str(declared.get("category")), package.kind),
            is_local=True,
            package_folder=package.folder,
            inputs=frozen(ports(declared.get("inputs"), "input")),
            outputs=frozen(ports(declared.get("outputs"), "output")),
            resolved=True,
            inbound_ports=declared_inbound_ports(declared),
        )

    # -- overrides ---------------------------------------------------------------------------
    def apply(
        self,
        path: Path,
        body: dict[str, Any],
        nodes: dict[str, Node],
        edges: list[Edge],
        rules: list[RoutingRule],
    ) -> tuple[dict[str, Node], list[Edge], list[RoutingRule]]:
        top = "nodeGraphOverrides"
        self.add_refs(path, top, body.get("packages", []))
        defined = self.by_name(
            path,
            (
                self.node(path, pointer(top, "nodes", i), raw)
                for i, raw in enumerate(body.get("nodes", []))
            ),
        )
        placed: set[str] = set()
        for i, override in enumerate(body.get("nodeOverrides", [])):
            ptr = pointer(top, "nodeOverrides", i)
            old_name = str(override["replace"])
            old = nodes.get(old_name)
            if old is None:
                self.issue(
                    path,
                    ptr + "/replace",
                    f"replaces node {old_name!r}, which the graph does not define",
                    "name a node of graph.json",
                )
                continue
            replacements: list[Node] = []
            for j, item in enumerate(override["with"]):
                name = str(item["name"])
                new = defined.get(name) or nodes.get(name)
                if new is None:
                    self.issue(
                        path,
                        f"{ptr}/with/{j}/name",
                        f"node {name!r} is not defined",
                        "define it in this file's nodes",
                    )
                    continue
                replacements.append(_standing_in(new, old))
                placed.add(name)
            log.debug(
                "%s: node %s replaced by %s",
                self.project.rel(path),
                old_name,
                [n.name for n in replacements] or "nothing",
            )
            nodes = _replace_node(nodes, old_name, replacements)
            edges = [
                e2
                for e in edges
                for e2 in (
                    [e.renamed(old_name, n.name) for n in replacements]
                    if old_name in (e.producer_node, e.consumer_node)
                    else [e]
                )
            ]
            rules = [
                r2
                for r in rules
                for r2 in (
                    [replace(r, node=n.name) for n in replacements] if r.node == old_name else [r]
                )
            ]
        for name, node in defined.items():
            if name not in placed and name not in nodes:
                nodes[name] = node
        edges = edges + [
            Edge.parse(e["producer"], e["consumer"], path, pointer(top, "edges", i))
            for i, e in enumerate(body.get("edges", []))
        ]
        for rule in self.rules(path, top, body.get("networkRoutingRules", [])):
            same = [
                k
                for k, r in enumerate(rules)
                if (r.node, r.container_port) == (rule.node, rule.container_port)
            ]
            if same:
                rules[same[0]] = rule
            else:
                rules.append(rule)
        return nodes, edges, rules


def _node(fields: Mapping[str, Any], **more: Any) -> Node:
    """A Node from ``fields`` and ``more``; what neither gives is that of a node whose
    interface is not resolved: kind unknown, no package, not local, no ports."""
    defaults: dict[str, Any] = {
        "kind": NodeKind.UNKNOWN,
        "package": None,
        "package_version": None,
        "interface_name": None,
        "is_local": False,
        "package_folder": None,
        "inputs": NO_PORTS,
        "outputs": NO_PORTS,
    }
    return Node(**{**defaults, **fields, **more})


def _well_known(located: dict[str, Any], ref_name: str, interface_name: str) -> Node:
    """A node whose package is one of Panorama's own (``panorama::...``)."""
    interfaces = WELL_KNOWN.get(ref_name)
    if interfaces is None:  # a Panorama package this tool does not know: accept it
        return _node(located)
    known = interfaces.get(interface_name)
    if known is None:
        return _node(
            located,
            unresolved=f"package {ref_name} has no interface {interface_name!r} "
            f"(it has {', '.join(interfaces)})",
        )
    return _node(
        located,
        kind=known.kind,
        inputs=frozen({n: Port(n, t, "input") for n, t in known.inputs}),
        outputs=frozen({n: Port(n, t, "output") for n, t in known.outputs}),
        resolved=True,
    )


def _standing_in(new: Node, old: Node) -> Node:
    """``new`` as the replacement of ``old``: a node whose package is not local and whose
    interface is unknown takes the kind and ports of the node it replaces."""
    changes: dict[str, Any] = {"replaces": old.name}
    if not new.is_local and not new.resolved:
        if new.kind == NodeKind.UNKNOWN:
            changes["kind"] = old.kind
        changes["inputs"] = old.inputs
        changes["outputs"] = old.outputs
    return replace(new, **changes)


def _replace_node(nodes: dict[str, Node], old: str, replacements: list[Node]) -> dict[str, Node]:
    result: dict[str, Node] = {}
    for name, node in nodes.items():
        if name == old:
            for new in replacements:
                result[new.name] = new
        elif name not in {n.name for n in replacements}:
            result[name] = node
    return result
