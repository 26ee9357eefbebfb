"""``serve``: run the application unattended, as the Panorama Appliance did."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from panorama_cli.commands._app_options import graph_options, process_options, run_options

_EPILOG = """\b
Examples:
  panorama-cli serve --camera front_door_camera=rtsp://user:pw@10.0.0.5/stream
  panorama-cli serve --camera cam=vtest.avi --listen 0.0.0.0:8765 --record recordings/
  panorama-cli serve --check                  (each camera once: reachable, size, fps, codec)
  panorama-cli serve --camera cam=/dev/video0 --systemd-unit > /etc/systemd/system/app.service
\b
Endpoints: /  /healthz  /readyz  /metrics  /api/status  /api/clips  /streams/<id>.mjpeg
RTSP out: rtsp://HOST:8554/<stream_id>   State: .panorama-serve/{storage,logs}/<node>/
"""


def _listen(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter("HOST:PORT, e.g. 127.0.0.1:8765 or 0.0.0.0:8765")
    return host.strip("[]") or "127.0.0.1", int(port)


@click.command("serve", epilog=_EPILOG)
@graph_options
@click.option(
    "--listen",
    default="127.0.0.1:8765",
    show_default=True,
    metavar="HOST:PORT",
    callback=_listen,
    help="Address of the web page, health, readiness, metrics and status endpoints.",
)
@click.option(
    "--rtsp-port",
    type=click.IntRange(0, 65535),
    default=8554,
    show_default=True,
    metavar="N",
    help="RTSP out of each HDMI stream (0: off).",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Storage and logs that last across restarts (default: .panorama-serve/).",
)
@click.option(
    "--record",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Also record each HDMI stream as H.264 mp4 segments (rotated, oldest deleted).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="serve's own log lines on stderr and in logs/serve.log.",
)
@click.option("--check", is_flag=True, help="Open every camera once, print what it is, exit.")
@click.option(
    "--systemd-unit", is_flag=True, help="Print a systemd unit that serves with these options."
)
@click.option(
    "--external-nodes",
    is_flag=True,
    help="Business-logic nodes run in containers an engine starts (export's bundles); "
    "they connect to the control socket. serve starts no process.",
)
@click.option(
    "--control-socket",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="Where the control socket is made (default: in the state folder's run/).",
)
@process_options
def cli(
    listen: tuple[str, int],
    rtsp_port: int,
    state_dir: Path | None,
    record: Path | None,
    log_format: str,
    check: bool,
    systemd_unit: bool,
    external_nodes: bool,
    control_socket: Path | None,
    **kw: Any,
) -> None:
    """Serve the application graph unattended, as the Panorama Appliance did: it never ends
    by itself; video files loop and cameras that drop are retried forever; a node that exits
    is restarted (backoff 1 s to 60 s); storage and logs last in the state folder.

    SIGTERM/SIGINT stop everything (exit 0); SIGHUP re-reads graph.json, the overrides and
    the parameters and restarts the nodes whose inputs changed.
    """
    from panorama_cli.project.project import Project

    project = Project.discover()
    options = run_options(project, kw)
    if systemd_unit:
        _print_unit(project, click.get_current_context())
        return
    if check:
        from panorama_cli import console
        from panorama_cli.localrun.serve.check import check_cameras

        lines = check_cameras(project, options)
        for line in lines or ["the graph has no camera node"]:
            console.emit_text(line)
        sys.exit(1 if any(": NOT reachable" in line for line in lines) else 0)
    from panorama_cli.interrupts import handle_sigterm
    from panorama_cli.localrun.serve import ServeOptions, serve_application

    serve = ServeOptions(
        listen=listen,
        rtsp_port=rtsp_port,
        state_dir=state_dir.resolve() if state_dir else None,
        record=record.resolve() if record else None,
        log_format=log_format,
        external_nodes=external_nodes,
        control_socket=control_socket.resolve() if control_socket else None,
    )
    with handle_sigterm():
        sys.exit(serve_application(project, options, serve))


def _print_unit(project: Any, ctx: click.Context) -> None:
    from panorama_cli import console
    from panorama_cli.localrun.serve import STOP_TIMEOUT_S
    from panorama_cli.localrun.serve.systemd import unit_text

    argv = _program() + ["serve", *_args(ctx.params)]
    text = unit_text(argv, project.root, f"panorama-cli serve {project.root.name}", STOP_TIMEOUT_S)
    click.echo(text, nl=False)
    console.info(
        "install: save it as /etc/systemd/system/<name>.service, then "
        "`systemctl daemon-reload && systemctl enable --now <name>`"
    )


def _program() -> list[str]:
    """How this panorama-cli was started, as absolute paths."""
    import shutil

    first = Path(sys.argv[0])
    if first.name == "__main__.py":
        return [sys.executable, "-m", "panorama_cli"]
    found = shutil.which(sys.argv[0]) if not first.is_absolute() else str(first)
    return [str(Path(found).resolve()) if found else str(first.resolve())]


def _absolute(value: str) -> str:
    """An existing local path made absolute (symbolic links kept); anything else as is."""
    return os.path.abspath(value) if Path(value).exists() else value


def _args(params: dict[str, Any]) -> list[str]:
    """These options as serve's arguments, with paths made absolute (the unit runs in the
    project folder, not where the command was typed)."""
    args: list[str] = []
    for key, flag in (("graph", "--graph"), ("state_dir", "--state-dir"), ("record", "--record")):
        if params.get(key):
            args += [flag, os.path.abspath(params[key])]
    for value in params.get("overrides") or ():
        args += ["--override", os.path.abspath(value)]
    for key, flag in (("cameras", "--camera"), ("models", "--model"), ("params", "--param")):
        for binding in params.get(key) or ():
            node, _, value = binding.partition("=")
            args += [flag, f"{node}={_absolute(value) if key != 'params' else value}"]
    host, port = params["listen"]
    args += ["--listen", f"{host}:{port}", "--rtsp-port", str(params["rtsp_port"])]
    args += ["--log-format", params["log_format"], "--device", params["device"]]
    args += ["--deps", params["deps"]]
    for key, flag in (("python", "--python"), ("aws_profile", "--aws-profile")):
        if params.get(key):
            args += [flag, params[key]]
    for key, flag in (("writable_app", "--writable-app"), ("in_container", "--in-container")):
        if params.get(key):
            args.append(flag)
    for image in params.get("images") or ():
        args += ["--image", image]
    if params.get("platform"):
        args += ["--platform", params["platform"]]
    return args
