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
  panorama-cli serve --camera front_door_camera=@front-door.url
      (the file holds rtsp://user:pw@10.0.0.5/stream: no password on the command line;
       PANORAMA_CAMERA_FRONT_DOOR_CAMERA=... works too; prints a login URL
       http://127.0.0.1:8765/?token=... on the terminal; the token is in
       .panorama-serve/auth/token; API clients send Authorization: Bearer <token>)
  panorama-cli serve --camera cam=vtest.avi --listen 0.0.0.0:8765 --tls-cert box.pem \
      --tls-key box.key --allowed-host box.example.com
  panorama-cli serve --camera cam=vtest.avi --listen 0.0.0.0:8765 --record recordings/
  panorama-cli serve --check                  (each camera once: reachable, size, fps, codec)
  panorama-cli serve --camera cam=/dev/video0 --systemd-unit > /etc/systemd/system/app.service
\b
Endpoints: /  /healthz  /readyz  /metrics  /api/status  /api/clips  /streams/<id>.mjpeg
(all but /healthz and /readyz need the token)
RTSP out: rtsp://panorama:<token>@HOST:8554/<stream_id>
State: .panorama-serve/{storage,logs}/<node>/, .panorama-serve/auth/token
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
    help="RTSP out of each HDMI stream (0: off); user panorama, the login token as password. "
    "Without PyGObject and gst-rtsp-server the default starts with it off (a warning); an "
    "explicit port refuses to start.",
)
@click.option(
    "--auth",
    type=click.Choice(["token", "none"]),
    default="token",
    show_default=True,
    help="token: every endpoint but /healthz and /readyz, and RTSP out, ask for the login "
    "token (STATE_DIR/auth/token). none: the page, status, metrics, clips, live video and "
    "RTSP out answer anyone who can reach --listen and --rtsp-port.",
)
@click.option(
    "--auth-token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Read the login token from FILE (a mounted secret) instead of STATE_DIR/auth/token.",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Serve HTTPS with this PEM certificate (chain); needs --tls-key.",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="The PEM private key of --tls-cert.",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="A name clients reach serve by (repeatable; *.example.com allowed); requests naming "
    "another Host get 400. Always allowed: the --listen host, localhost, IP addresses and, "
    "listening on all addresses, this machine's name.",
)
@click.option(
    "--public-url",
    metavar="URL",
    help="RTSP out's address as clients reach it, rtsp://HOST[:PORT] (a published or "
    "forwarded port): the page and /api/status give stream URLs under it. HOST 0.0.0.0: the "
    "host the client named. Default: the host the client named and --rtsp-port.",
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
@click.option(
    "--control-key",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="With --external-nodes: the bundle's control key (secrets/control.key); each node "
    "container proves who it is with a token derived from it.",
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
    control_key: Path | None,
    auth: str,
    auth_token_file: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    allowed_hosts: tuple[str, ...],
    public_url: str | None,
    **kw: Any,
) -> None:
    """Serve the application graph unattended, as the Panorama Appliance did: it never ends
    by itself; video files loop and cameras that drop are retried forever; a node that exits
    is restarted (backoff 1 s to 60 s); storage and logs last in the state folder.

    SIGTERM/SIGINT stop everything (exit 0); SIGHUP re-reads graph.json, the overrides and
    the parameters and restarts the nodes whose inputs changed.
    """
    from panorama_cli.project.project import Project

    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together (both or neither)")
    if auth_token_file is not None and auth == "none":
        raise click.UsageError("--auth-token-file is for --auth token")
    if public_url is not None:
        from panorama_cli.localrun.serve.rtsp_out import check_public_url

        public_url = check_public_url(public_url)
    project = Project.discover()
    options = run_options(project, kw)
    if systemd_unit:
        _print_unit(project, click.get_current_context(), state_dir)
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
        control_key=control_key.resolve() if control_key else None,  # k8s secrets are links
        auth=auth,
        auth_token_file=auth_token_file.resolve() if auth_token_file else None,
        tls_cert=tls_cert.resolve() if tls_cert else None,
        tls_key=tls_key.resolve() if tls_key else None,
        allowed_hosts=allowed_hosts,
        public_url=public_url,
        rtsp_required=_explicit(click.get_current_context(), "rtsp_port"),
    )
    with handle_sigterm():
        sys.exit(serve_application(project, options, serve))


