"""What serve shows about itself: the :class:`~.view.ServeView` its HTTP endpoints read.

:class:`ServeStatus` reads the current :class:`~.runtime.ServeRuntime` (a SIGHUP that changes
the graph's shape swaps it) and the outputs that outlive it (live frames, RTSP out, model
latency). Readiness (``/readyz``): every node is ``running`` (a ``stalled`` node is named:
``node X stalled: no frame taken in the last 10 s``) and every camera read a frame from its
source in the last :data:`READY_FRAME_S` seconds (a camera whose consumer stopped taking
frames is not blamed for it).
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

#: A camera is "up" (and serve ready) when it delivered a frame within this many seconds.
READY_FRAME_S = 5.0
#: Camera fps in the status is measured over windows of at least this many seconds.
FPS_WINDOW_S = 2.0


def _finite(value: float) -> float:
    """``value`` rounded to 0.01, 0.0 when it is not a finite number (JSON has no NaN)."""
    return round(value, 2) if math.isfinite(value) else 0.0


def _ms(stats: dict[str, Any], key: str) -> float | None:
    value = stats.get(key)
    if not stats.get("calls") or value is None or not math.isfinite(float(value)):
        return None
    return round(float(value), 3)


class ServeOutputs:
    """The outputs of serve that outlive a runtime generation.

    Args:
        rtsp: the RTSP out (:class:`~.rtsp_out.RtspOut`) or None (``--rtsp-port 0``).
        record_dir: ``--record`` folder or None.
        latency: the model latency histogram (:class:`~.metrics.ModelLatency`).
    """

    def __init__(self, rtsp: Any, record_dir: Path | None, latency: Any) -> None:
        self.rtsp = rtsp
        self.record_dir = record_dir
        self.latency = latency
        self._live: dict[str, Any] = {}
        self._recorder: Any = None

    def live(self, stream: str) -> Any:
        """The stream's :class:`~.live.LiveFrame` (made on first use)."""
        from panorama_cli.localrun.serve.live import LiveFrame

        if stream not in self._live:
            self._live[stream] = LiveFrame()
        return self._live[stream]

    def known_live(self, stream: str) -> Any:
        return self._live.get(stream)

    def recorder(self, stream: str, fps: float) -> Any:
        """The shared :class:`~.recorder.Recorder` under ``--record`` (made on first use;
        each stream records into its own folder), else None."""
        if self.record_dir is None:
            return None
        if self._recorder is None:
            from panorama_cli.localrun.serve.recorder import Recorder

            self._recorder = Recorder(self.record_dir)
        return self._recorder

    def close(self) -> None:
        """Finish the recordings (serve's end)."""
        if self._recorder is not None:
            self._recorder.close()


