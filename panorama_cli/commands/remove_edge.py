"""``remove-edge``: disconnect two nodes of the application graph."""

import click

from panorama_cli import console
from panorama_cli.commands._shared import edge_options, locked


@click.command(
    "remove-edge",
    epilog="""\b
Example:
  panorama-cli remove-edge --producer threshold --consumer code_node.threshold""",
)
@edge_options
def cli(producer: str, consumer: str) -> None:
    """Remove the edge PRODUCER -> CONSUMER from graph.json."""
    from panorama_cli.project.graph_changes import remove_edge
    from panorama_cli.project.project import Project

    project = Project.discover()
    remove_edge(project, producer, consumer, dry_run=True)  # refused before the lock: no trace
    with locked(project):
        remove_edge(project, producer, consumer)
    console.success(
        f"Removed edge {producer} -> {consumer} from {project.rel(project.graph_path)}",
        "panorama-cli validate",
    )
