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
        "gst:<pipeline>.",
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
        help="Where model nodes run; cuda with --in-container also passes the GPUs to the app.",
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


def _apply(options: list[Callable[[Any], Any]], command: Any) -> Any:
    for option in reversed(options):
        command = option(command)
    return command


def graph_options(command: Any) -> Any:
    """--graph, --override, --camera, --param, --model."""
    return _apply(_OPTIONS, command)


def process_options(command: Any) -> Any:
    """--python, --aws-profile, --writable-app, --in-container, --image, --platform,
    --device, --deps."""
    return _apply(_PROCESS_OPTIONS, command)


def run_options(project: Any, kw: dict[str, Any], **extra: Any) -> Any:
    """The :class:`~panorama_cli.localrun.plan.RunOptions` of the shared options in ``kw``
    (click's parameters), plus ``extra`` (frames, duration, ... of the command).

    Raises:
        UsageError: a binding names no such node, an --image is malformed (exit 2).
    """
    from panorama_cli.localrun import RunOptions
    from panorama_cli.localrun.apps.container_images import parse_images

    graph = kw["graph"].resolve() if kw["graph"] else None
    overrides = tuple(p.resolve() for p in kw["overrides"])
    return RunOptions(
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
        writable_app=kw["writable_app"],
        in_container=kw["in_container"],
        images=parse_images(kw["images"], in_container=kw["in_container"], platform=kw["platform"]),
        platform=kw["platform"],
        device=kw["device"],
        deps=kw["deps"],
        **extra,
    )
