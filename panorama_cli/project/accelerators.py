"""Which business-logic nodes get the GPU when an application runs with ``--device cuda``.

On the appliance a container reached the GPU when its package asked for it (a
``hardware_access`` requirement with ``inferenceAccelerators`` or ``nvAccelerators``), and
model nodes ran on it for every app. Here a node gets the GPU when its package asks for it, or
when the application graph has no model node (the app then runs its models itself:
onnxruntime-gpu, TensorRT, PyTorch in its container). ``run --in-container`` and the fleet
targets use the same answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from panorama_cli.errors import UserError
from panorama_cli.project.node_kinds import NodeKind

if TYPE_CHECKING:
    from panorama_cli.project.appgraph import AppGraph
    from panorama_cli.project.node_package import Package

log = logging.getLogger(__name__)

#: Why a node gets the GPU.
DECLARED = "its package asks for {kinds} (hardware_access)"
NO_MODEL_NODE = "the graph has no model node, so the app runs its models itself"


def gpu_reasons(
    graph: AppGraph, load: Callable[[Path], Package], nodes: Iterable[str] | None = None
) -> dict[str, str]:
    """Business-logic node -> why it gets the GPU (one of :data:`DECLARED`, formatted, or
    :data:`NO_MODEL_NODE`), for the nodes that get it, in graph order.

    Args:
        graph: the application graph (overrides applied).
        load: reads a package folder (``Project.load_package``).
        nodes: the business-logic nodes to consider (default: every local one in the graph).

    A package that cannot be read counts as asking for nothing (validate reports it).
    """
    wanted = set(nodes) if nodes is not None else None
    has_models = any(n.kind == NodeKind.MODEL for n in graph.nodes.values())
    reasons: dict[str, str] = {}
    for node in graph.nodes.values():
        if node.kind != NodeKind.BUSINESS_LOGIC or (wanted is not None and node.name not in wanted):
            continue
        kinds: list[str] = []
        if node.package_folder is not None:
            try:
                kinds = load(node.package_folder).accelerators()
            except UserError as exc:
                log.debug("node %s: package unreadable: %s", node.name, exc)
        if kinds:
            reasons[node.name] = DECLARED.format(kinds=", ".join(sorted(set(kinds))))
        elif not has_models:
            reasons[node.name] = NO_MODEL_NODE
    return reasons
