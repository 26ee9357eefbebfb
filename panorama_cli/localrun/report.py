"""report.json of a run: documented, stable keys.

```
{
  "exit_reason": "frames" | "duration" | "end-of-input" | "interrupted"
                 | "app-exited" | "app-error",
  "app_exit_code": int | null,      # the entry's exit status (128+N: stopped by signal N)
  "startup_s": float | null,        # run start (before models load) to the first frame delivered
  "wall_s": float,                  # run start to everything stopped
  "cameras": {node: {"frames": int, "dropped": int, "fps": float}},   # fps: first..last delivered
  "nodes": {node: {"get_ms": STATS, "put_ms": STATS, "call_ms": STATS}},  # as the app saw them
  "models": {node: {"backend": str, "device": "cpu" | "cuda", "calls": int, "mean_ms": float,
             "p95_ms": float}},
  "hdmi": {stream_id: {"frames": int, "path": "hdmi/<stream_id>.mp4" | null}}
}
STATS = {"count": int, "mean": float, "p50": float, "p95": float}   (milliseconds)
```
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

EXIT_REASONS = ("frames", "duration", "end-of-input", "interrupted", "app-exited", "app-error")
KEYS = ("exit_reason", "app_exit_code", "startup_s", "wall_s", "cameras", "nodes", "models", "hdmi")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` (0..1) percentile of ascending ``sorted_values`` (linear interpolation)."""
    if not sorted_values:
        return 0.0
    pos = (len(sorted_values) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def summary_ms(seconds: Iterable[float]) -> dict[str, float | int]:
    """count / mean / p50 / p95 in milliseconds of durations given in seconds."""
    values = sorted(s * 1000.0 for s in seconds)
    if not values:
        return {"count": 0, "mean": 0.0, "p50": 0.0, "p95": 0.0}
    return {
        "count": len(values),
        "mean": round(sum(values) / len(values), 4),
        "p50": round(percentile(values, 0.5), 4),
        "p95": round(percentile(values, 0.95), 4),
    }


def camera_entry(stats: Any) -> dict[str, Any]:
    """{frames, dropped, fps} of a camera's stats (fps from first to last delivered frame)."""
    fps = 0.0
    if stats.first_t is not None and stats.last_t is not None and stats.frames > 1:
        span = stats.last_t - stats.first_t
        fps = (stats.frames - 1) / span if span > 0 else 0.0
    return {"frames": stats.frames, "dropped": stats.dropped, "fps": round(fps, 3)}


def build_report(
    *,
    exit_reason: str,
    app_exit_code: int | None,
    startup_s: float | None,
    wall_s: float,
    cameras: Mapping[str, Any],
    nodes: Mapping[str, Mapping[str, list[float]]],
    models: Mapping[str, Any],
    hdmi: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """The report dict (see the module docstring for every key).

    Args:
        cameras: node -> CameraStats. nodes: node -> {"get"/"put"/"call": seconds}.
        models: node -> a loaded model with ``backend`` and ``stats`` ({calls, mean_ms, p95_ms}).
        hdmi: stream_id -> {frames, path}.
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
    }


def _model_entry(model: Any) -> dict[str, Any]:
    stats = dict(getattr(model, "stats", {}) or {})
    from panorama_cli.localrun.devices import device_of

    backend = str(getattr(model, "backend", "unknown"))
    return {
        "backend": backend,
        "device": device_of(backend),
        "calls": int(stats.get("calls", 0)),
        "mean_ms": round(float(stats.get("mean_ms", 0.0)), 4),
        "p95_ms": round(float(stats.get("p95_ms", 0.0)), 4),
    }


def write_report(run_dir: Path, report: Mapping[str, Any]) -> Path:
    """Write ``run_dir/report.json`` atomically; returns its path."""
    path = Path(run_dir) / "report.json"
    tmp = path.with_name(".report.json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, path)
    return path
