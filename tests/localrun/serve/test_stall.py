"""Which nodes serve marks ``stalled``: only a running node fed by a camera that has frames
for it, after :data:`~panorama_cli.localrun.serve.keeper.STALL_S` seconds without taking one."""

from __future__ import annotations

import time
from types import SimpleNamespace

from panorama_cli.localrun.serve.keeper import STALL_S, NodeKeeper
from panorama_cli.localrun.serve.runtime import ServeRuntime
from panorama_cli.localrun.serve.status import ServeStatus


class Plan:
    """Two business nodes: ``watcher`` (camera ``cam`` on video_in), ``thinker`` (models only,
    fed by no camera)."""

    def __init__(self) -> None:
        self.business = [
            SimpleNamespace(node=SimpleNamespace(name="watcher"), inputs=["video_in"]),
            SimpleNamespace(node=SimpleNamespace(name="thinker"), inputs=["ask"]),
        ]
        self.business_names = ["watcher", "thinker"]

    def media_producers(self, node: str, port: str) -> list[tuple[str, str]]:
        return [("cam", "video_out")] if node == "watcher" else []


def _feed(*, connected=True, started=True, read_ago=0.0):
    now = time.monotonic()
    stats = SimpleNamespace(read_t=now - read_ago, last_t=None, frames=0, dropped=0, fps=0.0)
    camera = SimpleNamespace(connected=connected, stats=stats, source=SimpleNamespace())
    return SimpleNamespace(camera=camera, started=started, last_taken={}, uri="cam.mp4")


def _runtime(feed) -> tuple[ServeRuntime, list[str]]:
    notes: list[str] = []
    runtime = ServeRuntime.__new__(ServeRuntime)
    runtime.plan = Plan()
    runtime.feeds = {"cam": feed}
    runtime.apps = {}
    for name in ("watcher", "thinker"):
        keeper = NodeKeeper(name, lambda: None, lambda e, d: notes.append(d["text"]))
        keeper.state = "running"
        keeper._started_at = time.monotonic() - 2 * STALL_S  # up for a while
        runtime.apps[name] = keeper
    return runtime, notes


def test_a_node_taking_no_frame_while_its_camera_has_them_is_stalled_then_running_again():
    feed = _feed()
    runtime, notes = _runtime(feed)
    runtime.check_stalls(time.monotonic())
    assert runtime.apps["watcher"].state == "stalled"
    assert runtime.apps["thinker"].state == "running"  # no camera input: never stalled
    assert notes == [f"node watcher stalled: no frame taken in the last {STALL_S:g} s"]
    feed.last_taken[("watcher", "video_in")] = time.monotonic()
    runtime.check_stalls(time.monotonic())
    assert runtime.apps["watcher"].state == "running"
    assert notes[-1] == "node watcher is taking frames again"


def test_a_camera_without_frames_is_blamed_not_the_node():
    for feed in (_feed(connected=False), _feed(read_ago=30.0)):
        runtime, notes = _runtime(feed)
        runtime.check_stalls(time.monotonic())
        assert runtime.apps["watcher"].state == "running" and notes == []


def test_a_node_that_never_asked_is_stalled_after_the_grace_since_its_start():
    runtime, _ = _runtime(_feed(started=False))
    runtime.apps["watcher"]._started_at = time.monotonic() - STALL_S / 2
    runtime.check_stalls(time.monotonic())
    assert runtime.apps["watcher"].state == "running"  # still in its grace
    runtime.check_stalls(time.monotonic() + STALL_S)
    assert runtime.apps["watcher"].state == "stalled"


def test_readyz_names_the_stalled_node():
    runtime, _ = _runtime(_feed())
    runtime.check_stalls(time.monotonic())
    runtime.router = None
    runtime.models = {}
    status = ServeStatus(SimpleNamespace(known_live=lambda s: None, rtsp=None), None, "h")
    status.runtime = runtime
    status.streams = lambda: []  # type: ignore[method-assign]
    assert status.ready() == (
        False, f"node watcher stalled: no frame taken in the last {STALL_S:g} s"
    )  # fmt: skip