class ServeStatus:
    """The :class:`~.view.ServeView` of a serve (see the module docstring)."""

    def __init__(self, outputs: ServeOutputs, state_root: Path, rtsp_host: str) -> None:
        self.outputs = outputs
        self.state_root = state_root
        self.rtsp_host = rtsp_host
        self.started_monotonic = time.monotonic()
        self.runtime: Any = None  # the current ServeRuntime
        self._rates: dict[str, tuple[float, int, float]] = {}  # camera -> (t, frames, fps)
        self._lock = threading.Lock()

    # -- ServeView -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        run = self.runtime
        nodes: dict[str, Any] = {}
        cameras: dict[str, Any] = {}
        models: dict[str, Any] = {}
        streams: dict[str, Any] = {}
        if run is not None:
            nodes = {name: keeper.entry() for name, keeper in list(run.apps.items())}
            for name, feed in list(run.feeds.items()):
                camera, stats = feed.camera, feed.camera.stats
                cameras[name] = {
                    "connected": bool(getattr(camera, "connected", True)),
                    "state": _camera_state(feed),
                    "last_error": getattr(camera.source, "last_error", None),
                    "fps": self._recent_fps(name, stats.frames),
                    "frames": stats.frames,
                    "dropped": stats.dropped,
                    "reconnects": int(getattr(camera, "reconnects", 0)),
                    "uri": feed.uri,
                    "last_frame_age_s": None
                    if stats.last_t is None
                    else round(time.monotonic() - stats.last_t, 3),
                    "last_read_age_s": None
                    if stats.read_t is None
                    else round(time.monotonic() - stats.read_t, 3),
                }
            callers = run.router.model_callers() if run.router is not None else {}
            for name, model in list(run.models.items()):
                stats = dict(getattr(model, "stats", {}) or {})
                models[name] = {
                    "calls": int(stats.get("calls", 0)),
                    "p50_ms": _ms(stats, "p50_ms"),
                    "p95_ms": _ms(stats, "p95_ms"),
                    "backend": str(getattr(model, "backend", "unknown")),
                    "callers": callers.get(name, []),
                }
            for stream in self.streams():
                live = self.outputs.known_live(stream)
                streams[stream] = {
                    "frames": 0 if live is None else int(live.seq),
                    "rtsp": self.rtsp_url(stream),
                }
        from panorama_cli.localrun.serve.logs import LOST

        return {
            "uptime_s": round(time.monotonic() - self.started_monotonic, 3),
            "log_lines_lost": LOST.total,
            "nodes": nodes,
            "cameras": cameras,
            "models": models,
            "streams": streams,
        }

    def _recent_fps(self, camera: str, frames: int) -> float:
        """Delivered frames per second over the last :data:`FPS_WINDOW_S` seconds or more
        (the whole life's average hides an outage that ended)."""
        now = time.monotonic()
        with self._lock:
            fallback = self._lifetime_fps(camera)
            then, count, fps = self._rates.get(camera, (now, frames, fallback))
            if now - then >= FPS_WINDOW_S:
                fps = (frames - count) / (now - then)
                then, count = now, frames
            self._rates[camera] = (then, count, fps)
        return _finite(fps)

    def _lifetime_fps(self, camera: str) -> float:
        feed = self.runtime.feeds.get(camera) if self.runtime is not None else None
        return float(feed.camera.stats.fps) if feed is not None else 0.0

    def ready(self) -> tuple[bool, str]:
        status = self.status()
        if self.runtime is None:
            return False, "starting"
        from panorama_cli.localrun.serve.keeper import STALL_S

        for name in self.runtime.plan.business_names:
            state = status["nodes"].get(name, {}).get("state", "starting")
            if state == "stalled":
                return False, f"node {name} stalled: no frame taken in the last {STALL_S:g} s"
            if state != "running":
                return False, f"node {name} is {state}"
        for name, camera in status["cameras"].items():
            age = camera["last_read_age_s"]
            if not camera["connected"]:
                why = f" ({camera['last_error']})" if camera.get("last_error") else ""
                return False, f"camera {name} is not connected{why}"
            if age is None or age > READY_FRAME_S:
                return False, f"camera {name} delivered no frame in the last {READY_FRAME_S:g} s"
        return True, "ready"

    def graph(self) -> dict[str, Any]:
        run = self.runtime
        if run is None:
            return {"nodes": [], "edges": []}
        graph = run.plan.graph
        nodes = [
            {"name": n.name, "kind": _kind(n), "package": getattr(n, "package", None) or ""}
            for n in graph.nodes.values()
        ]
        edges = [{"producer": e.producer_node, "consumer": e.consumer_node} for e in graph.edges]
        # Model nodes have no edges: the code calls them (node.call). Any business-logic node
        # may call any model; the page shows a pair once /api/status lists it as a caller.
        calls = [
            {"producer": b, "consumer": m.name} for b in run.plan.business_names
            for m in run.plan.models
        ]  # fmt: skip
        return {"nodes": nodes, "edges": edges, "calls": calls}

    def streams(self) -> list[str]:
        """Camera streams whose frames reach an HDMI data sink through a business node."""
        run = self.runtime
        if run is None:
            return []
        plan = run.plan
        feeding_sinks = {
            e.producer_node for s in plan.sinks for e in plan.graph.edges_into(s)
        } & set(plan.business_names)
        if not feeding_sinks:
            return []
        return [name for name in plan.cameras if name in run.feeds] or list(plan.cameras)

    def live(self, stream: str) -> Any:
        return self.outputs.known_live(stream) if stream in self.streams() else None

    def clips(self) -> list[dict[str, Any]]:
        from panorama_cli.localrun.serve.clips import list_clips

        return list_clips(self.state_root / "storage")

    def rtsp_url(self, stream: str, host: str | None = None) -> str | None:
        rtsp = self.outputs.rtsp
        return None if rtsp is None else rtsp.url(stream, host)


def _camera_state(feed: Any) -> str:
    """``connected``, ``reconnecting`` (lost or down: its source retries; ``last_error`` says
    why) or ``idle`` (connected, not started: no node asked for its frames yet)."""
    if not bool(getattr(feed.camera, "connected", True)):
        return "reconnecting"
    return "connected" if getattr(feed, "started", True) else "idle"


_KINDS = {
    "camera": "camera",
    "business_logic": "business",
    "model": "model",
    "data_sink": "hdmi",
    "parameter": "parameter",
}


def _kind(node: Any) -> str:
    """The page's kind of a graph node (:class:`~panorama_cli.project.node_kinds.NodeKind`)."""
    kind = getattr(node, "kind", None)
    return _KINDS.get(str(getattr(kind, "value", kind)), "other")
