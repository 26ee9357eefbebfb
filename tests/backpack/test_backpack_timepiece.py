"""backpack.timepiece: tickers, stopwatches, schedules, alarm clock and tachometer.

Most tests inject a fake clock (seconds as exact binary fractions, so interval arithmetic is
exact); a few use the real clocks with short sleeps and tolerant bounds.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from backpack.timepiece import (
    AlarmClock,
    AtSchedule,
    Callback,
    IntervalSchedule,
    OrdinalSchedule,
    StopWatch,
    Tachometer,
    Ticker,
    local_dt,
    local_now,
)


class FakeClock:
    """A clock that only moves when told to (seconds)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def executor():
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bp-test")
    yield pool
    pool.shutdown(wait=True)


def run_in_thread(target) -> threading.Thread:
    """Run ``target`` in a named non-main thread and wait for it."""
    thread = threading.Thread(target=target, name="frame-loop")
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    return thread


# --------------------------------------------------------------------------- local time


def test_local_now_is_aware_and_current():
    now = local_now()
    assert now.tzinfo is not None and now.utcoffset() is not None
    assert abs(now.timestamp() - time.time()) < 1.0


def test_local_dt_makes_naive_datetime_aware_without_moving_it():
    naive = datetime.datetime(2022, 2, 18, 13, 8, 27)
    aware = local_dt(naive)
    assert aware.tzinfo is not None
    assert aware.timestamp() == naive.timestamp()


# --------------------------------------------------------------------------- Ticker


def test_ticker_first_tick_starts_the_clock_then_records_intervals(clock):
    ticker = Ticker(max_intervals=10, clock=clock)
    ticker.tick()
    assert ticker.len() == 0 and ticker.intervals == ()
    for step in (0.25, 0.5, 0.125):
        clock.advance(step)
        ticker.tick()
    assert ticker.intervals == (0.25, 0.5, 0.125)
    assert ticker.min() == 0.125
    assert ticker.max() == 0.5
    assert ticker.sum() == 0.875
    assert ticker.mean() == pytest.approx(0.875 / 3)
    assert ticker.len() == len(ticker) == 3
    assert ticker.freq() == pytest.approx(3 / 0.875)


def test_ticker_history_is_bounded_to_the_most_recent_intervals(clock):
    ticker = Ticker(max_intervals=3, clock=clock)
    ticker.tick()
    for step in range(1, 11):
        clock.advance(float(step))
        ticker.tick()
    assert ticker.max_intervals == 3
    assert ticker.intervals == (8.0, 9.0, 10.0)
    assert ticker.min() == 8.0 and ticker.sum() == 27.0


def test_ticker_empty_statistics_are_zero():
    ticker = Ticker()
    assert (ticker.min(), ticker.max(), ticker.mean(), ticker.sum(), ticker.freq()) == (
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
    )
    assert repr(ticker) == "<Ticker intervals=[]>"


def test_ticker_rejects_empty_history():
    with pytest.raises(ValueError):
        Ticker(max_intervals=0)


def test_ticker_repr_matches_readme_format(clock):
    ticker = Ticker(max_intervals=5, clock=clock)
    ticker.tick()
    for step in (0.0899, 0.0632, 0.0543, 0.0713, 0.0681):
        clock.advance(step)
        ticker.tick()
    assert repr(ticker) == (
        "<Ticker intervals=[0.0899, 0.0632, 0.0543, 0.0713, 0.0681] "
        "min=0.0543 mean=0.0694 max=0.0899>"
    )


def test_ticker_repr_shows_the_five_most_recent_intervals(clock):
    ticker = Ticker(max_intervals=8, clock=clock)
    ticker.tick()
    for step in range(1, 9):
        clock.advance(step / 8)
        ticker.tick()
    assert repr(ticker).startswith(
        "<Ticker intervals=[..., 0.5000, 0.6250, 0.7500, 0.8750, 1.0000] min=0.1250 "
    )


def test_ticker_reset_forgets_intervals_and_last_tick(clock):
    ticker = Ticker(clock=clock)
    ticker.tick()
    clock.advance(1.0)
    ticker.tick()
    ticker.reset()
    clock.advance(5.0)
    ticker.tick()
    assert ticker.len() == 0


