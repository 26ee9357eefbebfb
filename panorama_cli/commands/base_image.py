"""``base-image``: build a local stand-in for the Panorama application base image."""

import click

from panorama_cli import console


@click.command(
    "base-image",
    epilog="""\b
Examples:
  panorama-cli base-image --flavor panorama    # linux/arm64, panorama-cli/base:panorama-arm64
  panorama-cli base-image --flavor panorama --platform linux/amd64
  panorama-cli base-image                      # debian: panorama-cli/base:bookworm-arm64
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
@click.option(
    "--flavor",
    default="debian",
    show_default=True,
    type=click.Choice(["debian", "panorama"]),
    help="panorama: the stand-in for public.ecr.aws/panorama/panorama-application that "
    "build-container uses for Dockerfiles FROM it (Debian bullseye, python3 3.9 also as "
    "python3.7/python3.8, pip, numpy 1.x, OpenCV's system libraries, CA certificates with "
    "this machine's own); debian: Debian bookworm with python3 and numpy.",
)
@click.option(
    "--tag", help="Image name [default: panorama-cli/base:bookworm-<arch> or :panorama-<arch>]."
)
@click.option("--force", is_flag=True, help="Rebuild even when a current image exists.")
def cli(platform: str, flavor: str, tag: str | None, force: bool) -> None:
    """Build a Debian base image (python3, numpy, /opt/aws/panorama, WORKDIR /panorama)
    locally, from this machine's Debian mirror, without any container registry."""
    from panorama_cli.build.base_image import default_tag, ensure_base_image

    image = ensure_base_image(platform, tag, flavor=flavor, force=force, on_log=console.info)
    state = "is current" if image.cached else "was built"
    if flavor == "panorama" and tag and tag != default_tag(platform, flavor):
        hint = f"panorama-cli build-container ... --base-image {image.tag}"
    elif flavor == "panorama":
        hint = (
            "panorama-cli build-container ... (Dockerfiles FROM "
            "public.ecr.aws/panorama/panorama-application build on this image)"
        )
    else:
        hint = f"panorama-cli build-container ... --base-image {image.tag}"
    console.success(f"{image.tag} ({platform}) {state}", hint)
