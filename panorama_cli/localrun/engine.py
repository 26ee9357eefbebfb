"""One run of an application graph on this machine: models, cameras, app processes, report.

:func:`run_application` resolves the plan (:mod:`.plan`), loads every model node (a model
problem is reported before any frame), opens every camera, starts the control socket
(:mod:`.channel`, answered by :mod:`.routing`), starts each business-logic node's entry in its
sandbox (:mod:`.supervisor`) and waits for the end: ``--frames`` / end of input (a node asks
for a frame that will not come), ``--duration``, Ctrl-C, or an app that exits by itself. Then
it stops every app (SIGINT, SIGTERM, SIGKILL; one line per node, e.g. ``node X stopped at
end of input``), flushes the HDMI files and writes report.json. report.json is also written
as soon as the apps start and every :data:`~.report.REFRESH_S` seconds (exit_reason
"running"), so a runner killed by SIGKILL leaves the counts so far; SIGHUP (in the CLI,
:func:`panorama_cli.interrupts.hangup_stops`) and SIGTERM stop the run as Ctrl-C does. A
camera whose source breaks ends the run as "camera-error" (exit 1), never as end of input.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from panorama_cli.errors import UserError
from panorama_cli.localrun.apps.supervisor import apps_get_default_sigint
from panorama_cli.localrun.plan import RunOptions, RunPlan, build_plan, create_run_dir
from panorama_cli.localrun.report import REFRESH_S, RunResult
from panorama_cli.project.project import Project

log = logging.getLogger(__name__)

#: notify(event, data): "note" {text}, "output" {node, line}, "status" {cameras, elapsed_s},
#: "started" {run_dir, nodes}, "stopping" {reason}.
Notify = Callable[[str, dict[str, Any]], None]
SDK_DIR = Path(__file__).resolve().parent / "apps" / "sdk"
MODEL_CACHE = ".panorama-run/.models"
#: Seconds teardown waits for the stopped apps' connections to be handled to their end.
DRAIN_S = 2.0


def _silent(event: str, data: dict[str, Any]) -> None:
    return None


def _quiet_when_gone(notify: Notify) -> Notify:
    """``notify`` that never raises for a terminal that is gone (EIO after a hang-up, EPIPE):
    the run still stops its apps, closes its files and writes report.json."""

    def call(event: str, data: dict[str, Any]) -> None:
        try:
            notify(event, data)
        except (OSError, ValueError) as exc:
            log.debug("run: %s not shown: %s", event, exc)

    return call


class Runtime:
    """The runtime of one application graph, with ``run``'s policies (see
    :func:`run_application`): cameras end at their end (``--loop`` aside), a node that exits
    ends the run, HDMI goes to mp4 files in the run folder.

    ``panorama-cli serve`` subclasses it (:class:`~.serve.runtime.ServeRuntime`) and changes
    only the policy hooks: :meth:`open_camera_source`, :meth:`max_frames`, :meth:`make_sink`,
    :meth:`node_folders`, :meth:`make_app` and the wait; models, cameras, the control socket,
    the router and the sandboxed app processes are the same.
    """

    def __init__(self, plan: RunPlan, notify: Notify, t0: float):
        self.plan = plan
        self.options = plan.options
        self.notify = _quiet_when_gone(notify)
        self.t0 = t0
        self.events: queue.Queue[tuple[str, str]] = queue.Queue()
        self.first_frame_t: float | None = None
        self.models: dict[str, Any] = {}
        self.feeds: dict[str, Any] = {}
        self.apps: dict[str, Any] = {}
        self.router: Any = None
        self.server: Any = None
        self.containers: Any = None  # container_app.ContainerRuntime with --in-container
        self.last_report = 0.0
        self.reason = "app-error"
        self.shown: set[str] = set()
        self.said_stopped: set[str] = set()

    # -- set up ------------------------------------------------------------------------------
    def load_models(self) -> None:
        if not self.plan.models:
            return
        from panorama_cli.localrun.models.inference import load_model

        project = self.plan.project
        for node in self.plan.models:
            package = project.load_package(node.package_folder) if node.package_folder else None
            path = self.options.models.get(node.name)
            self.models[node.name] = load_model(
                node,
                package,
                model_path=Path(path) if path else None,
                cache_dir=project.root / MODEL_CACHE,
                device=self.options.device,
                notify=self.notify,  # "converting model ..., first time only"
            )
        from panorama_cli.localrun.models.devices import require_models_on

        require_models_on(self.options.device, self.models)

    def open_cameras(self) -> None:
        if not self.plan.cameras:
            return
        from panorama_cli.localrun.frames.feeds import CameraFeed
        from panorama_cli.localrun.frames.pacing import Camera

        for camera, spec in self.plan.cameras.items():
            consumers = [
                (e.consumer_node, e.consumer_port)
                for e in self.plan.graph.edges_from(camera)
                if e.consumer_node in self.plan.business_names
            ]
            if not consumers:
                continue
            source = self.open_camera_source(spec)
            feed = Camera(camera, source, fast=self.options.fast, max_frames=self.max_frames())
            self.feeds[camera] = CameraFeed(feed, consumers)

    # -- policy hooks (serve overrides these) ----------------------------------------------
    def open_camera_source(self, spec: str) -> Any:
        """The frame source of one ``--camera`` SOURCE (run: ends at its end unless --loop).

        Raises:
            UserError: it cannot be opened (run fails at start when a camera is down).
        """
        from panorama_cli.localrun.frames.sources import open_source

        return open_source(spec, loop=self.options.loop)

    def max_frames(self) -> int | None:
        """Frames per camera before it ends (``--frames``; None: no limit)."""
        return self.options.frames

    def node_folders(self, name: str) -> tuple[Path, Path]:
        """(logs, storage) host folders of a node: /opt/aws/panorama/logs and /storage."""
        several = len(self.plan.business) > 1
        run_dir = self.plan.run_dir
        return run_dir / "logs" / (name if several else ""), run_dir / "storage" / (
            name if several else ""
        )

    def make_app(self, spec: Any, console_log: Path) -> Any:
        """The process of one business-logic node (not started)."""
        from panorama_cli.localrun.apps.supervisor import AppProcess

        make = AppProcess if self.containers is None else self.containers.app
        return make(spec, console_log, self._output)

    def make_sink(self, stream: str, fps: float) -> Any:
        from panorama_cli.localrun.frames.sinks import HdmiSink

        run_dir = self.plan.run_dir
        every = self.options.snapshot_every
        return HdmiSink(
            run_dir / "hdmi" / f"{stream}.mp4",
            fps=fps,
            snapshot_dir=run_dir / "hdmi" if every else None,
            snapshot_every=every,
        )

    def start_apps(self) -> None:
        from panorama_cli.localrun.apps.supervisor import AppSpec
        from panorama_cli.localrun.frames import identity
        from panorama_cli.localrun.frames.channel import (
            ControlServer,
            remove_stale_socket,
            socket_path,
        )
        from panorama_cli.localrun.routing import Router

        plan = self.plan
        self.router = Router(
            plan,
            self.feeds,
            self.models,
            self.make_sink,
            on_inputs_ended=lambda node: self.events.put(("inputs-ended", node)),
            on_first_frame=self._first_frame,
            keep_frames=self.options.keep_frames,
            on_hello=self.node_connected,
            on_bye=self.node_disconnected,
        )
        path = self.control_socket() or socket_path(plan.run_dir)
        remove_stale_socket(path)  # a killed run's ctl.sock in a reused --output-dir
        key = self.control_key()
        self.server = ControlServer(
            path,
            self.router,
            on_close=self.router.session_closed,
            key=key,
            nodes=[b.node.name for b in plan.business],
        )
        uid = f"applicationInstance-local-{uuid.uuid4().hex[:20]}"
        users = self.node_users()
        self.say_limits()
        for business in plan.business:
            name = business.node.name
            logs, storage = self.node_folders(name)
            logs.mkdir(parents=True, exist_ok=True)
            spec = AppSpec(
                node=name,
                interpreter=business.entry.interpreter,
                entry=business.entry.entry,
                src=business.src,
                logs=logs,
                storage=storage,
                bin_dir=plan.run_dir / ".bin" / (name if business.python else ""),
                python=business.python or plan.python,
                env={
                    "AppGraph_Uid": uid,
                    "PANORAMA_LOCALRUN_SOCKET": str(self.server.path),
                    "PANORAMA_LOCALRUN_NODE": name,
                    identity.TOKEN_ENV: identity.node_token(key, name),  # its own, never the key
                    "PYTHONPATH": str(SDK_DIR / ""),
                },
                aws_profile=self.options.aws_profile,
                aws_endpoint_url=self.options.aws_endpoint_url,
                writable_app=self.options.writable_app,
                console_rotate=self.console_rotate(),
                limits=self.options.limits,
                uid=users.get(name),
                volume=self.node_volume(name),
                keep_volume=self.keep_volumes(),
            )
            self.apps[name] = self.make_app(spec, logs / "console.log")
        self.router.start_clock()
        for app in self.apps.values():
            app.start()
        self.notify("started", {"run_dir": str(plan.run_dir), "nodes": list(self.apps)})

    def node_users(self) -> dict[str, int]:
        """node -> its own unprivileged uid (:mod:`.apps.app_user`) when the runner is root
        and runs the apps itself in host mode; else {} (the runner's user)."""
        import os

        from panorama_cli.localrun.apps.app_user import node_uid

        if os.geteuid() != 0 or self.options.in_container:
            return {}
        users: dict[str, int] = {}
        for name in self.plan.business_names:
            users[name] = node_uid(str(self.plan.run_dir), name, users.values())
        return users

    def say_limits(self) -> None:
        """One line at start when node cgroups cannot be made here (per-process rlimits hold
        the limits instead, :mod:`.apps.limits`); nothing when they can."""
        if self.options.in_container:
            return
        from panorama_cli.localrun.apps import volumes
        from panorama_cli.localrun.apps.cgroups import availability
        from panorama_cli.localrun.apps.limits import format_size

        kind, why = availability()
        own_fs, fs_why = volumes.available()
        if own_fs and self.node_volume("probe") is None:
            own_fs, fs_why = False, "run checks node storage every second (serve mounts one)"
        log.debug("node limits: %s (%s)", self.options.limits.summary(), kind or why)
        limits = self.options.limits
        how = "a file system of its own" if own_fs else "checked every second"
        if kind and not own_fs:
            self.notify(
                "note",
                {
                    "text": f"node storage: {fs_why}; storage {format_size(limits.storage)} "
                    "per node checked every second"
                },
            )
        if kind:
            return
        self.notify(
            "note",
            {
                "text": f"node limits: no cgroup can be made here ({why}); per-process rlimits "
                f"instead: memory {format_size(limits.memory)} per process, "
                + (f"{limits.pids} processes per node, " if self.node_users() else "")
                + f"files up to {format_size(limits.storage)}; storage "
                f"{format_size(limits.storage)} per node ({how})"
            },
        )

    def node_volume(self, name: str) -> Path | None:
        """The image file of a node's own file system (:mod:`.apps.volumes`); None: its
        storage is checked every second instead. ``run`` uses none: a run folder is new each
        time, so the mounts a SIGKILLed run left would stay; serve's (its state folder's)
        are cleared at its next start."""
        return None

    def keep_volumes(self) -> bool:
        """Node volumes last after the nodes (serve); run: copied out and removed."""
        return False

    def console_rotate(self) -> tuple[int, int] | None:
        """console.log rotation (bytes per file, older files kept); run: None (one capped
        file)."""
        return None

    def node_connected(self, node: str, pid: int | None = None) -> None:
        """A node's process said hello on the control socket (serve: it is running); ``pid``
        as the process gave it."""

    def node_disconnected(self, node: str) -> None:
        """A connection of a node's process closed."""

    def apps_own_connections(self) -> bool:
        """The control connections are the apps' that this runtime stops (serve
        ``--external-nodes``: an engine's containers, which outlive it)."""
        return True

    def control_socket(self) -> Path | None:
        """The control socket's path (None: ``ctl.sock`` in the run folder)."""
        return None

    def control_key(self) -> bytes:
        """The key each node's token is derived from (:mod:`.frames.identity`): a fresh one
        per run, known to this process only (serve ``--external-nodes``: the bundle's)."""
        from panorama_cli.localrun.frames import identity

        return identity.new_key()

    def _first_frame(self) -> None:
        self.first_frame_t = time.monotonic()

    def _output(self, node: str, line: str) -> None:
        self.notify("output", {"node": node, "line": line})

    # -- waiting for the end -----------------------------------------------------------------
    def wait_for_end(self) -> str:
        """Block until the run ends; returns the exit reason."""
        media_nodes = {
            b.node.name
            for b in self.plan.business
            if any(self.plan.media_producers(b.node.name, p) for p in b.inputs)
        }
        finished: set[str] = set()
        started = time.monotonic()
        last_status = 0.0
        while True:
            try:
                kind, node = self.events.get(timeout=0.1)
            except queue.Empty:
                kind, node = "", ""
            if kind:
                log.debug("run: %s %s", kind, node)
            if kind == "inputs-ended" and node not in finished:
                finished.add(node)
                threading.Thread(target=self._stop_node, args=(node,), daemon=True).start()
            for name, app in self.apps.items():
                code = app.poll()
                if code is not None and not app.stop_requested and name not in finished:
                    return "app-error" if code != 0 else "app-exited"
                if code is not None:
                    self.router.node_ended(name)
            if media_nodes and media_nodes <= finished:
                return self._input_reason()
            now = time.monotonic()
            if self.options.duration is not None and now - started >= self.options.duration:
                return "duration"
            if now - last_status >= 0.5:
                last_status = now
                self.notify("status", {"cameras": self.camera_status(), "elapsed_s": now - started})
            if now - self.last_report >= REFRESH_S:
                self.write_progress()
            self.show_notes()

    # -- report ------------------------------------------------------------------------------
    def build(self, reason: str, hdmi: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """report.json's content now (see :mod:`.report`)."""
        from panorama_cli.localrun.report import build_report

        return build_report(
            exit_reason=reason,
            app_exit_code=self.exit_code(reason) if reason != "running" else None,
            startup_s=None if self.first_frame_t is None else self.first_frame_t - self.t0,
            wall_s=time.monotonic() - self.t0,
            cameras={name: feed.camera.stats for name, feed in self.feeds.items()},
            nodes={name: s.samples for name, s in self.router.stats.items()} if self.router else {},
            models=self.models,
            hdmi=hdmi,
            notes=self.notes(),
        )

    def notes(self) -> list[str]:
        """What the run dropped or skipped so far: console lines (cap, full disk), unreadable
        images, malformed overlays; each part's ``notes`` list, in that order."""
        parts: list[Any] = list(self.apps.values())
        parts += [feed.camera.source for feed in self.feeds.values()]
        parts += [w.sink for w in dict(self.router.sinks if self.router else {}).values()]
        return [note for part in parts for note in list(getattr(part, "notes", ()))]

    def show_notes(self) -> None:
        """Print the notes not printed yet (one line each, as they happen)."""
        for note in self.notes():
            if note not in self.shown:
                self.shown.add(note)
                self.notify("note", {"text": note})

    def say_stopped(self, name: str, how: str) -> None:
        """One line for a node the runner stopped (its KeyboardInterrupt stays in console.log)."""
        app = self.apps[name]
        by = getattr(app, "stopped_by", None)
        if by is None or name in self.said_stopped:
            return
        self.said_stopped.add(name)
        text = f"node {name} stopped {how}"
        if by != "SIGINT":
            text += f" ({by}: it did not end within {self.options.grace_s:g} s of SIGINT)"
        self.notify("note", {"text": text})

    def write_progress(self) -> None:
        """report.json with exit_reason "running" (what a killed runner leaves); a write error
        (full disk) is logged, never ends the run."""
        from panorama_cli.localrun.report import write_report

        self.last_report = time.monotonic()
        sinks = dict(self.router.sinks) if self.router else {}
        hdmi = {stream: worker.sink.progress() for stream, worker in sinks.items()}
        try:
            write_report(self.plan.run_dir, self.build("running", hdmi))
        except OSError as exc:
            log.debug("run: report.json not updated: %s", exc)

    def _stop_node(self, node: str) -> None:
        self.apps[node].stop(self.options.grace_s)
        self.router.node_ended(node)
        self.say_stopped(node, "at end of input")

    def _input_reason(self) -> str:
        frames = self.options.frames
        if frames is not None and all(f.camera.stats.frames >= frames for f in self.feeds.values()):
            return "frames"
        return "end-of-input"

    def camera_status(self) -> dict[str, dict[str, Any]]:
        from panorama_cli.localrun.report import camera_entry

        return {name: camera_entry(feed.camera.stats) for name, feed in self.feeds.items()}

    # -- tear down ---------------------------------------------------------------------------
    def stop_apps(self) -> None:
        threads = [
            threading.Thread(target=app.stop, args=(self.options.grace_s,), daemon=True)
            for app in self.apps.values()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        how = {
            "frames": "at end of input",
            "end-of-input": "at end of input",
            "duration": f"after --duration {self.options.duration:g} s"
            if self.options.duration
            else "at the end of the run",
            "interrupted": "(interrupted)",
            "reload": "(SIGHUP: the graph changed)",
        }.get(self.reason, "(another node ended)")
        for name in self.apps:
            self.say_stopped(name, how)

    def teardown(self) -> dict[str, dict[str, Any]]:
        """Stop the apps (a second Ctrl-C skips the grace periods), the cameras, the sinks
        (returns their {stream_id: {frames, path}}) and the socket."""
        try:
            self.stop_apps()
        except KeyboardInterrupt:
            for app in self.apps.values():
                app.kill()
        hdmi: dict[str, dict[str, Any]] = {}
        try:
            if self.router is not None and self.server is not None and self.apps_own_connections():
                self.router.stop.set()  # a get still waiting for a frame ends
                if not self.server.wait_closed(DRAIN_S):
                    log.debug("run: app connections still open %g s after the apps ended", DRAIN_S)
            for feed in self.feeds.values():
                feed.camera.stop()
            if self.router is not None:
                hdmi = self.router.close()
        finally:
            if self.server is not None:
                self.server.close()
            if self.containers is not None:
                self.containers.close()
            from panorama_cli.localrun.apps.volumes import release_all

            release_all()  # serve's node volumes (run's went with their nodes)
        return hdmi

    def exit_code(self, reason: str) -> int | None:
        codes = {name: app.poll() for name, app in self.apps.items()}
        if reason in ("app-error", "app-exited"):
            for name, app in self.apps.items():
                if codes[name] is not None and not app.stop_requested:
                    return _status(codes[name])
        first = next(iter(codes.values()), None)
        return None if first is None else _status(first)


def _status(code: int) -> int:
    """A Popen return code as a shell shows it (killed by signal N -> 128+N)."""
    return 128 - code if code < 0 else code


def _run_apps(run: Runtime, plan: RunPlan, options: RunOptions) -> str:
    """Models, cameras, the run folder and the apps, then the wait: the end's reason."""
    from panorama_cli.localrun.models.devices import require_gpu_for

    for note in require_gpu_for(plan.gpu_nodes):  # no GPU for a node that gets it: one line
        run.notify("note", {"text": note})
    run.load_models()
    run.open_cameras()  # a model or camera problem: one line, no run folder yet
    if options.in_container:  # a missing image too
        from panorama_cli.localrun.apps.container_images import prepare_containers

        run.containers = prepare_containers(plan, run.notify)
    create_run_dir(plan)  # this run's own folder, even when another started this second
    if run.containers is not None:
        run.containers.run_dir = plan.run_dir
    for folder in ("logs", "storage"):
        (plan.run_dir / folder).mkdir(exist_ok=True)
    run.start_apps()
    run.write_progress()  # a runner killed from now on leaves a report
    try:
        reason = run.wait_for_end()
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP
        reason = "interrupted"
    run.reason = reason
    run.notify("stopping", {"reason": reason})
    return reason


def run_application(
    project: Project, options: RunOptions, notify: Notify | None = None
) -> RunResult:
    """Run the project's application graph (see the module docstring).

    Args:
        project: the project.
        options: the run's options (CLI flags).
        notify: called with progress events (see :data:`Notify`); never required.

    Returns:
        The :class:`RunResult` (report.json is written in the run folder too).

    Raises:
        UserError: the graph cannot run (before any app process starts): a binding names no
            such node, a camera has no source or cannot be opened, a model cannot load, the
            sandbox cannot be made.
    """
    from panorama_cli.localrun.report import write_report

    t0 = time.monotonic()
    plan = build_plan(project, options)
    notify = notify or _silent
    run = Runtime(plan, notify, t0)
    for note in plan.notes:
        notify("note", {"text": note})
    from panorama_cli.localrun.apps.deps import prepare

    prepare(plan, notify)  # host mode: what the Dockerfiles install, before any app starts
    reason = "app-error"
    hdmi: dict[str, dict[str, Any]] = {}
    try:
        with apps_get_default_sigint():  # the stop ladder's SIGINT reaches them, as it should
            reason = _run_apps(run, plan, options)
    finally:
        hdmi = run.teardown()
    broken = {n: f.camera.error for n, f in run.feeds.items() if f.camera.error is not None}
    if broken and reason != "interrupted":
        reason = "camera-error"  # not the end of its input (and why an app failed, if it did)
    app_code = run.exit_code(reason)
    run.show_notes()
    report = run.build(reason, hdmi)
    try:
        write_report(plan.run_dir, report)
    except OSError as exc:  # a full disk: the run's result still reaches the caller
        run.notify("note", {"text": f"report.json not written ({exc.strerror or exc})"})
    for error in run.router.sink_errors() if run.router else []:
        raise UserError(f"HDMI output failed: {error}")
    if broken and reason != "interrupted":
        name, error = next(iter(broken.items()))
        raise UserError(f"camera {name}: {error}")
    status = 0
    if reason in ("app-error", "app-exited"):
        status = app_code if app_code else 1
    result = RunResult(report, plan.run_dir, status)
    if run.router.kept is not None:
        for stream, frames in run.router.kept.items():
            result.hdmi_frames[stream] = [image for image, _, _ in frames]
            result.annotations[stream] = [
                {"rects": rects, "labels": labels} for _, rects, labels in frames
            ]
    return result
