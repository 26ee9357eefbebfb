"""``update-backpack``: refresh the backpack copy in a container package's src/backpack/."""

import click

from panorama_cli import console
from panorama_cli.commands._shared import json_option, locked


@click.command(
    "update-backpack",
    epilog="""\b
Example:
  panorama-cli update-backpack --package-path packages/123456789012-app-1.0""",
)
@click.option(
    "--package-path", "--packages-path", required=True, help="The container package folder."
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace a copy that was edited after injection (or has no INJECTED.json stamp).",
)
@json_option()
def cli(package_path, force, as_json) -> None:
    """Replace src/backpack/ with the backpack panorama-cli ships (atomic; no-op when current)."""
    from panorama_cli.project.backpack_injection import update_backpack
    from panorama_cli.project.project import Project

    project = Project.discover()
    project.package_for_path(package_path)  # before the lock: a refused command changes nothing
    with locked(project):
        package = project.package_for_path(package_path)
        result = update_backpack(package.folder, force=force)
    where = project.rel(package.folder)
    old = result.old.label if result.old else "none"
    if as_json:
        console.emit_json(
            {"package": where, "old": old, "new": result.new.label, "changed": result.changed}
        )
    next_step = (
        f"panorama-cli build-container --container-asset-name <asset> --package-path {where}"
    )
    if result.changed:
        console.success(
            f"Updated backpack in {project.rel(result.folder)}: {old} → {result.new.label}",
            next_step,
        )
    else:
        console.success(f"backpack in {project.rel(result.folder)} is current ({old})")
