"""report.py: streaming timing statistics (bounded memory) and atomic report writes."""

from __future__ import annotations

import json
import os
import random
import threading
import tracemalloc

import numpy as np
import pytest

from panorama_cli.localrun.frames.feeds import NodeStats
from panorama_cli.localrun.report import RESERVOIR, TimingStats, summary_ms, write_report


def test_timing_stats_are_exact_while_small_and_close_when_large():
    small = TimingStats()
    values = [random.Random(1).uniform(0, 0.05) for _ in range(1000)]
    for value in values:
        small.add(value)
    got = small.summary(1000.0)
    ms = np.array(values) * 1000.0
    assert got["count"] == 1000
    assert got["mean"] == pytest.approx(ms.mean(), abs=1e-3)
    assert got["p50"] == pytest.approx(np.percentile(ms, 50), abs=1e-3)
    assert got["p95"] == pytest.approx(np.percentile(ms, 95), abs=1e-3)
    assert got["max"] == pytest.approx(ms.max(), abs=1e-3)

    large = TimingStats()
    rng = np.random.default_rng(3)
    samples = rng.lognormal(mean=-4.0, sigma=0.5, size=200_000)
    for value in samples:
        large.add(value)
    got = large.summary(1000.0)
    samples = samples * 1000.0
    assert got["count"] == 200_000
    assert got["mean"] == pytest.approx(samples.mean(), abs=1e-4)
    assert got["max"] == pytest.approx(samples.max(), abs=1e-4)
    # a uniform sample of 4096 values: quantiles within a few percent
    assert got["p50"] == pytest.approx(np.percentile(samples, 50), rel=0.05)
    assert got["p95"] == pytest.approx(np.percentile(samples, 95), rel=0.05)


def test_bad_samples_are_ignored_and_empty_is_zeros():
    stats = TimingStats()
    for value in (float("nan"), -1.0, float("inf")):
        stats.add(value)
    assert stats.summary() == {"count": 0, "mean": 0.0, "p50": 0.0, "p95": 0.0, "max": 0.0}
    node = NodeStats()
    node.add([("get", 0.01), ("put", "x"), ("bogus", 1.0)])
    node.add(5)  # not pairs at all: ignored, no exception in the session thread
    assert summary_ms(node.samples["get"])["count"] == 1


def test_node_stats_memory_does_not_grow_with_the_run():
    """Before: every sample kept (104 bytes per frame of get+put+call); now bounded."""
    node = NodeStats()
    frame = [("get", 0.004), ("put", 0.001), ("call", 0.02)]
    for _ in range(RESERVOIR):  # fill the reservoirs first
        node.add(frame)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(50_000):
            node.add([("get", 0.004 + i * 1e-9), ("put", 0.001), ("call", 0.02)])
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 10_000, f"{grown / 50_000:.1f} bytes per frame"
    assert node.samples["get"].count == RESERVOIR + 50_000


def test_report_writes_are_atomic_and_leave_no_temporary_file(tmp_path):
    stop = threading.Event()
    seen: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.append(json.loads((tmp_path / "report.json").read_text())["exit_reason"])
            except FileNotFoundError:
                pass

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(200):
            reason = "running" if i % 2 else "frames"
            write_report(tmp_path, {"exit_reason": reason, "pad": "x" * 5000})
    finally:
        stop.set()
        thread.join()
    assert seen and set(seen) <= {"running", "frames"}  # never half a file
    assert os.listdir(tmp_path) == ["report.json"]
