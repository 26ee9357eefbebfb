"""serve's policies over run's runtime: cameras that never end, nodes that are restarted,
state that lasts, HDMI to the live view / RTSP / recorder instead of an mp4.

:class:`ServeRuntime` is :class:`~..engine.Runtime` with its policy hooks changed; everything
else (plan, models, sandbox, control socket, router, SDK) is run's. Its :meth:`serve_loop`
replaces run's wait for the end: it never ends by itself; it applies the restart policy
(:class:`~.keeper.NodeKeeper`), marks nodes that stopped taking frames ``stalled``, writes
what happens to the cameras (lost, reconnected, cannot connect) to serve's log, reloads on
SIGHUP (after validate's graph checks) and stops on SIGINT/SIGTERM. A node's console lines
reach serve's log through a per-node :class:`~.output_limit.LineLimiter`.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from panorama_cli.localrun.engine import Runtime
from panorama_cli.localrun.plan import RunPlan
from panorama_cli.localrun.serve.external import ExternalNode, NodeLinks
from panorama_cli.localrun.serve.keeper import STALL_S, NodeKeeper
from panorama_cli.localrun.serve.output_limit import LineLimiter
from panorama_cli.localrun.serve.state_dir import ROTATE, StateDir

log = logging.getLogger(__name__)

#: How often serve's loop applies the restart policy and reports (seconds).
TICK_S = 0.1
#: How often the apps' own log files are checked against the rotation size (seconds).
LOG_CHECK_S = 30.0


class TimedModel:
    """A model node whose every ``run`` is observed by the latency histogram (seconds).

    Every other attribute (``stats``, ``backend``, ...) is the model's own.
    """

    def __init__(self, name: str, model: Any, observe: Any) -> None:
        self._name = name
        self._model = model
        self._observe = observe

    def run(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return self._model.run(*args, **kwargs)
        finally:
            self._observe(self._name, time.perf_counter() - start)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


class ServeRuntime(Runtime):
    """One generation of serve's runtime (a SIGHUP that changes the graph's shape makes the
    next one). See the module docstring.

    Args:
        plan: the plan (``plan.run_dir`` is the state folder's ``run/``).
        notify: the run's ``notify(event, data)``.
        t0: monotonic start.
        state: the opened state folder.
        outputs: the serve outputs: ``live(stream)`` -> LiveFrame, ``rtsp`` (RtspOut or None),
            ``recorder(stream, fps)`` -> recorder or None, ``latency`` (ModelLatency).
        external_nodes: the business-logic nodes are started by an engine and connect to the
            control socket (:mod:`.external`); serve starts no process.
        control_socket: the control socket's path (None: ``ctl.sock`` in ``plan.run_dir``).
        control_key: the key the nodes' tokens are derived from (``--control-key``; None: a
            fresh one, for the nodes serve starts).
    """

    def __init__(
        self,
        plan: RunPlan,
        notify: Any,
        t0: float,
        state: StateDir,
        outputs: Any,
        *,
        external_nodes: bool = False,
        control_socket: Path | None = None,
        control_key: bytes | None = None,
    ) -> None:
        super().__init__(plan, notify, t0)
        self.external_nodes = external_nodes
        self._control_socket = control_socket
        self._control_key = control_key
        self.links = NodeLinks()
        self.state = state
        self.outputs = outputs
        self.stop_event = threading.Event()
        self.reload_requested = threading.Event()
        self.sink_objects: dict[str, Any] = {}
        self._limiters: dict[str, LineLimiter] = {}
        self._limiters_lock = threading.Lock()

    # -- policy hooks ------------------------------------------------------------------------
    def open_camera_source(self, spec: str) -> Any:
        from panorama_cli.localrun.frames.reconnect import open_serve_source

        return open_serve_source(spec)

    def max_frames(self) -> int | None:
        return None

    def node_folders(self, name: str) -> tuple[Path, Path]:
        return self.state.logs(name), self.state.storage(name)

    def node_volume(self, name: str) -> Path | None:
        """``<state-dir>/volumes/<node>.ext4``: the node's storage lasts across restarts;
        None for nodes in containers (their engine bounds them)."""
        if self.options.in_container or self.containers is not None or self.external_nodes:
            return None
        return self.state.root / "volumes" / f"{name}.ext4"

    def keep_volumes(self) -> bool:
        return True

    def console_rotate(self) -> tuple[int, int] | None:
        return ROTATE

    def make_app(self, spec: Any, console_log: Path) -> Any:
        def fresh() -> Any:
            if self.external_nodes:
                return ExternalNode(spec.node, self.links)
            return Runtime.make_app(self, spec, console_log)

        return NodeKeeper(spec.node, fresh, self.notify)

    def _output(self, node: str, line: str) -> None:
        """A console line of ``node``: shown in serve's log within the node's rate (all of
        them are in its console.log)."""
        with self._limiters_lock:
            limiter = self._limiters.get(node)
            if limiter is None:
                limiter = self._limiters[node] = LineLimiter(
                    node, lambda text: self.notify("note", {"text": text})
                )
        if limiter.allow(line):
            super()._output(node, line)

    def node_connected(self, node: str, pid: int | None = None) -> None:
        self.links.hello(node, pid)
        keeper = self.apps.get(node)
        if keeper is not None:
            keeper.connected()

    def node_disconnected(self, node: str) -> None:
        self.links.bye(node)

    def control_socket(self) -> Path | None:
        return self._control_socket

    def control_key(self) -> bytes:
        return self._control_key if self._control_key is not None else super().control_key()

    def apps_own_connections(self) -> bool:
        return not self.external_nodes

    def make_sink(self, stream: str, fps: float) -> Any:
        from panorama_cli.localrun.serve.sinks import ServeSink

        sink = ServeSink(
            stream,
            fps,
            self.outputs.live(stream),
            rtsp=self.outputs.rtsp,
            record=self.outputs.recorder(stream, fps),
        )
        self.sink_objects[stream] = sink
        return sink

    def load_models(self) -> None:
        super().load_models()
        observe = self.outputs.latency.observe
        self.models = {name: TimedModel(name, m, observe) for name, m in self.models.items()}

    # -- the loop ----------------------------------------------------------------------------
    def serve_loop(self) -> str:
        """Run until SIGINT/SIGTERM (``KeyboardInterrupt``) or :attr:`stop_event`: returns
        ``"interrupted"``, ``"stopped"`` or ``"reload"`` (a SIGHUP changed the graph's
        shape: the caller starts a new generation)."""
        from panorama_cli.interrupts import Terminated, terminate_requested
        from panorama_cli.localrun.serve.state_dir import rotate_app_logs

        last_status = last_logs = 0.0
        while not self.stop_event.wait(TICK_S):
            if terminate_requested():  # a SIGTERM whose exception was swallowed somewhere
                raise Terminated()
            for keeper in list(self.apps.values()):
                keeper.tick()
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                if self.reload() == "all":
                    return "reload"
            now = time.monotonic()
            self.say_camera_events()
            self.check_stalls(now)
            for limiter in list(self._limiters.values()):
                limiter.flush()
            if now - last_status >= 1.0:
                last_status = now
                self.notify("status", {"cameras": self.camera_status(), "elapsed_s": now - self.t0})
            if now - last_logs >= LOG_CHECK_S:
                last_logs = now
                for name in self.apps:
                    rotate_app_logs(self.state.logs(name))
            self.show_notes()
        return "stopped"

    def teardown(self) -> dict[str, dict[str, Any]]:
        """Run's teardown, after the camera events not logged yet."""
        self.say_camera_events()
        return super().teardown()

    def say_camera_events(self) -> None:
        """One log line per camera event (lost, reconnected, cannot connect: the reason has
        its passwords redacted already)."""
        for name, feed in list(self.feeds.items()):
            events = getattr(feed.camera.source, "events", None)
            while events:
                try:
                    _level, text = events.popleft()
                except IndexError:
                    break
                self.notify("note", {"text": f"camera {name}: {text}"})

    def camera_inputs(self, node: str) -> list[tuple[Any, tuple[str, str]]]:
        """The cameras feeding ``node``: ``[(CameraFeed, (node, port))]`` (empty for a node
        fed by no camera: it is never marked stalled)."""
        found = []
        for business in self.plan.business:
            if business.node.name != node:
                continue
            for port in business.inputs:
                for producer, _ in self.plan.media_producers(node, port):
                    feed = self.feeds.get(producer)
                    if feed is not None:
                        found.append((feed, (node, port)))
        return found

    def check_stalls(self, now: float) -> None:
        """Mark ``stalled`` a running node that took no frame from its cameras for
        :data:`~.keeper.STALL_S` seconds (since its start when it took none) while one of
        them had frames for it (read from the source in the last 5 s, or not started yet
        while connected: nobody asked for its frames); back to running when it takes one."""
        from panorama_cli.localrun.serve.status import READY_FRAME_S

        for name, keeper in list(self.apps.items()):
            if keeper.state not in ("running", "stalled"):
                continue
            inputs = self.camera_inputs(name)
            if not inputs:
                continue
            taken = [feed.last_taken.get(consumer) for feed, consumer in inputs]
            since = max([keeper.started_at, *(t for t in taken if t is not None)])
            fresh = any(_has_frames(feed, now, READY_FRAME_S) for feed, _ in inputs)
            keeper.mark_stalled(fresh and now - since >= STALL_S)

    def reload(self) -> str:
        """SIGHUP: read graph.json, the overrides and the parameters again; restart the nodes
        whose inputs changed (``"nodes"``), or ask for a new generation when nodes, edges,
        cameras or models changed (``"all"``); a graph that does not load changes nothing
        (``"none"``, one line saying why)."""
        from panorama_cli.errors import UserError
        from panorama_cli.localrun.plan import build_plan
        from panorama_cli.project.validation import graph_errors

        try:
            problems = graph_errors(self.plan.project, self.plan.options.graph)
            if problems:
                more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                raise UserError(f"{problems[0].line()}{more}")
            new = build_plan(self.plan.project, self.plan.options)
        except UserError as exc:
            self.notify(
                "note", {"text": f"SIGHUP: nothing reloaded, the running graph stays: {exc}"}
            )
            return "none"
        if _shape(new) != _shape(self.plan):
            self.notify("note", {"text": "SIGHUP: the graph changed; restarting every node"})
            return "all"
        changed = [
            b.node.name
            for b, old in zip(new.business, self.plan.business, strict=True)
            if (b.inputs, b.entry, b.src) != (old.inputs, old.entry, old.src)
        ]
        new.run_dir = self.plan.run_dir
        self.plan = new
        if self.router is not None:
            self.router.replace_plan(new)
        if not changed:
            self.notify("note", {"text": "SIGHUP: nothing changed"})
        for name in changed:
            self.apps[name].restart("SIGHUP: its inputs changed")
        return "nodes"


def _has_frames(feed: Any, now: float, within_s: float) -> bool:
    """Whether a camera has frames for its consumers: connected, and read a frame in the last
    ``within_s`` seconds or not started (no consumer asked yet)."""
    camera = feed.camera
    if not camera.connected:
        return False
    if not feed.started:
        return True
    read_t = camera.stats.read_t
    return read_t is not None and now - read_t <= within_s


def _shape(plan: RunPlan) -> tuple[Any, ...]:
    """What a reload cannot change in place: nodes, edges, camera sources, model nodes."""
    graph = plan.graph
    return (
        sorted(graph.nodes),
        sorted((e.producer_node, e.producer_port, e.consumer_node, e.consumer_port)
               for e in graph.edges),
        sorted(plan.cameras.items()),
        sorted(m.name for m in plan.models),
        sorted(plan.business_names),
    )  # fmt: skip
