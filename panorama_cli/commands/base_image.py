"""``base-image``: build the local stand-in for the Panorama application base image."""

import click

from panorama_cli import console


@click.command(
    "base-image",
    epilog="""\b
Examples:
  panorama-cli base-image                      # linux/arm64, panorama-cli/base:bookworm-arm64
  panorama-cli base-image --platform linux/amd64
  panorama-cli build-container --container-asset-name code_asset \\
      --package-path packages/123456789012-app-1.0 --base-image panorama-cli/base:bookworm-arm64""",
)
@click.option(
    "--platform",
    default="linux/arm64",
    show_default=True,
    type=click.Choice(["linux/arm64", "linux/amd64"]),
    help="Platform of the image (linux/arm64 is the Panorama Appliance).",
)
@click.option("--tag", help="Image name [default: panorama-cli/base:bookworm-<arch>].")
@click.option("--force", is_flag=True, help="Rebuild even when a current image exists.")
def cli(platform: str, tag: str | None, force: bool) -> None:
    """Build a Debian base image (python3, numpy, /opt/aws/panorama, WORKDIR /panorama)
    locally, from this machine's Debian mirror, without any container registry."""
    from panorama_cli.build.base_image import ensure_base_image

    image = ensure_base_image(platform, tag, force=force, on_log=console.info)
    state = "is current" if image.cached else "was built"
    console.success(
        f"{image.tag} ({platform}) {state}",
        "panorama-cli build-container ... (it uses this image when the Dockerfile's default "
        f"base is not here; or pass --base-image {image.tag})",
    )
