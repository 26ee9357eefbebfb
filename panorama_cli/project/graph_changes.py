"""add-edge, remove-edge, remove-node, remove-package: edits of graph.json with validate's checks.

Each function reads graph.json (schema-checked), changes the parsed document, checks the
result the way ``validate`` does where it matters (an added edge: both ends exist, the
producer is an output or a parameter node, the consumer an input, both of one type) and writes
graph.json once, atomically (:class:`panorama_cli.project.manifests.Transaction`). A failing call
changes nothing; with ``dry_run=True`` each only checks (what a command does before it takes
the project lock, so that a refused one leaves no trace). Edge format in graph.json::

    {"producer": "front_camera.video_out", "consumer": "code_node.video_in"}
    {"producer": "threshold", "consumer": "code_node.threshold"}     # parameter node
"""

from __future__ import annotations

import difflib
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from panorama_cli.errors import UserError
from panorama_cli.project import graph_edit, names
from panorama_cli.project.manifests import Transaction
from panorama_cli.project.project import Project

log = logging.getLogger(__name__)


def did_you_mean(word: str, choices: list[str]) -> str:
    """``"did you mean X?"`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean {close[0]}?" if close else ""


def _nodes(graph: dict[str, Any]) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = graph_edit.body(graph).setdefault("nodes", [])
    return nodes


def _edges(graph: dict[str, Any]) -> list[dict[str, Any]]:
    edges: list[dict[str, Any]] = graph_edit.body(graph).setdefault("edges", [])
    return edges


def _write(project: Project, graph: dict[str, Any]) -> None:
    tx = Transaction()
    tx.write_json(project.graph_path, graph)
    tx.commit()


def _check_new_edge(project: Project, graph: dict[str, Any], index: int) -> None:
    from panorama_cli.project.appgraph import AppGraph
    from panorama_cli.project.graph_checks import edge_problems

    built = AppGraph.build(project, project.graph_path, graph)
    edge = next(e for e in built.edges if e.pointer == f"/nodeGraph/edges/{index}")
    problems = edge_problems(project, built, edge)
    if problems:
        first = problems[0]
        name = first.message.split("'")[1] if first.message.startswith("node '") else ""
        hint = did_you_mean(name, list(built.nodes)) if name else ""
        raise UserError(first.message, hint=hint or first.hint)


def add_edge(project: Project, producer: str, consumer: str, *, dry_run: bool = False) -> bool:
    """Add the edge ``producer -> consumer`` to graph.json.

    Args:
        producer: ``node.port`` (an output), or ``node`` for a parameter node.
        consumer: ``node.port`` (an input).

    Returns:
        False when graph.json has that edge already (nothing written).

    Raises:
        UserError: a node or port that does not exist (with "did you mean"), an input used as
            producer or an output as consumer, a type mismatch (e.g. float32 into media).
    """
    graph = project.load_graph_for_update()
    edges = _edges(graph)
    if any(e.get("producer") == producer and e.get("consumer") == consumer for e in edges):
        return False
    edges.append({"producer": producer, "consumer": consumer})
    _check_new_edge(project, graph, len(edges) - 1)
    if dry_run:
        return True
    _write(project, graph)
    log.debug("edge %s -> %s added", producer, consumer)
    return True


def remove_edge(project: Project, producer: str, consumer: str, *, dry_run: bool = False) -> None:
    """Remove the edge ``producer -> consumer``.

    Raises:
        UserError: graph.json has no such edge (the edges it has are listed when few).
    """
    graph = project.load_graph_for_update()
    edges = _edges(graph)
    kept = [
        e for e in edges if not (e.get("producer") == producer and e.get("consumer") == consumer)
    ]
    if len(kept) == len(edges):
        have = [f"{e.get('producer')} -> {e.get('consumer')}" for e in edges]
        hint = did_you_mean(f"{producer} -> {consumer}", have) or (
            "edges: " + "; ".join(have[:6]) if have else "graph.json has no edges"
        )
        raise UserError(f"graph.json has no edge {producer} -> {consumer}", hint=hint)
    if dry_run:
        return
    edges[:] = kept
    _write(project, graph)


def _touches(edge: dict[str, Any], nodes: set[str]) -> bool:
    ends = (str(edge.get("producer", "")), str(edge.get("consumer", "")))
    return any(end.partition(".")[0] in nodes for end in ends)


@dataclass
class Removed:
    """What remove-node / remove-package removed."""

    nodes: list[str] = field(default_factory=list)
    edges: list[str] = field(default_factory=list)
    package: str | None = None
    folder: Path | None = None


def _drop_nodes(graph: dict[str, Any], doomed: set[str], removed: Removed) -> None:
    nodes, edges = _nodes(graph), _edges(graph)
    removed.nodes += [str(n.get("name")) for n in nodes if n.get("name") in doomed]
    removed.edges += [
        f"{e.get('producer')} -> {e.get('consumer')}" for e in edges if _touches(e, doomed)
    ]
    nodes[:] = [n for n in nodes if n.get("name") not in doomed]
    edges[:] = [e for e in edges if not _touches(e, doomed)]


def remove_node(project: Project, node: str, *, dry_run: bool = False) -> Removed:
    """Remove node ``node`` and every edge from or to it.

    Raises:
        UserError: no such node ("did you mean").
    """
    graph = project.load_graph_for_update()
    have = [str(n.get("name")) for n in _nodes(graph)]
    if node not in have:
        raise UserError(
            f"graph.json has no node {node!r}",
            hint=did_you_mean(node, have) or f"nodes: {', '.join(have) or 'none'}",
        )
    removed = Removed()
    _drop_nodes(graph, {node}, removed)
    if not dry_run:
        _write(project, graph)
    return removed


def remove_package(
    project: Project, package: str, *, delete_folder: bool = False, dry_run: bool = False
) -> Removed:
    """Remove node package ``package`` from graph.json with its nodes and their edges.

    Args:
        package: ``<account>::<name>`` as graph.json lists it, or just ``<name>``.
        delete_folder: also delete its folder under packages/ (only after graph.json is
            written; assets in assets/ stay).

    Raises:
        UserError: graph.json lists no such package ("did you mean"), or the name is ambiguous.
    """
    graph = project.load_graph_for_update()
    listed = graph_edit.body(graph).setdefault("packages", [])
    refs = [str(p.get("name")) for p in listed]
    matches = [r for r in refs if r == package or r.partition("::")[2] == package]
    if not matches:
        short = [r.partition("::")[2] for r in refs]
        raise UserError(
            f"graph.json lists no package {package!r}",
            hint=did_you_mean(package, refs + short) or f"packages: {', '.join(refs) or 'none'}",
        )
    if len(matches) > 1:
        raise UserError(
            f"{package!r} names several packages: {', '.join(matches)}",
            hint="give it as <account>::<name>",
        )
    ref = matches[0]
    removed = Removed(package=ref)
    if dry_run:
        return removed
    doomed = {
        str(n.get("name"))
        for n in _nodes(graph)
        if str(n.get("interface", "")).partition(".")[0] == ref
    }
    _drop_nodes(graph, doomed, removed)
    version = next(str(p.get("version")) for p in listed if p.get("name") == ref)
    listed[:] = [p for p in listed if p.get("name") != ref]
    tx = Transaction()
    trash: Path | None = None
    parts = names.split_package_ref(ref)
    if delete_folder and parts is not None:
        folder = project.packages_dir / names.package_folder_name(parts[0], parts[1], version)
        if folder.is_dir() and not folder.is_symlink():
            trash = folder.with_name(f".{folder.name}.removing")
            if trash.exists():
                shutil.rmtree(trash)
            tx.rename(folder, trash)
            removed.folder = folder
    tx.write_json(project.graph_path, graph)
    tx.commit()
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)
    return removed
