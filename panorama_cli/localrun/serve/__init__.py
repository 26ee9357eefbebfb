"""``panorama-cli serve``: the Panorama Appliance, in software (issue 17).

The same runtime as ``run`` (:mod:`panorama_cli.localrun.engine`) with an appliance's
policies (:mod:`.runtime`): video files loop and live cameras are retried forever
(:mod:`..frames.reconnect`); a node that exits is restarted with backoff (:mod:`.policy`,
:mod:`.keeper`); storage and logs last in the state folder (:mod:`.state_dir`); HDMI goes to a
live view, RTSP out and an optional segmented recording (:mod:`.sinks`); HTTP health,
readiness, Prometheus metrics, status and a web page (:mod:`.http`); SIGHUP reloads.

Python API::

    from panorama_cli.localrun.serve import ServeOptions, serve_application
    serve_application(project, run_options, ServeOptions(listen=("127.0.0.1", 8765)))
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panorama_cli.localrun.plan import RunOptions
from panorama_cli.localrun.serve.logs import LOGGER

log = logging.getLogger(LOGGER)

#: Seconds systemd waits for serve's stop (the ladder: 2 s SIGINT + 2 s SIGTERM per node, run
#: in parallel, then containers and sinks) before it kills.
STOP_TIMEOUT_S = 30


@dataclass
class ServeOptions:
    """serve's own knobs (the CLI flags beyond run's).

    Attributes:
        listen: (host, port) of the HTTP endpoints (port 0: any free port).
        rtsp_port: RTSP out port (0: off).
        state_dir: the state folder (None: ``<project>/.panorama-serve``).
        record: ``--record`` folder (segmented H.264 mp4 per HDMI stream), or None.
        log_format: ``"text"`` or ``"json"``.
        external_nodes: business-logic nodes run in containers an engine starts (a fleet
            bundle, :mod:`panorama_cli.fleet`) and connect to the control socket; serve
            starts no process (:mod:`.external`).
        control_socket: the control socket's path (None: in the state folder's ``run/``).
        control_key: with ``external_nodes``, the file holding the key each node's token is
            derived from (the bundle's ``secrets/control.key``; required there).
        auth: ``"token"`` (every endpoint but /healthz and /readyz, and RTSP out, ask for the
            login token: :mod:`.auth`) or ``"none"`` (anyone who reaches them).
        auth_token_file: with ``auth="token"``, a file holding the token (a mounted secret);
            None: ``<state-dir>/auth/token``, made on the first start.
        tls_cert, tls_key: PEM certificate and key: HTTPS (both or neither).
        allowed_hosts: names a request's Host may give beyond the listen host, localhost
            and the machine's name (``--allowed-host``).
        public_url: RTSP out's base URL as clients reach it (``rtsp://HOST[:PORT]``; HOST
            ``0.0.0.0``: the host a client named); None: the host a client named and
            ``rtsp_port``.
        rtsp_required: RTSP out was asked for explicitly: its missing dependencies stop serve
            (otherwise serve starts with RTSP out off and one warning).
    """

    listen: tuple[str, int] = ("127.0.0.1", 8765)
    rtsp_port: int = 8554
    state_dir: Path | None = None
    record: Path | None = None
    log_format: str = "text"
    external_nodes: bool = False
    control_socket: Path | None = None
    control_key: Path | None = None
    auth: str = "token"
    auth_token_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    allowed_hosts: tuple[str, ...] = ()
    rtsp_required: bool = False
    public_url: str | None = None


def serve_options_for_run(options: RunOptions, run_dir: Path) -> RunOptions:
    """run's options as serve uses them: real time, no end, the state folder's run/."""
    return dataclasses.replace(
        options, output_dir=run_dir, fast=False, loop=True, frames=None, duration=None
    )


def _notify(status: Any) -> Callable[[str, dict[str, Any]], None]:
    def notify(event: str, data: dict[str, Any]) -> None:
        if event == "note":
            log.info("%s", data["text"])
        elif event == "output":
            log.info("%s", data["line"], extra={"node": data["node"]})
        elif event == "started":
            log.info("nodes started: %s", ", ".join(data["nodes"]), extra={"event": "started"})

    return notify


def serve_application(
    project: Any,
    options: RunOptions,
    serve: ServeOptions,
    on_ready: Callable[[str], None] | None = None,
) -> int:
    """Serve the project's application graph until SIGINT/SIGTERM (see the module docstring).

    Args:
        project: the project.
        options: run's options (graph, overrides, cameras, parameters, models, ...).
        serve: serve's options.
        on_ready: called with the HTTP base URL once the endpoints answer.

    Returns:
        0 (serve stopped as asked).

    Raises:
        UserError / UsageError: bad input at start (an unknown node, a port in use, a state
            folder that cannot be written, a camera file that does not exist, a model that
            does not load); nothing an app or a camera does later raises.
    """
    from panorama_cli.localrun.serve import logs
    from panorama_cli.localrun.serve.state_dir import DEFAULT_FOLDER, open_state_dir

    state = open_state_dir(serve.state_dir or project.root / DEFAULT_FOLDER, serve.record)
    handlers = logs.configure(state.serve_log, serve.log_format)
    try:
        # partial clips of apps killed with serve (external nodes may still be writing)
        for note in state.settle_clips(idle_s=60.0 if serve.external_nodes else 0.0):
            log.info("%s", note)
        return _serve(project, serve_options_for_run(options, state.run_dir), serve, state,
                      on_ready)  # fmt: skip
    finally:
        logs.unconfigure(handlers)
        state.release()


def _serve(
    project: Any, options: RunOptions, serve: ServeOptions, state: Any, on_ready: Any
) -> int:
    from panorama_cli.interrupts import hangup_calls
    from panorama_cli.localrun.apps.deps import prepare
    from panorama_cli.localrun.apps.supervisor import apps_get_default_sigint
    from panorama_cli.localrun.plan import build_plan
    from panorama_cli.localrun.serve.hardening import raise_nofile
    from panorama_cli.localrun.serve.http import HttpServer
    from panorama_cli.localrun.serve.metrics import ModelLatency
    from panorama_cli.localrun.serve.status import ServeOutputs, ServeStatus

    t0 = time.monotonic()
    plan = build_plan(project, options)  # an unknown node, a bad value: before anything
    key = _control_key(serve)
    host, port = serve.listen
    raise_nofile()
    token, where = _token(serve, state)
    tls = (serve.tls_cert, serve.tls_key) if serve.tls_cert and serve.tls_key else None
    rtsp = _rtsp_out(host, serve, token) if serve.rtsp_port else None
    outputs = ServeOutputs(rtsp, serve.record, ModelLatency())
    status = ServeStatus(outputs, state.root, host)
    http = HttpServer(status, host, port, outputs.latency, token=token, tls=tls,
                      allowed_hosts=serve.allowed_hosts)  # fmt: skip
    try:
        http.start()  # a port in use: one line, nothing started
    except BaseException:
        if rtsp is not None:
            rtsp.stop()
        raise
    try:
        notify = _notify(status)
        for note in plan.notes:
            notify("note", {"text": note})
        if not serve.external_nodes:  # the engine's images hold their own dependencies
            prepare(plan, notify)
        log.info("serving %s on %s", project.root.name, http.url, extra={"event": "listening"})
        _say_login(http, token, where)
        if on_ready is not None:
            on_ready(http.url)
        while True:
            runtime = _generation(plan, notify, t0, state, outputs, status, serve, key)
            with hangup_calls(runtime.reload_requested.set), apps_get_default_sigint():
                reason = _run_generation(runtime)
            if reason != "reload":
                break
            plan = build_plan(project, options)
    finally:
        http.stop()
        outputs.close()
        if rtsp is not None:
            rtsp.stop()
    log.info("serve stopped", extra={"event": "stopped"})
    return 0


def _token(serve: ServeOptions, state: Any) -> tuple[str | None, Path | None]:
    """The login token and the file it is in (None, None with ``--auth none``).

    Raises:
        UserError: the token file cannot be made or read, or holds no token.
    """
    from panorama_cli.localrun.serve.auth import load_token, read_token_file

    if serve.auth == "none":
        return None, None
    if serve.auth_token_file is not None:
        return read_token_file(serve.auth_token_file), serve.auth_token_file
    return load_token(state.root)


def _rtsp_out(host: str, serve: ServeOptions, token: str | None) -> Any:
    """RTSP out started (asking for the token when there is one), or None when its
    dependencies are missing and it was not asked for explicitly (one warning says the fix).

    Raises:
        UserError: its port cannot be bound; RtspUnavailable: missing, and asked for.
    """
    from panorama_cli.localrun.serve.rtsp_out import RTSP_FIX, RtspOut, RtspUnavailable

    rtsp = RtspOut(host, serve.rtsp_port, password=token, public_url=serve.public_url)
    try:
        rtsp.start()
    except RtspUnavailable as exc:
        if serve.rtsp_required:
            raise
        log.warning(
            "RTSP out is off: %s is not installed; to turn it on: %s (--rtsp-port 0: no warning)",
            exc.missing, RTSP_FIX,
        )  # fmt: skip
        return None
    return rtsp


def _say_login(http: Any, token: str | None, where: Path | None) -> None:
    """How to log in: on a terminal, the login URL with the token (written to the terminal
    only: never to serve.log, a journal or a container's log); elsewhere, where the token
    is."""
    import sys

    if token is None:
        log.warning(
            "--auth none: the page, status, metrics, clips and live video at %s answer "
            "anyone who can reach it", http.url,
        )  # fmt: skip
        return
    base = http.url.replace("://0.0.0.0:", "://127.0.0.1:").replace("://[::]:", "://[::1]:")
    if sys.stderr.isatty():
        sys.stderr.write(f"log in: {base}/?token={token}\n")
        sys.stderr.flush()
    else:
        log.info(
            "log in: %s/?token=<the token in %s>; API clients: Authorization: Bearer <token>",
            base, where,
        )  # fmt: skip


def _control_key(serve: ServeOptions) -> bytes | None:
    """``--control-key``'s key for ``--external-nodes`` (None without them: each generation
    makes a fresh key for the nodes it starts).

    Raises:
        UserError: external nodes without ``--control-key``, or a key file that is not one.
    """
    from panorama_cli.errors import UserError
    from panorama_cli.localrun.frames import identity

    if not serve.external_nodes:
        if serve.control_key is not None:
            raise UserError(
                "--control-key is for --external-nodes (serve makes its own nodes' tokens)"
            )
        return None
    if serve.control_key is None:
        raise UserError(
            "serve --external-nodes needs --control-key FILE: the bundle's control key "
            "(secrets/control.key, written by export), from which each node's token is derived",
        )
    return identity.read_key(serve.control_key)


def _generation(
    plan: Any,
    notify: Any,
    t0: float,
    state: Any,
    outputs: Any,
    status: Any,
    serve: ServeOptions,
    key: bytes | None,
) -> Any:
    from panorama_cli.localrun.serve.runtime import ServeRuntime

    runtime = ServeRuntime(
        plan,
        notify,
        t0,
        state,
        outputs,
        external_nodes=serve.external_nodes,
        control_socket=serve.control_socket,
        control_key=key,
    )
    status.runtime = runtime
    return runtime


def _run_generation(runtime: Any) -> str:
    """Models, cameras, apps, then serve's loop; always torn down. Returns the loop's reason."""
    reason = "interrupted"
    try:
        runtime.load_models()
        runtime.open_cameras()
        if runtime.options.in_container:
            from panorama_cli.localrun.apps.container_images import prepare_containers

            runtime.containers = prepare_containers(runtime.plan, runtime.notify)
            runtime.containers.run_dir = runtime.plan.run_dir
        runtime.start_apps()
        reason = runtime.serve_loop()
    except KeyboardInterrupt:  # SIGINT, SIGTERM
        reason = "interrupted"
    finally:
        runtime.reason = reason
        runtime.teardown()
    return reason
