"""``build-container``: build a container package's image and store it as an asset."""

import click

from panorama_cli import console
from panorama_cli.commands._shared import json_option, locked, show_warnings

#: What to do with a built image: try it as the device runs it, then ship it to a fleet.
NEXT_STEP = (
    "panorama-cli run --in-container, then panorama-cli export --target "
    "compose|kubernetes|greengrass"
)


@click.command(
    "build-container",
    epilog="""\b
Examples:
  panorama-cli build-container --container-asset-name code_asset \\
      --package-path packages/123456789012-people_counter-1.0
  panorama-cli build-container --container-asset-name code_asset \\
      --package-path packages/123456789012-people_counter-1.0 \\
      --platform linux/amd64 --base-image panorama-cli/base:panorama-amd64""",
)
@click.option("--container-asset-name", required=True, help="Asset name of the container.")
@click.option(
    "--package-path", "--packages-path", required=True, help="The container package folder."
)
@click.option(
    "--local-image",
    is_flag=True,
    hidden=True,
    help="Deprecated: builds always use local images (nothing is pulled).",
)
@click.option(
    "--base-image",
    metavar="IMAGE",
    help="A local image to build on: what FROM public.ecr.aws/panorama/panorama-application "
    "lines and ARG BASE_IMAGE name instead; default: the Dockerfile's, with Panorama images "
    "replaced by the one `panorama-cli base-image --flavor panorama` makes.",
)
@click.option("--platform", default="linux/arm64", show_default=True, help="Target platform.")
@click.option(
    "--build-arg",
    "build_args",
    multiple=True,
    metavar="KEY=VALUE",
    help="Dockerfile ARG (repeatable), e.g. BASE_IMAGE=my/base:1.",
)
@json_option()
def cli(
    container_asset_name, package_path, local_image, base_image, platform, build_args, as_json
) -> None:
    """Build the Dockerfile, export the image filesystem as assets/<sha256>.tar.gz."""
    from panorama_cli.build.containers import build_container, parse_build_args
    from panorama_cli.project.project import Project

    if local_image:
        console.warning("--local-image is deprecated and does nothing: builds never pull")
    from panorama_cli.project import names

    names.check(names.ASSET_NAME, container_asset_name)  # before the lock: refused = no change
    project = Project.discover()
    project.package_for_path(package_path)
    args = parse_build_args(build_args)
    if base_image:
        args["BASE_IMAGE"] = base_image
    with locked(project), console.transfer(f"export {container_asset_name}") as (advance, _):
        result = build_container(
            project,
            package_path,
            container_asset_name,
            platform=platform,
            build_args=args,
            local_image=local_image,
            on_log=console.log_line,
            progress=advance,
            on_note=console.info,
            base_image=base_image,
        )
    report(project, result, container_asset_name, as_json)


def report(project, result, asset_name: str, as_json: bool) -> None:
    """Success output shared with export-container."""
    reg = result.registration
    if as_json:
        console.emit_json(
            {
                "image": result.image,
                "assetUri": result.asset.uri,
                "descriptorUri": result.descriptor.uri,
                "size": result.asset.size,
                "interfaceAdded": reg.interface_added,
                "nodeAdded": reg.node_added,
                "superseded": reg.superseded,
                "unchanged": result.unchanged,
            }
        )
    if result.unchanged:
        console.success(
            f"Container asset {asset_name} of {reg.package} is current (same image): "
            f"assets/{result.asset.uri}; nothing exported, package.json unchanged",
            NEXT_STEP,
        )
        return
    action = "Replaced" if reg.replaced else "Added"
    console.success(
        f"{action} container asset {asset_name} of {reg.package}: "
        f"assets/{result.asset.uri} ({result.asset.size} bytes)",
        NEXT_STEP,
    )
    if reg.interface_added:
        console.info(
            f"added interface {reg.interface_added}"
            + (f" and graph node {reg.node_added}" if reg.node_added else "")
        )
    for uri in reg.superseded:
        console.info(f"removed superseded assets/{uri}")
    show_warnings(result.warnings)
