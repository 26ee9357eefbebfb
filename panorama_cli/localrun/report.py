"""report.json of a run: documented, stable keys.

```
{
  "exit_reason": "frames" | "duration" | "end-of-input" | "interrupted"
                 | "app-exited" | "app-error" | "camera-error" | "running",
  "app_exit_code": int | null,      # the entry's exit status (128+N: stopped by signal N)
  "startup_s": float | null,        # run start (before models load) to the first frame delivered
  "wall_s": float,                  # run start to everything stopped
  "cameras": {node: {"frames": int, "dropped": int, "fps": float,   # fps: first..last delivered
             "read_ms": STATS}},            # the source's read (decode) of each frame
  "nodes": {node: {"get_ms": STATS, "put_ms": STATS, "call_ms": STATS}},  # as the app saw them
  "models": {node: {"backend": str, "device": "cpu" | "cuda", "calls": int, "mean_ms": float,
             "p50_ms": float, "p95_ms": float,
             "conversion": null | {"framework": str, "framework_version": str,
                                   "converter": str, "seconds": float, "cached": bool,
                                   "max_rel_error": float, "onnx": str}}},  # MXNet/TF/PyTorch
  "hdmi": {stream_id: {"frames": int, "path": "hdmi/<stream_id>.mp4" | null}},
  "notes": [str]                    # what the run dropped or skipped (log lines, bad rects, ...)
}
STATS = {"count": int, "mean": float, "p50": float, "p95": float, "max": float}  (milliseconds)
```

``exit_reason`` is ``"running"`` in the report written while the run goes on (at its start,
every few seconds, see :data:`REFRESH_S`): a runner killed by SIGKILL leaves that one, with the
frames counted so far. Timings are :class:`TimingStats`: count, mean and max over every
sample, p50/p95 over a bounded uniform sample of them (exact up to :data:`RESERVOIR` samples),
so a run of any length keeps a few KiB per series.
"""

from __future__ import annotations

