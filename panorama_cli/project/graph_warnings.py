"""validate's warnings about how the application graph is wired (never errors).

* a business-logic node's media input has no edge: its ``video_in.get()`` would get nothing;
* no edge reaches a data sink: the application outputs no video;
* the graph has no edges at all: nodes are listed but nothing is connected.

Add edges with ``panorama-cli add-edge --producer NODE.PORT --consumer NODE.PORT``.
"""

from __future__ import annotations

import logging

from panorama_cli.project.appgraph import AppGraph
from panorama_cli.project.node_kinds import NodeKind
from panorama_cli.project.problems import WARNING, Problem
from panorama_cli.project.project import Project

log = logging.getLogger(__name__)

_ADD_EDGE = "panorama-cli add-edge --producer {producer} --consumer {consumer}"


def wiring_warnings(project: Project, graph: AppGraph) -> list[Problem]:
    """The wiring warnings of ``graph`` (built from graph.json; pointers into it)."""
    file = project.rel(graph.path)
    if not graph.nodes:
        return []
    if not graph.edges:
        return [
            Problem(
                file,
                "/nodeGraph/edges",
                "the graph has no edges: no node is connected to another",
                _ADD_EDGE.format(producer="<camera>.video_out", consumer="<code node>.video_in"),
                WARNING,
            )
        ]
    found: list[Problem] = []
    cameras = graph.nodes_of(NodeKind.CAMERA)
    camera = f"{cameras[0].name}.video_out" if cameras else "<camera>.video_out"
    for node in graph.nodes_of(NodeKind.BUSINESS_LOGIC):
        if not node.resolved:
            continue
        for port in node.inputs.values():
            if port.type == "media" and not graph.edges_into(node.name, port.name):
                found.append(
                    Problem(
                        file,
                        node.pointer,
                        f"media input {node.name}.{port.name} is not connected",
                        _ADD_EDGE.format(producer=camera, consumer=f"{node.name}.{port.name}"),
                        WARNING,
                    )
                )
    sinks = graph.nodes_of(NodeKind.DATA_SINK)
    if not sinks:
        found.append(
            Problem(
                file,
                "/nodeGraph/nodes",
                "no edge reaches a data sink: the graph has none, so no video is output",
                "panorama-cli add-panorama-package --type data_sink --name hdmi_output, "
                "then add-edge",
                WARNING,
            )
        )
    elif not any(graph.edges_into(sink.name) for sink in sinks):
        sink = sinks[0]
        sink_port = next(iter(sink.inputs), "video_in")
        found.append(
            Problem(
                file,
                sink.pointer,
                f"no edge reaches a data sink ({', '.join(s.name for s in sinks)})",
                _ADD_EDGE.format(
                    producer="<code node>.video_out", consumer=f"{sink.name}.{sink_port}"
                ),
                WARNING,
            )
        )
    log.debug("%d wiring warning(s)", len(found))
    return found
