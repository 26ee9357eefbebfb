"""``add-panorama-package``: add an abstract camera or the HDMI data sink to the graph."""

import click

from panorama_cli import console
from panorama_cli.commands._shared import locked


@click.command(
    "add-panorama-package",
    epilog="""\b
Examples:
  panorama-cli add-panorama-package --type camera --name front_door_camera
  panorama-cli add-panorama-package --type data_sink --name hdmi_output""",
)
@click.option(
    "--type",
    "package_type",
    required=True,
    type=click.Choice(["camera", "data_sink", "datasink"], case_sensitive=False),
    callback=lambda _ctx, _param, value: "data_sink" if value == "datasink" else value,
    help="camera: abstract RTSP camera; data_sink (or datasink): HDMI output.",
)
@click.option("--name", required=True, help="Node name in graph.json.")
def cli(package_type: str, name: str) -> None:
    """Add panorama::abstract_rtsp_media_source or panorama::hdmi_data_sink and a node NAME."""
    from panorama_cli.build.scaffold import add_panorama_package, panorama_package_port
    from panorama_cli.project import names
    from panorama_cli.project.project import Project

    names.check(names.NODE_NAME, name)  # before the lock: a refused command changes nothing
    project = Project.discover()
    port = panorama_package_port(package_type)
    with locked(project):
        added = add_panorama_package(project, package_type, name)
    if added:
        console.success(
            f"Added {package_type} node {name} to {project.rel(project.graph_path)}",
            f"connect {name}.{port} with panorama-cli add-edge, then panorama-cli validate",
        )
    else:
        console.info(f"Node {name} is already in {project.rel(project.graph_path)}; nothing to do")
