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


def _limit_options(command: Any) -> Any:
    """run's and serve's --node-memory, --node-pids, --node-storage (the same definitions)."""
    from panorama_cli.commands._app_options import _LIMIT_OPTIONS, _apply

    return _apply(_LIMIT_OPTIONS, command)


def _public_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from panorama_cli.errors import UsageError
    from panorama_cli.localrun.serve.rtsp_out import check_public_url

    if value is None:
        return None
    try:
        return check_public_url(value)
    except UsageError as exc:
        raise click.BadParameter(f"{value!r}: rtsp://HOST[:PORT]") from exc


def _size(ctx: click.Context, param: click.Parameter, value: str) -> int:
    from panorama_cli.localrun.apps.limits import parse_size

    return parse_size(value, "--serve-memory")


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
    help="Where serve's web page, status, metrics and RTSP out are published: on HOST only "
    "(0.0.0.0: every address of the box; kubernetes: a Service, HOST used with "
    "--host-network). Everything but /healthz and /readyz asks for the login token.",
)
@click.option(
    "--rtsp-port", type=click.IntRange(0, 65535), default=8554, show_default=True,
    help="Host port of RTSP out (0: off), on the --listen host.",
)  # fmt: skip
@click.option(
    "--public-url", metavar="URL", callback=_public_url,
    help="RTSP out's address as clients reach it, rtsp://HOST[:PORT] (default: the "
    "published host and port; for 0.0.0.0 the host a client named).",
)  # fmt: skip
@click.option(
    "--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
    help="A name clients reach serve by, e.g. the box's DNS name (repeatable); addresses "
    "and localhost always pass (kubernetes: the Service's names are added).",
)  # fmt: skip
@click.option(
    "--host-network", is_flag=True,
    help="kubernetes: also publish on each box's --listen address with hostPort (fails Pod "
    "Security baseline; default: a ClusterIP Service only).",
)  # fmt: skip
@click.option(
    "--host-path-storage", is_flag=True,
    help="kubernetes: state, storage and camera files in hostPath folders of each box "
    "(camera files need it; fails Pod Security baseline; the folders must be writable by "
    "group 10001). Default: PersistentVolumeClaims (a DaemonSet: emptyDirs).",
)  # fmt: skip
@click.option(
    "--node-cpus", type=click.FloatRange(0, 1024), default=1.0, show_default=True,
    metavar="N", help="CPUs of each node container (0: no limit; at most the box's).",
)  # fmt: skip
@click.option(
    "--serve-memory", default="8G", show_default=True, metavar="SIZE", callback=_size,
    help="Memory of serve's container (it decodes the cameras and runs the models).",
)  # fmt: skip
@click.option(
    "--serve-cpus", type=click.FloatRange(0, 1024), default=2.0, show_default=True,
    metavar="N", help="CPUs of serve's container (0: no limit; at most the box's).",
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
@_limit_options
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
    public_url: str | None,
    allowed_hosts: tuple[str, ...],
    host_network: bool,
    host_path_storage: bool,
    node_cpus: float,
    serve_memory: int,
    serve_cpus: float,
    **kw: Any,
) -> None:
    """Export the application for a fleet: the appliance image (panorama-cli serve with the
    graph, overrides and models inside), one image per business-logic node (its own, with
    the SDK), and the target's files in DIR.

    An unchanged project builds nothing (images are tagged by content).
    """
    import dataclasses

    from panorama_cli import console
    from panorama_cli.commands._app_options import run_options
    from panorama_cli.fleet.app import SERVE_LIMITS, ExportOptions
    from panorama_cli.fleet.export import export_application
    from panorama_cli.fleet.model import ANY_HOST, SERVE_TOKEN_BUNDLE_FILE
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
        limits=options.limits,  # node containers: --node-memory, --node-pids, --node-storage
        listen_host=listen[0],
        public_url=public_url,
        allowed_hosts=allowed_hosts,
        host_network=host_network,
        host_path_storage=host_path_storage,
        node_cpus=node_cpus,
        serve_limits=dataclasses.replace(SERVE_LIMITS, memory=serve_memory),
        serve_cpus=serve_cpus,
    )
    result = export_application(project, options, export, on_log=console.info)
    built = f"built {len(result.built)} image(s)" if result.built else "no image rebuilt"
    console.info(
        f"serve's login token (HTTP: Authorization: Bearer, ?token=; RTSP out: user panorama) "
        f"is in {output_dir / SERVE_TOKEN_BUNDLE_FILE}"
    )
    if target == "greengrass":
        console.info(
            "deploy --target greengrass keeps it, the camera credentials, the control key and "
            "the node tokens in AWS Secrets Manager (panorama-cli/COMPONENT/TARGET); the recipe "
            "and the deployment hold none"
        )
    if target == "compose" and listen[0] not in ANY_HOST:
        console.warning(
            f"stack.yaml (Swarm) publishes on every address of the box: Swarm cannot bind "
            f"{listen[0]} alone; compose.yaml publishes on {listen[0]} only"
        )
    console.success(
        f"{target} bundle of {result.app.name} {result.app.version} in {output_dir} "
        f"({built}, {result.seconds:.1f} s)",
        NEXT[target].format(dir=output_dir),
    )
