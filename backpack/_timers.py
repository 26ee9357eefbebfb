"""Interval timers: :class:`Ticker` (time between events) and :class:`StopWatch` (time in a block).

Private module; import these names from :mod:`backpack.timepiece`.

Both keep a bounded history of intervals in seconds (``collections.deque`` with ``maxlen``, so
recording never allocates a growing list) and compute min/max/mean/sum on demand: statistics
are read seldom (once a reporting period), intervals are recorded on every frame. The
per-event methods are kept to one clock read, one subtraction and one ``deque.append``
(bound once in ``__init__``); see ``benchmarks/backpack_timepiece.py`` for their cost.

The default clock is :func:`time.perf_counter`: monotonic, highest resolution, meant for
measuring short durations. Any ``() -> float`` clock in seconds can be injected (tests do).

The ``repr`` formats follow the backpack README (``<Ticker intervals=[...] min=... mean=...
max=...>`` and the indented ``<StopWatch name=... children=[...]>`` tree).
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])

#: A clock: returns seconds as a float from an arbitrary, fixed origin.
Clock = Callable[[], float]


class IntervalTimer:
    """Base class: a bounded history of time intervals (seconds) and their statistics.

    Args:
        max_intervals: how many of the most recent intervals to keep (>= 1). Older intervals
            are dropped and no longer count in any statistic.

    Raises:
        ValueError: ``max_intervals`` is less than 1.
    """

    __slots__ = ("_intervals", "_append")

    #: ``repr`` shows at most this many of the most recent intervals (older ones as ``...``).
    MAX_REPR_INTERVALS = 5

    def __init__(self, max_intervals: int = 10) -> None:
        if int(max_intervals) < 1:
            raise ValueError(f"max_intervals must be at least 1, got {max_intervals!r}")
        self._intervals: deque[float] = deque(maxlen=int(max_intervals))
        self._append = self._intervals.append

    @property
    def max_intervals(self) -> int:
        """How many intervals are kept (the history bound)."""
        return self._intervals.maxlen or 0

    @property
    def intervals(self) -> tuple[float, ...]:
        """The recorded intervals in seconds, oldest first (a copy)."""
        return tuple(self._intervals)

    def min(self) -> float:
        """The shortest recorded interval in seconds; 0.0 when nothing is recorded."""
        return min(self._intervals) if self._intervals else 0.0

    def max(self) -> float:
        """The longest recorded interval in seconds; 0.0 when nothing is recorded."""
        return max(self._intervals) if self._intervals else 0.0

    def sum(self) -> float:
        """The sum of the recorded intervals in seconds; 0.0 when nothing is recorded."""
        return sum(self._intervals)

    def mean(self) -> float:
        """The mean recorded interval in seconds; 0.0 when nothing is recorded."""
        n = len(self._intervals)
        return sum(self._intervals) / n if n else 0.0

    def len(self) -> int:
        """The number of recorded intervals (at most :attr:`max_intervals`)."""
        return len(self._intervals)

    def __len__(self) -> int:
        return len(self._intervals)

    def freq(self) -> float:
        """The mean event frequency in hertz (1 / :meth:`mean`); 0.0 when not defined."""
        mean = self.mean()
        return 1.0 / mean if mean > 0 else 0.0

    def reset(self) -> None:
        """Forget the recorded intervals."""
        self._intervals.clear()

    def _stats_repr(self) -> str:
        """``intervals=[...] min=... mean=... max=...`` with four decimals (seconds)."""
        intervals = self._intervals
        n = len(intervals)
        if not n:
            return "intervals=[]"
        shown = [f"{iv:.4f}" for iv in islice(intervals, max(0, n - self.MAX_REPR_INTERVALS), n)]
        if n > self.MAX_REPR_INTERVALS:
            shown.insert(0, "...")
        return (
            f"intervals=[{', '.join(shown)}] "
            f"min={self.min():.4f} mean={self.mean():.4f} max={self.max():.4f}"
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._stats_repr()}>"


class Ticker(IntervalTimer):
    """Measures the time between successive :meth:`tick` calls (e.g. frame-to-frame time).

    The first tick only starts the clock; each later tick records the interval since the
    previous one. Not thread-safe: tick one Ticker from one thread.

    Example::

        ticker = Ticker(max_intervals=5)
        for _ in range(10):
            ticker.tick()
            process_frame()
        print(ticker)
        # <Ticker intervals=[0.0899, 0.0632, 0.0543, 0.0713, 0.0681] min=0.0543 ...>

    Args:
        max_intervals: how many of the most recent intervals to keep (>= 1).
        clock: time source in seconds; :func:`time.perf_counter` by default.

    Raises:
        ValueError: ``max_intervals`` is less than 1.
    """

    __slots__ = ("_clock", "_last")

    def __init__(self, max_intervals: int = 10, clock: Clock = time.perf_counter) -> None:
        super().__init__(max_intervals)
        self._clock = clock
        self._last: float | None = None

    def tick(self) -> None:
        """Register an event: record the seconds elapsed since the previous tick, if any."""
        now = self._clock()
        last = self._last
        self._last = now
        if last is not None:
            self._append(now - last)

    def reset(self) -> None:
        """Forget the recorded intervals and the last tick (the next tick starts afresh)."""
        self._intervals.clear()
        self._last = None

    def drain(self) -> Ticker:
        """Move the recorded intervals into a new Ticker and return it.

        This Ticker keeps its last tick time, so the interval up to the next tick is recorded
        here and no time is lost between two drains. Used by :class:`Tachometer` to hand one
        reporting period's intervals to a callback (possibly on another thread) while the
        frame loop goes on ticking this one.

        Returns:
            A Ticker with the same clock and ``max_intervals`` holding the drained intervals.
        """
        taken = Ticker(self.max_intervals, self._clock)
        taken._intervals, self._intervals = self._intervals, taken._intervals
        taken._append, self._append = self._append, taken._append
        taken._last = self._last
        return taken


class StopWatch(IntervalTimer):
    """Measures the time spent in a block, as a context manager, in a hierarchy of watches.

    Each ``with watch:`` records one interval (seconds from ``__enter__`` to ``__exit__``,
    also when the block raises). :meth:`child` returns a named sub-watch; a parent's block
    encloses its children's blocks, so a parent's interval is the sum of its children's plus
    the parent's own work in between. A watch is not re-entrant (no ``with w: with w:``) and
    not thread-safe.

    Example (see ``repr`` format in the backpack README)::

        with StopWatch("root") as root:
            with root.child("preprocess"):
                ...
            with root.child("inference"):
                ...
        print(root)

    Args:
        name: name shown in ``repr`` and :meth:`full_name`.
        max_intervals: how many of the most recent intervals to keep (>= 1).
        clock: time source in seconds; :func:`time.perf_counter` by default.

    Raises:
        ValueError: ``max_intervals`` is less than 1.

    Attributes:
        name: the name of this watch.
        parent: the watch whose :meth:`child` created this one, or None.
        children: child watches by name, in creation order.
    """

    __slots__ = ("name", "parent", "children", "_clock", "_start")

    def __init__(self, name: str, max_intervals: int = 10, clock: Clock = time.perf_counter):
        super().__init__(max_intervals)
        self.name = name
        self.parent: StopWatch | None = None
        self.children: dict[str, StopWatch] = {}
        self._clock = clock
        self._start: float | None = None

    def __enter__(self) -> StopWatch:
        """Start measuring; returns this watch.

        Raises:
            RuntimeError: the watch is already running (re-entered).
        """
        if self._start is not None:
            raise RuntimeError(f"StopWatch {self.name!r} is already running")
        self._start = self._clock()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        """Stop measuring and record the interval; exceptions propagate."""
        self._append(self._clock() - self._start)  # type: ignore[operator]
        self._start = None

    @property
    def running(self) -> bool:
        """True between ``__enter__`` and ``__exit__``."""
        return self._start is not None

    def child(self, name: str, max_intervals: int | None = None) -> StopWatch:
        """Return the child watch called ``name``, creating it on first use.

        Args:
            name: the child's name (unique among this watch's children).
            max_intervals: history bound of a new child; defaults to this watch's. Ignored
                when the child exists already.

        Returns:
            The child StopWatch (same clock as this one).
        """
        existing = self.children.get(name)
        if existing is not None:
            return existing
        child = StopWatch(name, max_intervals or self.max_intervals, self._clock)
        child.parent = self
        self.children[name] = child
        return child

    def parents(self) -> Iterator[StopWatch]:
        """Yield the parent, the grandparent, ... up to the root."""
        current = self.parent
        while current is not None:
            yield current
            current = current.parent

    @property
    def level(self) -> int:
        """Depth in the hierarchy: 0 for a root watch."""
        return sum(1 for _ in self.parents())

    def full_name(self) -> str:
        """Dotted name from the root, e.g. ``"root.task1.subtask1_1"``."""
        names = [self.name, *(p.name for p in self.parents())]
        return ".".join(reversed(names))

    def measure(self, function: _F) -> _F:
        """Decorator: time every call of ``function`` with this watch.

        Returns:
            A wrapper with the same signature and return value as ``function``.
        """

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    def _repr_tree(self, depth: int) -> str:
        indent = "    " * depth
        head = f"{indent}<StopWatch name={self.name} {self._stats_repr()}"
        if not self.children:
            return head + ">"
        body = ",\n".join(c._repr_tree(depth + 1) for c in self.children.values())
        return f"{head} children=[\n{body}\n{indent}]>"

    def __repr__(self) -> str:
        """This watch and its descendants, one per line, indented by four spaces a level."""
        return self._repr_tree(0)
