"""``add-dockerfile-stage``: add GStreamer / RTSP / KVS stages to a container package."""

import click

from panorama_cli import console
from panorama_cli.commands._shared import locked

STAGES = ("gstreamer", "rtsp", "kvs")


@click.command(
    "add-dockerfile-stage",
    epilog="""\b
Example:
  panorama-cli add-dockerfile-stage --package-path packages/123456789012-app-1.0 \\
      --stage rtsp""",
)
@click.option(
    "--package-path", "--packages-path", required=True, help="The container package folder."
)
@click.option(
    "--stage",
    "stages",
    multiple=True,
    required=True,
    type=click.Choice(STAGES, case_sensitive=False),
    help="Stage to add (repeatable); rtsp and kvs imply gstreamer.",
)
@click.option(
    "--force", is_flag=True, help="Rewrite the generated block even if it was edited by hand."
)
def cli(package_path, stages, force) -> None:
    """Add stages to the generated block of the package's Dockerfile (atomic; keeps your lines).

    The block sits between '# BEGIN panorama-cli stages: ...' and '# END panorama-cli stages
    ...'; everything outside it is left as it is.
    """
    from panorama_cli.build.dockerfile_stages import add_stages
    from panorama_cli.project.project import Project

    project = Project.discover()
    project.package_for_path(package_path)  # before the lock: a refused command changes nothing
    with locked(project):
        package = project.package_for_path(package_path)
        where = project.rel(package.folder)
        change = add_stages(
            package.folder, [s.lower() for s in stages], force=force, where=f"{where}/Dockerfile"
        )
    after = " ".join(change.after) or "none"
    if not change.changed:
        console.success(f"{where}/Dockerfile has the stages already ({after})")
        return
    before = " ".join(change.before) or "none"
    what = f"{before} → {after}" if change.before != change.after else f"{after} (regenerated)"
    console.success(
        f"Dockerfile stages of {where}: {what}",
        f"panorama-cli build-container --container-asset-name <asset> --package-path {where}",
    )
