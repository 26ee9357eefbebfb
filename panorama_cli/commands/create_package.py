"""``create-package``: add a node package to the project."""

import click

from panorama_cli import console
from panorama_cli.commands._shared import account_id as resolve_account
from panorama_cli.commands._shared import locked

TYPES = ("Container", "Model", "Camera", "Datasink")


@click.command(
    "create-package",
    epilog="""\b
Examples:
  panorama-cli create-package --name people_counter
  panorama-cli create-package --name people_counter --gstreamer --rtsp
  panorama-cli create-package --name detector --type Model""",
)
@click.option("--name", required=True, help="Package name.")
@click.option(
    "--type",
    "package_type",
    type=click.Choice([*TYPES, "data_sink"], case_sensitive=False),
    help="Package type (default Container); data_sink is Datasink.",
)
@click.option(
    "--version", default="1.0", show_default=True, help="Package version <major>.<minor>."
)
@click.option("--account-id", help="Account id (default: PANORAMA_ACCOUNT_ID, graph.json, STS).")
@click.option(
    "--no-backpack",
    is_flag=True,
    help="Container: no backpack copy in src/backpack/ (and the plain starter app).",
)
@click.option(
    "--gstreamer",
    is_flag=True,
    help="Container: Dockerfile stage with GStreamer, PyGObject, OpenCV.",
)
@click.option(
    "--rtsp", is_flag=True, help="Container: gst-rtsp-server stage (implies --gstreamer)."
)
@click.option(
    "--kvs",
    is_flag=True,
    help="Container: Kinesis Video Streams kvssink stage (implies --gstreamer).",
)
@click.option("-camera", "legacy_camera", is_flag=True, hidden=True, help="Legacy: --type Camera.")
@click.option("-model", "legacy_model", is_flag=True, hidden=True, help="Legacy: --type Model.")
@click.pass_context
def cli(
    ctx,
    name,
    package_type,
    version,
    account_id,
    no_backpack,
    gstreamer,
    rtsp,
    kvs,
    legacy_camera,
    legacy_model,
) -> None:
    """Create packages/<account>-NAME-VERSION and list it in graph.json."""
    from panorama_cli.build.scaffold import create_package
    from panorama_cli.project.project import Project

    if legacy_camera and legacy_model:
        raise click.UsageError("-camera and -model exclude each other")
    legacy = "Camera" if legacy_camera else "Model" if legacy_model else None
    if legacy and package_type and package_type.lower() != legacy.lower():
        raise click.UsageError(f"--type {package_type} contradicts the legacy switch")
    wanted = (package_type or legacy or "Container").lower().replace("_", "")
    chosen = next(t for t in TYPES if t.lower() == wanted)
    stages = tuple(s for s, on in (("gstreamer", gstreamer), ("rtsp", rtsp), ("kvs", kvs)) if on)
    if chosen != "Container" and (stages or no_backpack):
        raise click.UsageError("--no-backpack, --gstreamer, --rtsp and --kvs need --type Container")
    from panorama_cli.project import names

    names.check(names.PACKAGE_NAME, name)  # before the lock: a refused command changes nothing
    names.check(names.PACKAGE_VERSION, version)
    project = Project.discover()
    account = resolve_account(ctx, account_id, project)
    with locked(project):
        created = create_package(
            project,
            name,
            account,
            package_type=chosen,
            version=version,
            backpack=not no_backpack,
            stages=stages,
        )
    where = project.rel(created.folder)
    next_step = {
        "Container": f"write your code in {where}/src, then panorama-cli build-container "
        f"--container-asset-name {name}_code --package-path {where}",
        "Model": f"fill in {where}/descriptor.json, then panorama-cli add-raw-model "
        f"--model-asset-name {name}_model --model-local-path <model.tar.gz> "
        f"--descriptor-path {where}/descriptor.json --packages-path {where}",
    }.get(chosen, "connect its node with panorama-cli add-edge, then panorama-cli validate")
    console.success(
        f"Created {chosen} package {created.package_ref} {version} in {where}", next_step
    )
