"""``remove-package``: take a node package, its nodes and their edges out of the graph."""

import click

from panorama_cli.commands._shared import locked
from panorama_cli.commands.remove_node import report


@click.command(
    "remove-package",
    epilog="""\b
Examples:
  panorama-cli remove-package --name people_counter
  panorama-cli remove-package --name 123456789012::people_counter --delete-folder""",
)
@click.option("--name", required=True, help="ACCOUNT::NAME as graph.json lists it, or NAME.")
@click.option(
    "--delete-folder",
    is_flag=True,
    help="Also delete the package's folder under packages/ (assets/ is left as it is).",
)
def cli(name: str, delete_folder: bool) -> None:
    """Remove a node package from graph.json with its nodes and their edges."""
    from panorama_cli.project.graph_changes import remove_package
    from panorama_cli.project.project import Project

    project = Project.discover()
    remove_package(project, name, dry_run=True)  # refused before the lock: no trace
    with locked(project):
        removed = remove_package(project, name, delete_folder=delete_folder)
    report(removed, project.rel(project.graph_path))