def test_ticker_drain_moves_intervals_and_keeps_counting_from_last_tick(clock):
    ticker = Ticker(max_intervals=4, clock=clock)
    ticker.tick()
    clock.advance(0.5)
    ticker.tick()
    taken = ticker.drain()
    assert taken.intervals == (0.5,) and taken.max_intervals == 4
    assert ticker.len() == 0
    clock.advance(0.25)
    ticker.tick()
    assert ticker.intervals == (0.25,)
    assert taken.intervals == (0.5,)


def test_ticker_with_real_clock_measures_sleeps():
    ticker = Ticker()
    ticker.tick()
    for _ in range(3):
        time.sleep(0.02)
        ticker.tick()
    assert ticker.len() == 3
    assert 0.02 <= ticker.min() <= ticker.max() < 0.5


# --------------------------------------------------------------------------- StopWatch


def test_stopwatch_parent_encloses_and_sums_its_children(clock):
    with StopWatch("root", clock=clock) as root:
        with root.child("task1", max_intervals=5) as task1:
            clock.advance(0.125)  # task1's own work
            with task1.child("subtask1_1") as subtask1_1:
                clock.advance(0.25)
            with task1.child("subtask1_2"):
                clock.advance(0.5)
            with subtask1_1:
                clock.advance(0.0625)
        for _ in range(3):
            with root.child("task2"):
                clock.advance(1.0)
    task2 = root.children["task2"]
    assert subtask1_1.intervals == (0.25, 0.0625)
    children_sum = sum(c.sum() for c in task1.children.values())
    assert task1.intervals == (0.125 + children_sum,)
    assert root.intervals == (task1.sum() + task2.sum(),)
    assert task2.intervals == (1.0, 1.0, 1.0)
    assert task1.max_intervals == 5
    assert task1.children["subtask1_1"].max_intervals == 5  # inherited
    assert task2.max_intervals == root.max_intervals == 10
    assert root.child("task1") is task1
    assert subtask1_1.parent is task1 and task1.parent is root and root.parent is None
    assert subtask1_1.full_name() == "root.task1.subtask1_1"
    assert (root.level, task1.level, subtask1_1.level) == (0, 1, 2)
    assert list(subtask1_1.parents()) == [task1, root]


def test_stopwatch_repr_is_the_readme_tree(clock):
    with StopWatch("root", clock=clock) as root:
        with root.child("task1") as task1:
            with task1.child("a"):
                clock.advance(0.25)
            with task1.child("b"):
                clock.advance(0.5)
        with root.child("task2"):
            clock.advance(0.125)
    assert repr(root) == (
        "<StopWatch name=root intervals=[0.8750] min=0.8750 mean=0.8750 max=0.8750 children=[\n"
        "    <StopWatch name=task1 intervals=[0.7500] min=0.7500 mean=0.7500 max=0.7500 children=[\n"
        "        <StopWatch name=a intervals=[0.2500] min=0.2500 mean=0.2500 max=0.2500>,\n"
        "        <StopWatch name=b intervals=[0.5000] min=0.5000 mean=0.5000 max=0.5000>\n"
        "    ]>,\n"
        "    <StopWatch name=task2 intervals=[0.1250] min=0.1250 mean=0.1250 max=0.1250>\n"
        "]>"
    )
    # A subtree prints from column 0.
    assert repr(task1).startswith("<StopWatch name=task1 ")


def test_stopwatch_records_when_the_block_raises_and_lets_it_propagate(clock):
    watch = StopWatch("w", clock=clock)
    with pytest.raises(KeyError):
        with watch:
            clock.advance(0.5)
            raise KeyError("x")
    assert watch.intervals == (0.5,)
    assert not watch.running


def test_stopwatch_is_not_reentrant(clock):
    watch = StopWatch("w", clock=clock)
    with watch:
        assert watch.running
        with pytest.raises(RuntimeError):
            watch.__enter__()
    assert watch.len() == 1


def test_stopwatch_measure_decorator_keeps_return_value(clock):
    watch = StopWatch("w", clock=clock)

    @watch.measure
    def work(x, *, y):
        clock.advance(0.25)
        return x + y

    assert work(1, y=2) == 3
    assert work(2, y=2) == 4
    assert work.__name__ == "work"
    assert watch.intervals == (0.25, 0.25)


