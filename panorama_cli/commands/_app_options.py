"""The options that say what to run and how, shared by ``run`` and ``serve`` (Click glue only)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


def _bindings(
    values: tuple[str, ...],
    flag: str,
    project: Any,
    graph: Path | None,
    overrides: tuple[Path, ...],
) -> dict[str, str]:
    from panorama_cli.localrun.plan import node_names, parse_bindings

    return parse_bindings(values, flag, lambda: node_names(project, flag, graph, overrides))


_OPTIONS: list[Callable[[Any], Any]] = [
    click.option(
        "--graph", type=click.Path(dir_okay=False, path_type=Path), help="graph.json to run."
    ),
    click.option(
        "--override",
        "overrides",
        multiple=True,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="A nodeGraphOverrides file (repeatable, applied in order).",
    ),
    click.option(
        "--camera",
        "cameras",
        multiple=True,
        metavar="NODE=SOURCE",
        help="Camera source: video file, image file/folder/glob, rtsp:// URL, /dev/videoN, "
        "gst:<pipeline>; NODE=@FILE reads it from FILE. A URL with a password belongs in "
        "@FILE or in the variable PANORAMA_CAMERA_<NODE> (NODE upper-cased, other characters "
        "than A-Z 0-9 as _; --camera wins over it), never on the command line (ps shows it).",
    ),
    click.option(
        "--param", "params", multiple=True, metavar="NODE=VALUE", help="Parameter node value."
    ),
    click.option(
        "--model", "models", multiple=True, metavar="NODE=PATH", help="Model file of a model node."
    ),
]

_PROCESS_OPTIONS: list[Callable[[Any], Any]] = [
    click.option("--python", metavar="PATH", help="Interpreter for python3 in the app."),
    click.option("--aws-profile", metavar="NAME", help="Pass AWS credentials of this profile."),
    click.option(
        "--aws-endpoint-url",
        metavar="URL",
        help="AWS_ENDPOINT_URL for the app's AWS clients (boto3 >= 1.28), e.g. a moto or "
        "LocalStack server on http://127.0.0.1:PORT; with test credentials and region "
        "unless --aws-profile.",
    ),
    click.option(
        "--writable-app",
        is_flag=True,
        help="Let the app write in /panorama (never reaching src/), working directory "
        "/panorama: not what the appliance does (read-only but for "
        "/opt/aws/panorama/{logs,storage}, /tmp).",
    ),
    click.option(
        "--in-container",
        is_flag=True,
        help="Run each business-logic node in its image (build-container's, or --image) via "
        "Docker.",
    ),
    click.option(
        "--image",
        "images",
        multiple=True,
        metavar="[NODE=]IMAGE",
        help="With --in-container: the image of every node, or of NODE (repeatable).",
    ),
    click.option(
        "--platform",
        type=click.Choice(["linux/amd64", "linux/arm64"]),
        help="With --in-container: the platform the images must be (arm64 runs under qemu).",
    ),
    click.option(
        "--device",
        type=click.Choice(["cpu", "cuda"]),
        default="cpu",
        show_default=True,
        help="Where model nodes run; cuda also gives the GPU to each app whose package asks "
        "for it (inferenceAccelerators/nvAccelerators) or that has no model node to run its "
        "models (--in-container: --gpus all on its container).",
    ),
    click.option(
        "--deps",
        type=click.Choice(["check", "venv", "none"]),
        default="check",
        show_default=True,
        help="Host mode: check that --python can import what each package's Dockerfile "
        "installs; venv: run each node in a cached virtualenv with it; none: no check.",
    ),
]


def _size(ctx: click.Context, param: click.Parameter, value: str) -> int:
    from panorama_cli.localrun.apps.limits import MIN_MEMORY, MIN_STORAGE, format_size, parse_size

    flag = f"--{str(param.name).replace('_', '-')}"
    try:
        size = parse_size(value, flag)
    except Exception as exc:  # noqa: BLE001 - UsageError: click's own message and exit 2
        raise click.BadParameter("a size such as 512M, 4G or 4GiB") from exc
    least = MIN_MEMORY if param.name == "node_memory" else MIN_STORAGE
    if size < least:
        raise click.BadParameter(f"at least {format_size(least)}")
    return size


_LIMIT_OPTIONS: list[Callable[[Any], Any]] = [
    click.option(
        "--node-memory",
        default="4G",
        show_default=True,
        metavar="SIZE",
        callback=_size,
        help="Memory of each business-logic node, all its processes together (512M, 4G, "
        "4GiB; powers of 1024). Past it the node is killed (serve restarts it).",
    ),
    click.option(
        "--node-pids",
        type=click.IntRange(min=8),
        default=512,
        show_default=True,
        metavar="N",
        help="Processes and threads of each business-logic node at once; a node that hits it "
        "is stopped.",
    ),
    click.option(
        "--node-storage",
        default="2G",
        show_default=True,
        metavar="SIZE",
        callback=_size,
        help="Disk of each business-logic node: its /opt/aws/panorama/storage and logs "
        "together (checked every second; no one file larger). Past it the node is stopped.",
    ),
]


def _endpoint(url: str | None, in_container: bool) -> str | None:
    from panorama_cli.localrun.apps.appliance import endpoint_url

    return None if url is None else endpoint_url(url, in_container=in_container)


def _apply(options: list[Callable[[Any], Any]], command: Any) -> Any:
    for option in reversed(options):
        command = option(command)
    return command


def graph_options(command: Any) -> Any:
    """--graph, --override, --camera, --param, --model."""
    return _apply(_OPTIONS, command)


def process_options(command: Any) -> Any:
    """--python, --aws-profile, --aws-endpoint-url, --writable-app, --in-container, --image,
    --platform, --device, --deps, --node-memory, --node-pids, --node-storage."""
    return _apply(_PROCESS_OPTIONS + _LIMIT_OPTIONS, command)


def run_options(project: Any, kw: dict[str, Any], **extra: Any) -> Any:
    """The :class:`~panorama_cli.localrun.plan.RunOptions` of the shared options in ``kw``
    (click's parameters), plus ``extra`` (frames, duration, ... of the command).

    Raises:
        UsageError: a binding names no such node, an --image is malformed (exit 2).
    """
    import os

    from panorama_cli import console
    from panorama_cli.localrun import RunOptions
    from panorama_cli.localrun.apps.container_images import parse_images
    from panorama_cli.localrun.apps.limits import NodeLimits
    from panorama_cli.localrun.camera_env import camera_environ, command_line_warning

    graph = kw["graph"].resolve() if kw["graph"] else None
    overrides = tuple(p.resolve() for p in kw["overrides"])
    options = RunOptions(
        graph=graph,
        overrides=list(overrides),
        cameras=_bindings(kw["cameras"], "--camera", project, graph, overrides),
        params=_bindings(kw["params"], "--param", project, graph, overrides),
        models={
            k: Path(v).resolve()
            for k, v in _bindings(kw["models"], "--model", project, graph, overrides).items()
        },
        python=kw["python"],
        aws_profile=kw["aws_profile"],
        aws_endpoint_url=_endpoint(kw.get("aws_endpoint_url"), kw["in_container"]),
        writable_app=kw["writable_app"],
        in_container=kw["in_container"],
        images=parse_images(kw["images"], in_container=kw["in_container"], platform=kw["platform"]),
        platform=kw["platform"],
        device=kw["device"],
        deps=kw["deps"],
        limits=NodeLimits(kw["node_memory"], kw["node_pids"], kw["node_storage"]),
        camera_env=camera_environ(os.environ),
        **extra,
    )
    warning = command_line_warning(kw["cameras"])
    if warning:
        console.warning(warning)
    return options
