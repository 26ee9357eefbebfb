"""Callbacks and schedules driven by the caller's loop: :class:`Schedule` and friends.

Private module; import these names from :mod:`backpack.timepiece`.

A schedule has no thread and no timer of its own. The application calls :meth:`Schedule.tick`
regularly (typically once per frame) and the schedule fires its :class:`Callback` from inside
the first ``tick()`` at or after the scheduled moment -- in the thread that called ``tick()``,
or, when the callback has an executor, by submitting it to that executor and returning at
once. This is the design of the backpack README ("Schedules").

Clocks: :class:`AtSchedule` compares against the wall clock (:func:`time.time`, because its
target is a calendar time); :class:`IntervalSchedule` measures elapsed time on
:func:`time.monotonic`, which never jumps with NTP or DST changes. Both accept an injected
``() -> float`` clock in seconds.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future
from typing import Any

_logger = logging.getLogger("backpack.timepiece")

#: What :meth:`Schedule.tick` returns when the schedule did not fire (one shared tuple).
NOT_FIRED: tuple[bool, Any] = (False, None)


def _log_failure(future: Future) -> None:
    """Done-callback: log the exception of a callback that failed in an executor."""
    if future.cancelled():
        return
    exc = future.exception()
    if exc is not None:
        _logger.error("scheduled callback failed: %r", exc, exc_info=exc)


def seconds(interval: datetime.timedelta | float) -> float:
    """Convert an interval given as a timedelta or as seconds to seconds (float)."""
    if isinstance(interval, datetime.timedelta):
        return interval.total_seconds()
    return float(interval)


class Callback:
    """A function with its arguments, called synchronously or submitted to an executor.

    Args:
        cb: the function to call.
        cbargs: positional arguments for ``cb``.
        cbkwargs: keyword arguments for ``cb``.
        executor: if given, calling this Callback submits ``cb`` to this executor
            (``concurrent.futures.Executor``) instead of calling it. An exception raised by
            ``cb`` there is logged on the ``backpack.timepiece`` logger, not lost.

    Raises:
        TypeError: ``cb`` is not callable.
    """

    __slots__ = ("cb", "cbargs", "cbkwargs", "executor")

    def __init__(
        self,
        cb: Callable[..., Any],
        cbargs: Sequence[Any] | None = None,
        cbkwargs: Mapping[str, Any] | None = None,
        executor: Executor | None = None,
    ) -> None:
        if not callable(cb):
            raise TypeError(f"cb must be callable, got {type(cb).__name__}")
        self.cb = cb
        self.cbargs = tuple(cbargs or ())
        self.cbkwargs = dict(cbkwargs or {})
        self.executor = executor

    def __call__(self) -> Any:
        """Call ``cb(*cbargs, **cbkwargs)``, or submit it to the executor.

        Returns:
            The function's return value; with an executor, the :class:`~concurrent.futures.Future`.

        Raises:
            Exception: whatever ``cb`` raises, when called synchronously.
            RuntimeError: the executor is shut down.
        """
        if self.executor is None:
            return self.cb(*self.cbargs, **self.cbkwargs)
        future = self.executor.submit(self.cb, *self.cbargs, **self.cbkwargs)
        future.add_done_callback(_log_failure)
        return future

    def __repr__(self) -> str:
        name = getattr(self.cb, "__qualname__", repr(self.cb))
        return (
            f"<Callback {name} executor={type(self.executor).__name__ if self.executor else None}>"
        )


def _as_callback(callback: Callback | Callable[[], Any]) -> Callback:
    return callback if isinstance(callback, Callback) else Callback(callback)


class Schedule(ABC):
    """Fires a :class:`Callback` from :meth:`tick` when its condition is met.

    Args:
        repeating: whether the schedule can fire more than once (:class:`AlarmClock` drops a
            non-repeating schedule after it fired).
        callback: a :class:`Callback`, or a function without arguments.

    Raises:
        TypeError: ``callback`` is not callable.
    """

    __slots__ = ("repeating", "callback")

    def __init__(self, repeating: bool, callback: Callback | Callable[[], Any]) -> None:
        self.repeating = repeating
        self.callback = _as_callback(callback)

    def fire(self) -> Any:
        """Run the callback now (or submit it to its executor).

        Returns:
            The callback's return value, or its Future when it has an executor.
        """
        return self.callback()

    @abstractmethod
    def tick(self) -> tuple[bool, Any]:
        """The heartbeat, called regularly from the application's loop.

        Returns:
            ``(True, fire() result)`` if the schedule fired in this call, else ``(False, None)``.
        """


class AtSchedule(Schedule):
    """Fires once, at the first :meth:`tick` at or after the wall-clock time ``at``.

    Setting :attr:`at` again (also from inside the callback or from another thread) re-arms
    the schedule for the new time.

    Args:
        at: when to fire; a naive datetime is taken as local time.
        callback: a :class:`Callback`, or a function without arguments.
        clock: wall clock in seconds since the Unix epoch; :func:`time.time` by default.
    """

    __slots__ = ("_at", "_at_ts", "_fired", "_clock", "_lock")

    def __init__(
        self,
        at: datetime.datetime,
        callback: Callback | Callable[[], Any],
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(repeating=False, callback=callback)
        self._clock = clock
        self._lock = threading.Lock()
        self.at = at

    @property
    def at(self) -> datetime.datetime:
        """The time to fire at."""
        return self._at

    @at.setter
    def at(self, value: datetime.datetime) -> None:
        with self._lock:
            self._at = value
            self._at_ts = value.timestamp()
            self._fired = False

    @property
    def fired(self) -> bool:
        """True once the schedule fired for the current :attr:`at`."""
        return self._fired

    def tick(self) -> tuple[bool, Any]:
        """Fire if :attr:`at` has come and the schedule has not fired for it yet.

        Returns:
            ``(True, callback result or Future)`` when it fired, else ``(False, None)``.
        """
        if self._fired:
            return NOT_FIRED
        now = self._clock()
        with self._lock:
            if self._fired or now < self._at_ts:
                return NOT_FIRED
            self._fired = True  # before firing: the callback may re-arm by setting `at`
        return True, self.fire()


class IntervalSchedule(Schedule):
    """Fires at the first :meth:`tick`, then at the first tick of each later interval.

    Firing times stay on the grid ``first_tick + k * interval`` (no drift); intervals in
    which no tick happened are skipped, not made up for.

    Args:
        interval: time between firings, a timedelta or seconds (> 0).
        callback: a :class:`Callback`, or a function without arguments.
        clock: monotonic clock in seconds; :func:`time.monotonic` by default.

    Raises:
        ValueError: ``interval`` is not positive.
    """

    __slots__ = ("interval", "_interval_s", "_next", "_clock")

    def __init__(
        self,
        interval: datetime.timedelta | float,
        callback: Callback | Callable[[], Any],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(repeating=True, callback=callback)
        interval_s = seconds(interval)
        if not interval_s > 0:
            raise ValueError(f"interval must be positive, got {interval!r}")
        self.interval = interval
        self._interval_s = interval_s
        self._next: float | None = None
        self._clock = clock

    def tick(self) -> tuple[bool, Any]:
        """Fire if this is the first tick or the next grid point has been reached.

        Returns:
            ``(True, callback result or Future)`` when it fired, else ``(False, None)``.
        """
        now = self._clock()
        nxt = self._next
        if nxt is None:
            self._next = now + self._interval_s
        elif now < nxt:
            return NOT_FIRED
        else:
            step = self._interval_s
            self._next = nxt + ((now - nxt) // step + 1) * step
        return True, self.fire()


class OrdinalSchedule(Schedule):
    """Fires at every ``ordinal``-th :meth:`tick` (the ``ordinal``-th, ``2*ordinal``-th, ...).

    Args:
        ordinal: fire once every this many ticks (>= 0); 0 never fires.
        callback: a :class:`Callback`, or a function without arguments.

    Raises:
        ValueError: ``ordinal`` is negative.
    """

    __slots__ = ("ordinal", "_counter")

    def __init__(self, ordinal: int, callback: Callback | Callable[[], Any]) -> None:
        super().__init__(repeating=True, callback=callback)
        if ordinal < 0:
            raise ValueError(f"ordinal must be >= 0, got {ordinal!r}")
        self.ordinal = ordinal
        self._counter = 0

    def tick(self) -> tuple[bool, Any]:
        """Count this tick and fire on every ``ordinal``-th one.

        Returns:
            ``(True, callback result or Future)`` when it fired, else ``(False, None)``.
        """
        if self.ordinal == 0:
            return NOT_FIRED
        self._counter += 1
        if self._counter < self.ordinal:
            return NOT_FIRED
        self._counter = 0
        return True, self.fire()


class AlarmClock:
    """Ticks a collection of schedules with one :meth:`tick` call.

    Schedules are ticked in the order they were added; a non-repeating schedule is removed
    after it fired. Schedules added or removed by a callback during a tick take effect from
    the next tick.

    Args:
        schedules: the initial schedules.
    """

    __slots__ = ("_schedules",)

    def __init__(self, schedules: Iterable[Schedule] | None = None) -> None:
        self._schedules: list[Schedule] = list(schedules or ())

    @property
    def schedules(self) -> tuple[Schedule, ...]:
        """The current schedules, in ticking order."""
        return tuple(self._schedules)

    def add(self, schedule: Schedule) -> None:
        """Append ``schedule`` (ticked after the existing ones)."""
        self._schedules.append(schedule)

    def remove(self, schedule: Schedule) -> None:
        """Remove ``schedule``; no error if it is not there."""
        if schedule in self._schedules:
            self._schedules.remove(schedule)

    def tick(self) -> int:
        """Tick every schedule, in order.

        Returns:
            How many schedules fired.

        Raises:
            Exception: whatever a synchronous callback raises (later schedules are not ticked).
        """
        fired_count = 0
        for schedule in tuple(self._schedules):
            fired, _ = schedule.tick()
            if fired:
                fired_count += 1
                if not schedule.repeating:
                    self.remove(schedule)
        return fired_count

    def __len__(self) -> int:
        return len(self._schedules)
