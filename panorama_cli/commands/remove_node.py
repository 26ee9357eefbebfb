"""``remove-node``: take a node and its edges out of the application graph."""

import click

from panorama_cli import console
from panorama_cli.commands._shared import locked


def report(removed, graph: str) -> None:
    if removed.edges:
        console.info(f"edges removed: {'; '.join(removed.edges)}")
    console.success(
        f"Removed {', '.join(filter(None, [removed.package, *removed.nodes]))} from {graph}"
        + (f" and deleted {removed.folder.name}/" if removed.folder else ""),
        "panorama-cli validate",
    )


@click.command(
    "remove-node",
    epilog="""\b
Example:
  panorama-cli remove-node --name front_camera""",
)
@click.option("--name", required=True, help="The node's name in graph.json.")
def cli(name: str) -> None:
    """Remove node NAME and every edge from or to it from graph.json."""
    from panorama_cli.project import names
    from panorama_cli.project.graph_changes import remove_node
    from panorama_cli.project.project import Project

    names.check(names.NODE_NAME, name)  # before the lock: a refused command changes nothing
    project = Project.discover()
    remove_node(project, name, dry_run=True)  # refused before the lock: no trace
    with locked(project):
        removed = remove_node(project, name)
    report(removed, project.rel(project.graph_path))
