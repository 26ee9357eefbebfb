"""``add-edge``: connect two nodes of the application graph."""

import click

from panorama_cli import console
from panorama_cli.commands._shared import edge_options, locked


@click.command(
    "add-edge",
    epilog="""\b
Examples:
  panorama-cli add-edge --producer front_camera.video_out --consumer code_node.video_in
  panorama-cli add-edge --producer code_node.video_out --consumer hdmi_output.video_in
  panorama-cli add-edge --producer threshold --consumer code_node.threshold""",
)
@edge_options
def cli(producer: str, consumer: str) -> None:
    """Add an edge PRODUCER -> CONSUMER to graph.json (checked as validate checks edges)."""
    from panorama_cli.project.graph_changes import add_edge
    from panorama_cli.project.project import Project

    project = Project.discover()
    add_edge(project, producer, consumer, dry_run=True)  # refused before the lock: no trace
    with locked(project):
        added = add_edge(project, producer, consumer)
    graph = project.rel(project.graph_path)
    if added:
        console.success(f"Added edge {producer} -> {consumer} to {graph}", "panorama-cli validate")
    else:
        console.info(f"{graph} has edge {producer} -> {consumer} already; nothing to do")
