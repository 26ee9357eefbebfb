"""``export``: the application as a bundle for Docker Compose / Swarm, Kubernetes or AWS IoT
Greengrass v2 (every target runs serve next to the app)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from panorama_cli.commands._app_options import graph_options
from panorama_cli.commands.serve import _listen

_EPILOG = """\b
Examples:
  panorama-cli export --target compose --output-dir fleet/ --camera cam=vtest.avi
  panorama-cli export --target kubernetes --output-dir k8s/ --device-name jetson-01 \\
      --camera cam=rtsp://user:pw@10.0.0.5/stream --registry registry.example.com/vision
  panorama-cli export --target greengrass --output-dir gg/ --camera cam=rtsp://10.0.0.5/s
\b
Then: docker compose -f fleet/compose.yaml up -d, or panorama-cli deploy --target ...
"""
NEXT = {
    "compose": "panorama-cli deploy --target compose --bundle {dir}",
    "kubernetes": "panorama-cli deploy --target kubernetes --bundle {dir} [--context C]",
    "greengrass": "panorama-cli deploy --target greengrass --bundle {dir} --bucket B "
    "--target-arn ARN --wait",
}


def _selector(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict:
    found = {}
    for value in values:
        key, sep, label = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r}: KEY=VALUE, e.g. panorama-cli/site=lobby")
        found[key] = label
    return found


@click.command("export", epilog=_EPILOG)
@click.option(
    "--target",
    type=click.Choice(["compose", "kubernetes", "greengrass"]),
    required=True,
    help="The engine the bundle is for.",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    metavar="DIR",
    help="The bundle folder (made if missing; files of an earlier export are replaced).",
)
@graph_options
@click.option(
    "--listen",
    default="0.0.0.0:8765",
    show_default=True,
    metavar="HOST:PORT",
    callback=_listen,
    help="The host port serve's web page, health and metrics are published on.",
)
@click.option(
    "--rtsp-port", type=click.IntRange(0, 65535), default=8554, show_default=True,
    help="Host port of RTSP out (0: off).",
)  # fmt: skip
@click.option(
    "--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
    help="Where model nodes run (cuda: the box's GPUs are given to serve).",
)  # fmt: skip
@click.option(
    "--registry",
    metavar="PREFIX",
    help="Push the images there and pull them from there, e.g. 127.0.0.1:5000/vision "
    "(default: local names, no push).",
)
@click.option(
    "--image", "images", multiple=True, metavar="[NODE=]IMAGE",
    help="The image of every node, or of NODE (default: build-container's).",
)  # fmt: skip
@click.option(
    "--platform", type=click.Choice(["linux/amd64", "linux/arm64"]),
    help="The images' platform (arm64 for Jetson-class boxes; default: the nodes' images').",
)  # fmt: skip
@click.option(
    "--device-name", "device_names", multiple=True, metavar="NAME",
    help="kubernetes: a Deployment pinned to this node (kubernetes.io/hostname; repeatable).",
)  # fmt: skip
@click.option(
    "--node-selector", multiple=True, metavar="KEY=VALUE", callback=_selector,
    help="kubernetes: one DaemonSet over the nodes with these labels (repeatable).",
)  # fmt: skip
@click.option(
    "--runtime-base", metavar="IMAGE",
    help="The Debian base image of the runtime (default: panorama-cli base-image's).",
)  # fmt: skip
def cli(
    target: str,
    output_dir: Path,
    listen: tuple[str, int],
    rtsp_port: int,
    device: str,
    registry: str | None,
    images: tuple[str, ...],
    platform: str | None,
    device_names: tuple[str, ...],
    node_selector: dict[str, str],
    runtime_base: str | None,
    **kw: Any,
) -> None:
    """Export the application for a fleet: the appliance image (panorama-cli serve with the
    graph, overrides and models inside), one image per business-logic node (its own, with
    the SDK), and the target's files in DIR.

    An unchanged project builds nothing (images are tagged by content).
    """
    from panorama_cli import console
    from panorama_cli.commands._app_options import run_options
    from panorama_cli.fleet.app import ExportOptions
    from panorama_cli.fleet.export import export_application
    from panorama_cli.project.project import Project

    project = Project.discover()
    kw.update(
        python=None, aws_profile=None, writable_app=False, in_container=True,
        images=images, platform=platform, device=device, deps="none",
    )  # fmt: skip
    options = run_options(project, kw)
    export = ExportOptions(
        target=target,
        output_dir=output_dir.resolve(),
        listen_port=listen[1],
        rtsp_port=rtsp_port,
        device=device,
        registry=registry,
        platform=platform,
        device_names=device_names,
        node_selector=node_selector,
        runtime_base=runtime_base,
    )
    result = export_application(project, options, export, on_log=console.info)
    built = f"built {len(result.built)} image(s)" if result.built else "no image rebuilt"
    console.success(
        f"{target} bundle of {result.app.name} {result.app.version} in {output_dir} "
        f"({built}, {result.seconds:.1f} s)",
        NEXT[target].format(dir=output_dir),
    )