def test_stopwatch_with_real_clock_parent_covers_children():
    with StopWatch("root") as root:
        with root.child("a"):
            time.sleep(0.02)
        with root.child("b"):
            time.sleep(0.01)
    a, b = root.children["a"], root.children["b"]
    assert a.sum() >= 0.02 and b.sum() >= 0.01
    assert root.sum() >= a.sum() + b.sum()
    assert root.sum() < a.sum() + b.sum() + 0.05


# --------------------------------------------------------------------------- Callback


def test_callback_passes_args_and_kwargs_synchronously():
    seen = []
    cb = Callback(
        cb=lambda a, b, *, c: seen.append((a, b, c)) or "ok", cbargs=[1, 2], cbkwargs={"c": 3}
    )
    assert cb() == "ok"
    assert seen == [(1, 2, 3)]


def test_callback_with_executor_runs_there_and_returns_future(executor):
    caller = threading.current_thread()
    cb = Callback(cb=lambda x: (threading.current_thread(), x * 2), cbargs=[21], executor=executor)
    future = cb()
    assert isinstance(future, Future)
    thread, value = future.result(timeout=5)
    assert value == 42
    assert thread is not caller and thread.name.startswith("bp-test")


def test_callback_failure_in_executor_is_logged(executor, caplog):
    def boom():
        raise ValueError("callback exploded")

    with caplog.at_level(logging.ERROR, logger="backpack.timepiece"):
        future = Callback(boom, executor=executor)()
        with pytest.raises(ValueError):
            future.result(timeout=5)
        deadline = time.monotonic() + 5
        while "callback exploded" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.01)
    assert "callback exploded" in caplog.text


def test_callback_rejects_non_callable():
    with pytest.raises(TypeError):
        Callback(cb=42)


# --------------------------------------------------------------------------- AtSchedule


def test_at_schedule_fires_once_at_first_tick_after_at(clock):
    calls = []
    at = datetime.datetime.fromtimestamp(clock.now + 3.0, tz=datetime.timezone.utc)
    schedule = AtSchedule(at=at, callback=lambda: calls.append(clock.now) or "fired", clock=clock)
    assert schedule.tick() == (False, None)
    clock.advance(2.5)
    assert schedule.tick() == (False, None)
    clock.advance(0.75)
    assert schedule.tick() == (True, "fired")
    clock.advance(10)
    assert schedule.tick() == (False, None)
    assert calls == [1003.25]
    assert schedule.fired and not schedule.repeating


def test_at_schedule_rearms_when_at_is_set_from_its_callback(clock):
    calls = []

    def callback():
        calls.append(clock.now)
        schedule.at = schedule.at + datetime.timedelta(seconds=10)

    start = datetime.datetime.fromtimestamp(clock.now + 1.0).astimezone()
    schedule = AtSchedule(at=start, callback=callback, clock=clock)
    for _ in range(25):
        clock.advance(1.0)
        schedule.tick()
    assert calls == [1001.0, 1011.0, 1021.0]


def test_at_schedule_takes_naive_datetime_as_local_time(clock):
    naive = datetime.datetime.fromtimestamp(clock.now + 5.0)  # naive local
    schedule = AtSchedule(at=naive, callback=lambda: None, clock=clock)
    clock.advance(4.5)
    assert schedule.tick()[0] is False
    clock.advance(0.5)
    assert schedule.tick()[0] is True


def test_at_schedule_with_real_clock_never_fires_by_itself():
    calls = []
    at = local_now() + datetime.timedelta(seconds=0.05)
    threads_before = threading.active_count()
    schedule = AtSchedule(at=at, callback=lambda: calls.append(local_now()))
    time.sleep(0.15)
    assert calls == []  # no tick, no call: schedules have no thread or timer
    assert threading.active_count() == threads_before
    assert schedule.tick()[0] is True
    assert len(calls) == 1 and calls[0] >= at


# --------------------------------------------------------------------------- IntervalSchedule


