"""serve's restart policy and node keeper: backoff, reset, failed, retry (real processes)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from panorama_cli.errors import UserError
from panorama_cli.localrun.serve.keeper import NodeKeeper
from panorama_cli.localrun.serve.policy import RestartPolicy


def test_backoff_doubles_to_the_cap_and_resets_after_a_long_run():
    policy = RestartPolicy(window_s=10_000, max_crashes=100)
    delays = [policy.after_exit(now=float(i), up_s=0.5)[1] for i in range(9)]
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert policy.after_exit(now=100.0, up_s=61.0) == ("backoff", 1.0)  # up 60 s: from 1 s


def test_five_crashes_in_five_minutes_fail_and_the_retry_every_five_minutes_stays_failed():
    policy = RestartPolicy()
    states = [policy.after_exit(now=10.0 * i, up_s=1.0)[0] for i in range(5)]
    assert states == ["backoff"] * 4 + ["failed"]
    assert policy.after_exit(now=400.0, up_s=2.0) == ("failed", 300.0)  # retry crashed too
    assert policy.after_exit(now=800.0, up_s=120.0) == ("backoff", 1.0)  # the retry held


def test_crashes_spread_over_more_than_the_window_never_fail():
    policy = RestartPolicy()
    assert {policy.after_exit(now=100.0 * i, up_s=1.0)[0] for i in range(20)} == {"backoff"}


class _Process:
    """A real child process with the AppProcess interface the keeper uses."""

    def __init__(self, code: str, started: list[int]):
        self.code = code
        self.started = started
        self.proc: subprocess.Popen[bytes] | None = None
        self.notes: list[str] = []
        self.stopped_by = None

    def start(self):
        if self.code == "refuse":
            raise UserError("cannot start")
        self.proc = subprocess.Popen([sys.executable, "-c", self.code])
        self.started.append(self.proc.pid)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def poll(self):
        return self.proc.poll() if self.proc else None

    def stop(self, grace_s=2.0):
        self.kill()
        self.stopped_by = "SIGINT"
        return self.poll()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait()


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _keeper(code: str, clock: _Clock, started: list[int], notes: list[str]) -> NodeKeeper:
    return NodeKeeper(
        "code_node",
        lambda: _Process(code, started),
        lambda event, data: notes.append(data["text"]),
        clock=clock,
    )


def _wait_exit(keeper: NodeKeeper) -> None:
    keeper._app.proc.wait(timeout=10)


def test_keeper_restarts_a_crashed_node_after_its_backoff_and_counts_it():
    clock, started, notes = _Clock(), [], []
    keeper = _keeper("raise SystemExit(3)", clock, started, notes)
    keeper.start()
    assert keeper.state == "starting" and len(started) == 1
    _wait_exit(keeper)
    keeper.tick()
    assert (keeper.state, keeper.last_exit, keeper.pid) == ("backoff", 3, None)
    assert notes[-1] == "node code_node exited (status 3); restarting in 1 s"
    clock.now = 0.5
    keeper.tick()
    assert len(started) == 1  # still backing off
    clock.now = 1.0
    keeper.tick()
    assert len(started) == 2 and keeper.restarts == 1 and keeper.state == "starting"
    keeper.connected()
    assert keeper.state == "running"
    keeper.stop()


def test_keeper_fails_a_node_that_keeps_crashing_and_retries_it_later():
    clock, started, notes = _Clock(), [], []
    keeper = _keeper("raise SystemExit(1)", clock, started, notes)
    keeper.start()
    for _ in range(5):
        _wait_exit(keeper)
        keeper.tick()
        clock.now = keeper.next_start
        if keeper.state == "backoff":
            keeper.tick()
    assert keeper.state == "failed"
    assert "failed: it crashed 5 times within 5 minutes" in notes[-1]
    assert len(started) == 5
    clock.now = keeper.next_start
    keeper.tick()
    assert len(started) == 6 and keeper.state == "starting"
    keeper.stop()


def test_a_node_that_cannot_start_at_all_is_an_error_at_start_but_not_on_restart():
    clock, started, notes = _Clock(), [], []
    with pytest.raises(UserError):
        _keeper("refuse", clock, started, notes).start()
    codes = iter(["raise SystemExit(2)", "refuse"])
    keeper = NodeKeeper(
        "code_node", lambda: _Process(next(codes), started), lambda e, d: notes.append(d["text"]),
        clock=clock,
    )  # fmt: skip
    keeper.start()
    _wait_exit(keeper)
    keeper.tick()
    clock.now = keeper.next_start
    keeper.tick()  # the restart cannot start: counted as an exit, backing off again
    assert keeper.state == "backoff" and keeper.last_exit == 1 and keeper.next_start == 3.0


def test_a_stopped_keeper_never_restarts_its_node():
    clock, started, notes = _Clock(), [], []
    keeper = _keeper("import time; time.sleep(30)", clock, started, notes)
    keeper.start()
    keeper.stop()
    clock.now = 1000.0
    keeper.tick()
    assert len(started) == 1 and keeper.stop_requested