import json
import math
import os
import random
import threading
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXIT_REASONS = (
    "frames", "duration", "end-of-input", "interrupted", "app-exited", "app-error", "running",
    "camera-error",
)  # fmt: skip
KEYS = (
    "exit_reason", "app_exit_code", "startup_s", "wall_s", "cameras", "nodes", "models", "hdmi",
    "notes",
)  # fmt: skip
#: Samples a :class:`TimingStats` keeps for its percentiles (8 bytes each).
RESERVOIR = 4096
#: Seconds between the reports written while a run goes on.
REFRESH_S = 2.0


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` (0..1) percentile of ascending ``sorted_values`` (linear interpolation)."""
    if not sorted_values:
        return 0.0
    pos = (len(sorted_values) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


class TimingStats:
    """Streaming statistics of durations: bounded memory whatever the number of samples.

    count, mean and max are exact; p50/p95 come from a uniform random sample of at most
    ``reservoir`` values (Vitter's algorithm R; exact while count <= reservoir). Thread-safe.

    Args:
        reservoir: samples kept for the percentiles (>= 1).
        seed: seed of the sampling (reproducible summaries in tests).
    """

    def __init__(self, reservoir: int = RESERVOIR, seed: int = 0) -> None:
        if reservoir < 1:
            raise ValueError("reservoir must be >= 1")
        self.count = 0
        self.total = 0.0
        self.max = 0.0
        self._capacity = reservoir
        self._kept = array("d")
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def add(self, value: float) -> None:
        """One sample (any unit; NaN and negative values are ignored)."""
        value = float(value)
        if not value >= 0.0 or math.isinf(value):
            return
        with self._lock:
            self.count += 1
            self.total += value
            self.max = max(self.max, value)
            if len(self._kept) < self._capacity:
                self._kept.append(value)
                return
            slot = self._random.randrange(self.count)
            if slot < self._capacity:
                self._kept[slot] = value

    def summary(self, scale: float = 1.0) -> dict[str, float | int]:
        """``{"count", "mean", "p50", "p95", "max"}``, values multiplied by ``scale``
        (1000: seconds to milliseconds), rounded to 4 decimals; zeros when empty."""
        with self._lock:
            count, total, top = self.count, self.total, self.max
            kept = sorted(self._kept)
        if not count:
            return {"count": 0, "mean": 0.0, "p50": 0.0, "p95": 0.0, "max": 0.0}
        return {
            "count": count,
            "mean": round(total / count * scale, 4),
            "p50": round(percentile(kept, 0.5) * scale, 4),
            "p95": round(percentile(kept, 0.95) * scale, 4),
            "max": round(top * scale, 4),
        }


def summary_ms(seconds: Iterable[float] | TimingStats) -> dict[str, float | int]:
    """count / mean / p50 / p95 / max in milliseconds of durations given in seconds."""
    if not isinstance(seconds, TimingStats):
        stats = TimingStats(reservoir=1 << 30)
        for value in seconds:
            stats.add(value)
        seconds = stats
    return seconds.summary(1000.0)


def camera_entry(stats: Any) -> dict[str, Any]:
    """{frames, dropped, fps, read_ms} of a camera's stats (fps from first to last delivered
    frame; read_ms: the source's reads, when the stats have ``read`` (a TimingStats))."""
    fps = 0.0
    if stats.first_t is not None and stats.last_t is not None and stats.frames > 1:
        span = stats.last_t - stats.first_t
        fps = (stats.frames - 1) / span if span > 0 else 0.0
    read = getattr(stats, "read", None)
    return {
        "frames": stats.frames,
        "dropped": stats.dropped,
        "fps": round(fps, 3),
        "read_ms": summary_ms(read if read is not None else ()),
    }


def build_report(
    *,
    exit_reason: str,
    app_exit_code: int | None,
    startup_s: float | None,
    wall_s: float,
    cameras: Mapping[str, Any],
    nodes: Mapping[str, Mapping[str, Iterable[float] | TimingStats]],
    models: Mapping[str, Any],
    hdmi: Mapping[str, Mapping[str, Any]],
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """The report dict (see the module docstring for every key).

    Args:
        cameras: node -> CameraStats. nodes: node -> {"get"/"put"/"call": TimingStats or
            seconds}.
        models: node -> a loaded model with ``backend`` and ``stats`` ({calls, mean_ms,
            p50_ms, p95_ms}).
        hdmi: stream_id -> {frames, path}.
        notes: lines saying what the run dropped or skipped.
    """
    if exit_reason not in EXIT_REASONS:
        raise ValueError(f"unknown exit reason {exit_reason!r}")
    return {
        "exit_reason": exit_reason,
        "app_exit_code": app_exit_code,
        "startup_s": None if startup_s is None else round(startup_s, 4),
        "wall_s": round(wall_s, 4),
        "cameras": {name: camera_entry(stats) for name, stats in cameras.items()},
        "nodes": {
            name: {
                f"{kind}_ms": summary_ms(samples.get(kind, ())) for kind in ("get", "put", "call")
            }
            for name, samples in nodes.items()
        },
        "models": {name: _model_entry(model) for name, model in models.items()},
        "hdmi": {stream: dict(entry) for stream, entry in hdmi.items()},
        "notes": list(notes),
    }


def _model_entry(model: Any) -> dict[str, Any]:
    stats = dict(getattr(model, "stats", {}) or {})
    from panorama_cli.localrun.models.devices import device_of

    backend = str(getattr(model, "backend", "unknown"))
    return {
        "backend": backend,
        "device": device_of(backend),
        "calls": int(stats.get("calls", 0)),
        "mean_ms": round(float(stats.get("mean_ms", 0.0)), 4),
        "p50_ms": round(float(stats.get("p50_ms", 0.0)), 4),
        "p95_ms": round(float(stats.get("p95_ms", 0.0)), 4),
        "conversion": getattr(model, "conversion_info", None),
    }


def write_report(run_dir: Path, report: Mapping[str, Any]) -> Path:
    """Write ``run_dir/report.json`` atomically (a temporary file, fsync, rename): a reader,
    or a runner killed in the middle, sees the previous report or this one, never half.

    Returns:
        Its path.

    Raises:
        OSError: it cannot be written (the previous report, if any, stays).
    """
    path = Path(run_dir) / "report.json"
    tmp = path.with_name(f".report.json.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w") as stream:
            stream.write(json.dumps(report, indent=2) + "\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


@dataclass
class RunResult:
    """What a run produced.

    Attributes:
        report: the report.json content (see :mod:`.report`).
        run_dir: the run folder.
        exit_status: what ``panorama-cli run`` exits with (0: ended by frames, duration, end
            of input or Ctrl-C; otherwise the app's status, at least 1).
        hdmi_frames: stream_id -> HDMI frames as the app left them (HxWx3 BGR uint8, overlays
            not drawn); only with ``keep_frames``.
        annotations: stream_id -> per HDMI frame {"rects": [(l, t, r, b)], "labels":
            [(text, x, y)]}, normalized [0, 1) coordinates; only with ``keep_frames``.
    """

    report: dict[str, Any]
    run_dir: Path
    exit_status: int
    hdmi_frames: dict[str, list[Any]] = field(default_factory=dict)
    annotations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def console(self) -> str:
        """The apps' console output (all nodes): every console.log in ``logs/`` or its node
        folders, regular files only (never through a link an app made there)."""
        from panorama_cli.localrun import safe_files

        parts = []
        for _path, fd in safe_files.find_regular(self.run_dir / "logs", "console.log", 1):
            try:
                parts.append(safe_files.read_tail(fd, 1 << 40).decode("utf-8", "replace"))
            except OSError:
                continue
            finally:
                os.close(fd)
        return "".join(parts)
