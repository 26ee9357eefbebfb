"""Timing and profiling for the frame loop: tickers, stopwatches, schedules, tachometers.

API after the backpack timepiece documentation (``backpack-timepiece.rst``, the newer of
the two versions in aws-panorama-samples): :func:`local_now`, :class:`Ticker`,
:class:`StopWatch`, :class:`Callback`, :class:`Schedule`, :class:`AtSchedule`,
:class:`IntervalSchedule`, :class:`OrdinalSchedule`, :class:`AlarmClock` and
:class:`Tachometer` (``stats_callback(timestamp, ticker)``).

Nothing here starts a thread or a timer: schedules and tachometers act from inside the
``tick()`` the application calls in its loop, in the calling thread, or hand the work to the
``concurrent.futures.Executor`` they were given. Intervals are seconds (float); timestamps
passed to callbacks are timezone-aware local datetimes.

The classes live in :mod:`backpack._timers` and :mod:`backpack._schedules` (one concept per
module) and are re-exported here; import them from ``backpack.timepiece``. Only the standard
library is used.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from backpack._schedules import (
    NOT_FIRED,
    AlarmClock,
    AtSchedule,
    Callback,
    IntervalSchedule,
    OrdinalSchedule,
    Schedule,
    seconds,
)
from backpack._timers import Clock, IntervalTimer, StopWatch, Ticker

__all__ = [
    "AlarmClock",
    "AtSchedule",
    "Callback",
    "IntervalSchedule",
    "IntervalTimer",
    "OrdinalSchedule",
    "Schedule",
    "StopWatch",
    "Tachometer",
    "Ticker",
    "local_dt",
    "local_now",
]


def local_now() -> datetime.datetime:
    """The current time as a timezone-aware datetime in the system's local time zone."""
    return datetime.datetime.now().astimezone()


def local_dt(dt: datetime.datetime) -> datetime.datetime:
    """``dt`` as an aware datetime in the local time zone (a naive ``dt`` is taken as local)."""
    return dt.astimezone()


#: Signature of a Tachometer's statistics callback: (report time, the period's intervals).
StatsCallback = Callable[[datetime.datetime, Ticker], Any]


class Tachometer:
    """Measures the interval between recurring events and reports statistics periodically.

    Call :meth:`tick` once per event (e.g. once per processed frame). Every ``stats_interval``
    -- checked inside :meth:`tick`, never from a thread of its own -- the intervals collected
    since the previous report are handed to ``stats_callback(timestamp, ticker)``:
    ``timestamp`` is the report time (aware local datetime) and ``ticker`` a :class:`Ticker`
    holding only that period's intervals (``ticker.min()``, ``max()``, ``sum()``, ``mean()``
    in seconds, ``len()`` events). The ticker is a snapshot that the frame loop no longer
    touches, so the callback may run on the executor while ticking goes on. A period without
    intervals is not reported.

    At most ``ceil(max_fps * stats_interval)`` intervals are kept per period; at a higher
    event rate the report covers the most recent ones only.

    Args:
        stats_callback: called with ``(timestamp, ticker)``; its return value (or its Future
            with an executor) is returned by the :meth:`tick` that reported.
        stats_interval: the reporting period, a timedelta or seconds (> 0); 60 s by default.
        executor: if given, ``stats_callback`` is submitted to it and :meth:`tick` returns at
            once; exceptions there are logged on the ``backpack.timepiece`` logger.
        max_fps: the highest expected event rate in hertz, sizes the interval history.
        clock: a ``() -> float`` seconds clock for both the ticker and the schedule (tests);
            by default the ticker uses :func:`time.perf_counter` and the schedule
            :func:`time.monotonic`.

    Raises:
        ValueError: ``stats_interval`` or ``max_fps`` is not positive.
    """

    __slots__ = ("stats_callback", "stats_interval", "executor", "ticker", "_schedule")

    def __init__(
        self,
        stats_callback: StatsCallback,
        stats_interval: datetime.timedelta | float = datetime.timedelta(seconds=60),
        executor: Executor | None = None,
        max_fps: float = 100.0,
        clock: Clock | None = None,
    ) -> None:
        interval_s = seconds(stats_interval)
        if not interval_s > 0 or not max_fps > 0:
            raise ValueError(
                f"stats_interval and max_fps must be positive, got {stats_interval!r}, {max_fps!r}"
            )
        self.stats_callback = stats_callback
        self.stats_interval = stats_interval
        self.executor = executor
        max_intervals = max(1, math.ceil(max_fps * interval_s))
        if clock is None:
            self.ticker = Ticker(max_intervals)
            self._schedule = IntervalSchedule(interval_s, self._report)
        else:
            self.ticker = Ticker(max_intervals, clock=clock)
            self._schedule = IntervalSchedule(interval_s, self._report, clock=clock)

    def tick(self) -> tuple[bool, Any]:
        """Register an event; report the statistics if the period is over.

        Returns:
            ``(True, stats_callback result or Future)`` if this tick reported, else
            ``(False, None)``.

        Raises:
            Exception: whatever a synchronous ``stats_callback`` raises.
        """
        self.ticker.tick()
        fired, result = self._schedule.tick()
        return result if fired else NOT_FIRED

    def flush(self) -> tuple[bool, Any]:
        """Report the intervals collected so far now, e.g. before shutting down.

        Returns:
            ``(True, stats_callback result or Future)``, or ``(False, None)`` when no
            interval was collected since the last report.
        """
        return self._report()

    def _report(self) -> tuple[bool, Any]:
        if not len(self.ticker):
            return NOT_FIRED
        period = self.ticker.drain()
        callback = Callback(self.stats_callback, (local_now(), period), executor=self.executor)
        return True, callback()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} stats_interval={seconds(self.stats_interval):g}s "
            f"pending={len(self.ticker)}>"
        )
