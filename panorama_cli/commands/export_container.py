"""``export-container``: store an existing image as a container asset."""

import click

from panorama_cli import console
from panorama_cli.commands._shared import json_option, locked


@click.command(
    "export-container",
    epilog="""\b
Example:
  panorama-cli export-container --container-asset-name code_asset \\
      --container-image-uri my/app:1.0 --package-path packages/123456789012-app-1.0""",
)
@click.option("--container-asset-name", required=True, help="Asset name of the container.")
@click.option("--container-image-uri", required=True, help="Image in the local engine.")
@click.option(
    "--package-path", "--packages-path", required=True, help="The container package folder."
)
@json_option()
def cli(container_asset_name, container_image_uri, package_path, as_json) -> None:
    """Export IMAGE's filesystem as assets/<sha256>.tar.gz and register it."""
    from panorama_cli.build.containers import export_container
    from panorama_cli.commands.build_container import report
    from panorama_cli.project import names
    from panorama_cli.project.project import Project

    names.check(names.ASSET_NAME, container_asset_name)  # before the lock: refused = no change
    project = Project.discover()
    project.package_for_path(package_path)
    with locked(project), console.transfer(f"export {container_asset_name}") as (advance, _):
        result = export_container(
            project, package_path, container_asset_name, container_image_uri, progress=advance
        )
    report(project, result, container_asset_name, as_json)
