"""ServeView: what serve's HTTP layer (:mod:`.http`, :mod:`.metrics`) reads of a running serve.

serve's status object (:class:`panorama_cli.localrun.serve.status.ServeStatus`) implements it;
tests implement it with a small class. Every method is called from HTTP worker threads while
serve runs, so each must be thread-safe and quick (a snapshot, no I/O beyond listing clips).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

log = logging.getLogger(__name__)


class LiveFeed(Protocol):
    """The latest frame of one HDMI stream, as the MJPEG endpoint reads it.

    :class:`panorama_cli.localrun.serve.live.LiveFrame` is the implementation.

    Attributes:
        seq: frames seen so far (0 before the first); the current frame's number.
    """

    seq: int

    def jpeg(self, quality: int = 80) -> tuple[int, bytes] | None:
        """``(seq, JPEG bytes)`` of the current frame, or None before the first."""
        ...

    def wait(self, after_seq: int, timeout: float) -> int | None:
        """Block until ``seq > after_seq`` (at most ``timeout`` seconds); the new seq or None."""
        ...


class ServeView(Protocol):
    """A running serve, read by the HTTP endpoints.

    Attributes:
        started_monotonic: ``time.monotonic()`` when serve started (seconds).
    """

    started_monotonic: float

    def status(self) -> dict[str, Any]:
        """The ``/api/status`` JSON (only JSON types; no NaN)::

        {"uptime_s": float, "log_lines_lost": int,
         "nodes":   {name: {"pid": int|None,
                            "state": "starting|running|stalled|backoff|failed",
                            "restarts": int, "last_exit": int|str|None}},
         "cameras": {name: {"connected": bool, "state": "connected|reconnecting|idle",
                            "last_error": str|None (redacted), "fps": float, "frames": int,
                            "dropped": int, "reconnects": int, "uri": str (redacted),
                            "last_frame_age_s": float|None, "last_read_age_s": float|None}},
         "models":  {name: {"calls": int, "p50_ms": float|None, "p95_ms": float|None,
                            "backend": str}},
         "streams": {stream_id: {"frames": int, "rtsp": str|None}}}
        """
        ...

    def ready(self) -> tuple[bool, str]:
        """``(True, "")`` when every node runs and every camera read a frame in the last 5 s,
        else ``(False, reason)`` (one line naming the node, e.g. ``node X stalled: no frame
        taken in the last 10 s``, or the camera)."""
        ...

    def graph(self) -> dict[str, Any]:
        """The application graph: ``{"nodes": [{"name", "kind", "package"}], "edges":
        [{"producer", "consumer"}], "calls": [{"producer", "consumer"}]}``; kind is one of
        camera, business, model, hdmi, parameter, other; edges name nodes (no ports); calls
        are the (business-logic node, model node) pairs that ``node.call`` may link."""
        ...

    def streams(self) -> list[str]:
        """HDMI stream ids (camera node names whose frames reach an HDMI sink)."""
        ...

    def live(self, stream: str) -> LiveFeed | None:
        """The stream's latest-frame holder, or None for an unknown stream."""
        ...

    def clips(self) -> list[dict[str, Any]]:
        """Event clips, newest first: ``[{"node", "name", "path" (relative to the state
        folder), "bytes": int, "created": float (unix seconds)}]``."""
        ...

    def rtsp_url(self, stream: str, host: str | None = None) -> str | None:
        """``rtsp://HOST:PORT/<stream>`` of the stream's RTSP out, or None (off/unknown);
        HOST is ``host`` when given (the name a browser reached serve by), else the listening
        address."""
        ...