def _print_unit(project: Any, ctx: click.Context, state_dir: Path | None) -> None:
    """Print the unit; camera sources with a password (``--camera`` values, and the
    ``PANORAMA_CAMERA_*`` variables set now) go to ``<state dir>/auth/cameras.env`` (0600),
    which the unit names: never into its ExecStart."""
    from panorama_cli import console
    from panorama_cli.localrun.camera_env import camera_environ, carries_secret, env_name
    from panorama_cli.localrun.serve import STOP_TIMEOUT_S
    from panorama_cli.localrun.serve.state_dir import DEFAULT_FOLDER
    from panorama_cli.localrun.serve.systemd import unit_text, write_environment_file

    environment = {
        name: "@" + os.path.abspath(value[1:]) if value.startswith("@") else value
        for name, value in camera_environ(os.environ).items()
    }
    hidden: set[str] = set()
    for binding in ctx.params.get("cameras") or ():
        node, _, value = binding.partition("=")
        if not value.startswith("@") and carries_secret(value):
            environment[env_name(node.strip())] = value
            hidden.add(node.strip())
    env_file = None
    if environment:
        folder = (state_dir or project.root / DEFAULT_FOLDER).resolve() / "auth"
        env_file = write_environment_file(folder, environment)
    argv = _program() + ["serve", *_args(ctx.params, hidden)]
    text = unit_text(
        argv, project.root, f"panorama-cli serve {project.root.name}", STOP_TIMEOUT_S, env_file
    )
    click.echo(text, nl=False)
    if env_file is not None:
        console.info(f"camera sources with credentials: {env_file} (0600; the unit reads it)")
    console.info(
        "install: save it as /etc/systemd/system/<name>.service, then "
        "`systemctl daemon-reload && systemctl enable --now <name>`"
    )


def _explicit(ctx: click.Context, name: str) -> bool:
    """Whether the option ``name`` was given (not its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source is not click.core.ParameterSource.DEFAULT


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


def _args(
    params: dict[str, Any], hidden_cameras: set[str] | frozenset[str] = frozenset()
) -> list[str]:
    """These options as serve's arguments, with paths made absolute (the unit runs in the
    project folder, not where the command was typed); the ``--camera`` of the nodes in
    ``hidden_cameras`` left out (their sources are in the environment file)."""
    args: list[str] = []
    paths = (
        ("graph", "--graph"),
        ("state_dir", "--state-dir"),
        ("record", "--record"),
        ("control_socket", "--control-socket"),
        ("control_key", "--control-key"),
        ("auth_token_file", "--auth-token-file"),
        ("tls_cert", "--tls-cert"),
        ("tls_key", "--tls-key"),
    )
    for key, flag in paths:
        if params.get(key):
            args += [flag, os.path.abspath(params[key])]
    if params.get("external_nodes"):
        args.append("--external-nodes")
    for value in params.get("overrides") or ():
        args += ["--override", os.path.abspath(value)]
    for key, flag in (("cameras", "--camera"), ("models", "--model"), ("params", "--param")):
        for binding in params.get(key) or ():
            node, _, value = binding.partition("=")
            if key == "cameras" and node.strip() in hidden_cameras:
                continue
            if value.startswith("@"):  # NODE=@FILE: the file's path, made absolute
                args += [flag, f"{node}=@{os.path.abspath(value[1:])}"]
                continue
            args += [flag, f"{node}={_absolute(value) if key != 'params' else value}"]
    host, port = params["listen"]
    args += ["--listen", f"{host}:{port}"]
    if params["rtsp_port"] != 8554:  # the default stays lenient (off when it cannot run)
        args += ["--rtsp-port", str(params["rtsp_port"])]
    args += ["--auth", params.get("auth") or "token"]
    for name in params.get("allowed_hosts") or ():
        args += ["--allowed-host", name]
    if params.get("public_url"):
        args += ["--public-url", params["public_url"]]
    args += ["--log-format", params["log_format"], "--device", params["device"]]
    args += ["--deps", params["deps"]]
    for key, flag in (
        ("python", "--python"),
        ("aws_profile", "--aws-profile"),
        ("aws_endpoint_url", "--aws-endpoint-url"),
    ):
        if params.get(key):
            args += [flag, params[key]]
    for key, flag in (("writable_app", "--writable-app"), ("in_container", "--in-container")):
        if params.get(key):
            args.append(flag)
    from panorama_cli.localrun.apps.limits import size_argument

    for key, flag in (("node_memory", "--node-memory"), ("node_storage", "--node-storage")):
        if params.get(key):
            args += [flag, size_argument(params[key])]
    if params.get("node_pids"):
        args += ["--node-pids", str(params["node_pids"])]
    for image in params.get("images") or ():
        args += ["--image", image]
    if params.get("platform"):
        args += ["--platform", params["platform"]]
    return args
