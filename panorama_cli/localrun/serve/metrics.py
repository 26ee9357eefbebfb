"""serve's Prometheus metrics (prometheus-client), in their own registry (never the global one).

Counters and gauges are read from :meth:`ServeView.status` at scrape time by
:class:`StatusCollector` (one snapshot per scrape, nothing kept between scrapes):

- ``panorama_camera_frames_total{camera}``, ``panorama_camera_dropped_total{camera}``,
  ``panorama_camera_reconnects_total{camera}`` (counters), ``panorama_camera_up{camera}``
  (gauge, 1 while connected);
- ``panorama_node_up{node}`` (gauge, 1 while the node's state is ``running``),
  ``panorama_node_stalled{node}`` (gauge, 1 while it is ``stalled``: running, taking no frame),
  ``panorama_node_restarts_total{node}`` (counter);
- ``panorama_hdmi_frames_total{stream}`` (counter); ``panorama_serve_uptime_seconds`` (gauge);
  ``panorama_serve_log_lines_lost_total`` (counter: lines serve's log could not write, e.g.
  on a full disk).

``panorama_model_latency_seconds{model}`` is a real histogram fed by :meth:`ModelLatency.observe`
(serve wraps each model's run() to call it). Text exposition format:
https://prometheus.io/docs/instrumenting/exposition_formats/
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from panorama_cli.localrun.serve.view import ServeView

log = logging.getLogger(__name__)

#: Histogram bucket upper bounds (seconds): 1 ms .. 5 s, about two per octave.
LATENCY_BUCKETS = (
    0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0,
)  # fmt: skip


class ModelLatency:
    """``panorama_model_latency_seconds{model}``: a histogram of model run() durations.

    Thread-safe (prometheus-client's histogram is); not registered anywhere until
    :func:`build_registry` adds it to a registry.
    """

    def __init__(self) -> None:
        self.histogram = Histogram(
            "panorama_model_latency_seconds",
            "Duration of one model run (inference call), in seconds.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=None,
        )

    def observe(self, model: str, seconds: float) -> None:
        """Count one run of model node ``model`` that took ``seconds`` (wall clock)."""
        self.histogram.labels(model=model).observe(seconds)


def _num(value: Any) -> float:
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


class StatusCollector(Collector):
    """Counters and gauges from one :meth:`ServeView.status` snapshot per scrape."""

    def __init__(self, view: ServeView) -> None:
        self.view = view

    def describe(self) -> list[Metric]:
        # Without describe(), registering would call collect() (and so view.status()) once.
        return list(self._families({}))

    def collect(self) -> Iterator[Metric]:
        yield from self._families(self.view.status())

    @staticmethod
    def _families(status: dict[str, Any]) -> Iterator[Metric]:
        cameras = status.get("cameras") or {}
        nodes = status.get("nodes") or {}
        streams = status.get("streams") or {}
        frames = CounterMetricFamily(
            "panorama_camera_frames", "Frames delivered by the camera.", labels=["camera"]
        )
        dropped = CounterMetricFamily(
            "panorama_camera_dropped",
            "Camera frames dropped (not taken in time).",
            labels=["camera"],
        )
        up = GaugeMetricFamily(
            "panorama_camera_up", "1 while the camera is connected.", labels=["camera"]
        )
        reconnects = CounterMetricFamily(
            "panorama_camera_reconnects", "Times the camera was reconnected.", labels=["camera"]
        )
        for name, cam in sorted(cameras.items()):
            frames.add_metric([name], _num(cam.get("frames")))
            dropped.add_metric([name], _num(cam.get("dropped")))
            up.add_metric([name], 1.0 if cam.get("connected") else 0.0)
            reconnects.add_metric([name], _num(cam.get("reconnects")))
        node_up = GaugeMetricFamily(
            "panorama_node_up", "1 while the node is running.", labels=["node"]
        )
        stalled = GaugeMetricFamily(
            "panorama_node_stalled",
            "1 while the node runs but takes no frame its cameras have for it.",
            labels=["node"],
        )
        restarts = CounterMetricFamily(
            "panorama_node_restarts", "Times the node was restarted.", labels=["node"]
        )
        for name, node in sorted(nodes.items()):
            node_up.add_metric([name], 1.0 if node.get("state") == "running" else 0.0)
            stalled.add_metric([name], 1.0 if node.get("state") == "stalled" else 0.0)
            restarts.add_metric([name], _num(node.get("restarts")))
        hdmi = CounterMetricFamily(
            "panorama_hdmi_frames", "Frames shown on the HDMI stream.", labels=["stream"]
        )
        for name, stream in sorted(streams.items()):
            hdmi.add_metric([name], _num(stream.get("frames")))
        uptime = GaugeMetricFamily("panorama_serve_uptime_seconds", "Seconds since serve started.")
        uptime.add_metric([], _num(status.get("uptime_s")))
        lost = CounterMetricFamily(
            "panorama_serve_log_lines_lost", "Log lines serve could not write (full disk...)."
        )
        lost.add_metric([], _num(status.get("log_lines_lost")))
        yield from (frames, dropped, up, reconnects, node_up, stalled, restarts, hdmi, uptime, lost)


def build_registry(view: ServeView, latency: ModelLatency) -> CollectorRegistry:
    """A new registry holding serve's status metrics and ``latency``'s histogram."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(StatusCollector(view))
    registry.register(latency.histogram)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus text format 0.0.4 (content type :data:`CONTENT_TYPE`)."""
    return generate_latest(registry)


#: The content type of what :func:`exposition` writes (``text/plain; version=0.0.4; ...``).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
