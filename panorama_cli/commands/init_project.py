"""``init-project``: create a project skeleton."""

from pathlib import Path

import click

from panorama_cli import console


@click.command("init-project")
@click.option("--name", required=True, help="Project name (folder and graph name).")
@click.option("--account-id", help="Account id to use for this project's packages.")
def cli(name: str, account_id: str | None) -> None:
    """Create NAME/ with assets/, graphs/NAME/graph.json and packages/."""
    from panorama_cli.scaffold import init_project

    project = init_project(Path.cwd(), name, account_id)
    console.success(
        f"Successfully created the project skeleton at {project.root}",
        f"cd {name} && panorama-cli create-package --name <package>",
    )