def test_interval_schedule_fires_first_tick_then_on_the_grid(clock):
    fired_at = []
    schedule = IntervalSchedule(
        interval=datetime.timedelta(seconds=1),
        callback=lambda: fired_at.append(clock.now),
        clock=clock,
    )
    # offsets from the first tick at which tick() is called
    for offset in (0.0, 0.5, 0.999, 1.0, 1.7, 2.0, 2.5, 5.3, 5.9, 6.0, 6.1):
        clock.now = 1000.0 + offset
        schedule.tick()
    assert [round(t - 1000.0, 3) for t in fired_at] == [0.0, 1.0, 2.0, 5.3, 6.0]


def test_interval_schedule_accepts_seconds_and_rejects_non_positive(clock):
    schedule = IntervalSchedule(interval=0.25, callback=lambda: "x", clock=clock)
    assert schedule.tick() == (True, "x")
    clock.advance(0.125)
    assert schedule.tick() == (False, None)
    clock.advance(0.125)
    assert schedule.tick() == (True, "x")
    for bad in (0, -1.0, datetime.timedelta(0)):
        with pytest.raises(ValueError):
            IntervalSchedule(interval=bad, callback=lambda: None)


# --------------------------------------------------------------------------- OrdinalSchedule


def test_ordinal_schedule_fires_every_nth_tick():
    fired = []
    counter = iter(range(1, 100))
    schedule = OrdinalSchedule(ordinal=3, callback=lambda: None)
    for _ in range(10):
        n = next(counter)
        if schedule.tick()[0]:
            fired.append(n)
    assert fired == [3, 6, 9]


def test_ordinal_zero_never_fires_and_negative_is_rejected():
    schedule = OrdinalSchedule(ordinal=0, callback=lambda: pytest.fail("fired"))
    for _ in range(5):
        assert schedule.tick() == (False, None)
    with pytest.raises(ValueError):
        OrdinalSchedule(ordinal=-1, callback=lambda: None)


# --------------------------------------------------------------------------- threads


def test_synchronous_callbacks_run_in_the_thread_that_ticks(clock):
    seen = []

    def record(name):
        seen.append((name, threading.current_thread().name))

    at = datetime.datetime.fromtimestamp(clock.now).astimezone()
    alarm = AlarmClock(
        [
            AtSchedule(at=at, callback=Callback(record, ["at"]), clock=clock),
            IntervalSchedule(1.0, Callback(record, ["interval"]), clock=clock),
            OrdinalSchedule(1, Callback(record, ["ordinal"])),
        ]
    )
    run_in_thread(alarm.tick)
    assert seen == [("at", "frame-loop"), ("interval", "frame-loop"), ("ordinal", "frame-loop")]


def test_schedules_with_executor_submit_and_return_at_once(clock, executor):
    started = threading.Event()
    release = threading.Event()
    caller = threading.current_thread()
    ran_in = []

    def slow():
        ran_in.append(threading.current_thread())
        started.set()
        release.wait(5)
        return "done"

    schedule = OrdinalSchedule(1, Callback(slow, executor=executor))
    t0 = time.perf_counter()
    fired, future = schedule.tick()
    elapsed = time.perf_counter() - t0
    assert fired and isinstance(future, Future)
    assert started.wait(5)
    assert not future.done()  # tick() returned while the callback was still running
    assert elapsed < 1.0
    release.set()
    assert future.result(timeout=5) == "done"
    assert ran_in[0] is not caller


