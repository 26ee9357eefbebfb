"""Edits of an application graph (the parsed graph.json), shared by the commands.

All functions change the dict in place and return whether anything changed; the caller
writes graph.json once, atomically, through a :class:`panorama_cli.project.manifests.Transaction`.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def body(graph: dict[str, Any]) -> dict[str, Any]:
    """The ``nodeGraph`` object."""
    found: dict[str, Any] = graph["nodeGraph"]
    return found


def add_package(graph: dict[str, Any], name: str, version: str) -> bool:
    """List package ``name`` (``<account>::<package>``) ``version`` unless it is listed already."""
    packages = body(graph).setdefault("packages", [])
    if any(p.get("name") == name for p in packages):
        return False
    packages.append({"name": name, "version": version})
    return True


def find_node(graph: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The node called ``name``, or None."""
    return next((n for n in body(graph).get("nodes", []) if n.get("name") == name), None)


def nodes_using(graph: dict[str, Any], interface: str) -> list[dict[str, Any]]:
    """Nodes whose interface is ``interface`` (``<account>::<package>.<interface>``)."""
    return [n for n in body(graph).get("nodes", []) if n.get("interface") == interface]


def add_node(graph: dict[str, Any], node: dict[str, Any]) -> bool:
    """Append ``node`` unless a node of that name exists already."""
    if find_node(graph, node["name"]) is not None:
        return False
    body(graph).setdefault("nodes", []).append(node)
    return True
