"""Per-call cost of backpack.timepiece in the frame loop.

Targets (issue 4): ``Ticker.tick()`` at most 1 µs mean; ``StopWatch`` enter + exit at most
3 µs. ``Tachometer.tick()`` (a Ticker tick plus an IntervalSchedule check, no report due) is
measured too, against the sum of those two budgets as an informal target.

Each row is the median over 5 repeats of (total time of N calls) / N, N = 1,000,000, timed
with :func:`time.perf_counter_ns`. The loop is a plain ``for`` over ``range`` calling a
bound method (or running a ``with`` block), so the figure includes the loop's own overhead
(about 10-20 ns): it is what the caller pays, slightly overstated.

Run: ``.venv/bin/python benchmarks/backpack_timepiece.py``; the aggregator
``benchmarks/backpack_runtime.py`` calls :func:`run`.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

from backpack.timepiece import StopWatch, Tachometer, Ticker

ITERATIONS = 1_000_000
REPEATS = 5

TICKER_TARGET_US = 1.0
STOPWATCH_TARGET_US = 3.0


def _ticker_loop(n: int) -> int:
    tick = Ticker(max_intervals=100).tick
    start = time.perf_counter_ns()
    for _ in range(n):
        tick()
    return time.perf_counter_ns() - start


def _stopwatch_loop(n: int) -> int:
    watch = StopWatch("bench", max_intervals=100)
    start = time.perf_counter_ns()
    for _ in range(n):
        with watch:
            pass
    return time.perf_counter_ns() - start


def _tachometer_loop(n: int) -> int:
    tick = Tachometer(lambda timestamp, ticker: None, stats_interval=3600.0, max_fps=1.0).tick
    start = time.perf_counter_ns()
    for _ in range(n):
        tick()
    return time.perf_counter_ns() - start


def _median_us(loop: Callable[[int], int], iterations: int, repeats: int) -> float:
    """Median over ``repeats`` of the mean time per call in microseconds."""
    loop(min(iterations, 10_000))  # warm up
    return statistics.median(loop(iterations) / iterations / 1000.0 for _ in range(repeats))


def run(
    iterations: int = ITERATIONS, repeats: int = REPEATS
) -> list[tuple[str, float, float, str]]:
    """Measure the per-call costs.

    Args:
        iterations: calls per repeat (>= 1,000,000 for the reported figures).
        repeats: repeats; the median is reported.

    Returns:
        Rows of (name, measured, target, unit), times in microseconds per call.
    """
    return [
        (
            "Ticker.tick() mean",
            _median_us(_ticker_loop, iterations, repeats),
            TICKER_TARGET_US,
            "µs",
        ),
        (
            "StopWatch enter+exit mean",
            _median_us(_stopwatch_loop, iterations, repeats),
            STOPWATCH_TARGET_US,
            "µs",
        ),
        (
            "Tachometer.tick() mean (informal)",
            _median_us(_tachometer_loop, iterations, repeats),
            TICKER_TARGET_US + STOPWATCH_TARGET_US,
            "µs",
        ),
    ]


def main() -> int:
    rows = run()
    print(f"{'benchmark':36} {'measured':>9} {'target':>8}  unit  result")
    for name, measured, target, unit in rows:
        verdict = "met" if measured <= target else "MISSED"
        print(f"{name:36} {measured:9.3f} {target:8.3f}  {unit:4}  {verdict}")
    return 0 if all(measured <= target for _, measured, target, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