def test_synchronous_callback_exception_propagates_from_tick():
    schedule = OrdinalSchedule(1, lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        schedule.tick()


# --------------------------------------------------------------------------- AlarmClock


def test_alarm_clock_ticks_in_order_and_drops_fired_one_shots(clock):
    order = []
    at = datetime.datetime.fromtimestamp(clock.now + 2.0).astimezone()
    at_schedule = AtSchedule(at=at, callback=lambda: order.append("at"), clock=clock)
    ordinal = OrdinalSchedule(2, lambda: order.append("ordinal"))
    interval = IntervalSchedule(1.0, lambda: order.append("interval"), clock=clock)
    alarm = AlarmClock([ordinal, at_schedule, interval])

    assert alarm.tick() == 1  # t=0: interval (first tick)
    clock.advance(1.0)
    assert alarm.tick() == 2  # t=1: ordinal (2nd tick), interval
    clock.advance(1.0)
    assert alarm.tick() == 2  # t=2: at, interval
    assert alarm.schedules == (ordinal, interval)
    clock.advance(1.0)
    assert alarm.tick() == 2  # t=3: ordinal, interval
    assert order == ["interval", "ordinal", "interval", "at", "interval", "ordinal", "interval"]
    assert len(alarm) == 2


def test_alarm_clock_schedule_added_by_callback_runs_from_next_tick():
    order = []
    alarm = AlarmClock()
    late = OrdinalSchedule(1, lambda: order.append("late"))
    alarm.add(OrdinalSchedule(1, lambda: order.append("first") or alarm.add(late)))
    alarm.tick()
    assert order == ["first"]
    alarm.remove(alarm.schedules[0])
    alarm.tick()
    assert order == ["first", "late"]
    alarm.remove(OrdinalSchedule(1, lambda: None))  # absent: no error


# --------------------------------------------------------------------------- Tachometer


def test_tachometer_reports_each_period_with_that_periods_intervals(clock):
    reports = []

    def stats(timestamp, ticker):
        reports.append((clock.now, timestamp, ticker.intervals, ticker.min(), ticker.sum()))
        return "reported"

    tach = Tachometer(stats, stats_interval=datetime.timedelta(seconds=1), clock=clock)
    results = []
    for _ in range(13):  # ticks at t = 0, 0.25, ..., 3.0
        results.append(tach.tick())
        clock.advance(0.25)
    assert [r for r in results if r[0]] == [(True, "reported")] * 3
    assert [round(r[0] - 1000.0, 3) for r in reports] == [1.0, 2.0, 3.0]
    for _, timestamp, intervals, minimum, total in reports:
        assert timestamp.tzinfo is not None
        assert intervals == (0.25,) * 4 and minimum == 0.25 and total == 1.0
    assert sum(r[4] for r in reports) == 3.0  # no interval lost between periods


def test_tachometer_skips_empty_period_and_flushes_pending(clock):
    reports = []
    tach = Tachometer(lambda ts, t: reports.append(t.intervals), stats_interval=10.0, clock=clock)
    assert tach.flush() == (False, None)
    tach.tick()
    assert reports == []  # first tick: nothing to report yet
    clock.advance(0.5)
    tach.tick()
    clock.advance(0.25)
    tach.tick()
    fired, _ = tach.flush()
    assert fired and reports == [(0.5, 0.25)]
    assert tach.flush() == (False, None)


def test_tachometer_history_bound_follows_max_fps(clock):
    tach = Tachometer(lambda ts, t: None, stats_interval=2.0, max_fps=5, clock=clock)
    assert tach.ticker.max_intervals == 10
    with pytest.raises(ValueError):
        Tachometer(lambda ts, t: None, stats_interval=0)


def test_tachometer_executor_gets_a_snapshot_the_loop_no_longer_touches(clock, executor):
    got = []
    gate = threading.Event()

    def stats(timestamp, ticker):
        gate.wait(5)
        got.append((threading.current_thread().name, ticker.intervals))

    tach = Tachometer(stats, stats_interval=1.0, executor=executor, clock=clock)
    futures = []
    for _ in range(9):  # t = 0 .. 2.0 by 0.25
        fired, fut = tach.tick()
        if fired:
            futures.append(fut)
        clock.advance(0.25)
    assert len(futures) == 2 and all(isinstance(f, Future) for f in futures)
    gate.set()
    for f in futures:
        f.result(timeout=5)
    assert [g[1] for g in got] == [(0.25,) * 4, (0.25,) * 4]
    assert all(name.startswith("bp-test") for name, _ in got)


def test_tachometer_real_clock_cadence():
    reports = []
    tach = Tachometer(
        lambda ts, t: reports.append((time.monotonic(), t.len(), t.sum())), stats_interval=0.1
    )
    start = time.monotonic()
    while time.monotonic() - start < 0.55:
        tach.tick()
        time.sleep(0.005)
    assert 3 <= len(reports) <= 6  # 5 expected; tolerant of a loaded machine
    gaps = [b[0] - a[0] for a, b in zip(reports, reports[1:], strict=False)]
    assert all(0.08 <= g <= 0.5 for g in gaps), gaps
    for _, n, total in reports:
        assert n >= 2 and 0.05 <= total <= 0.5
