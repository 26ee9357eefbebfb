"""The runner's parts on their own: socket path, frame rings, parameter typing, report stats."""

from __future__ import annotations

import fcntl
import mmap
import os
from pathlib import Path

import numpy as np
import pytest

from panorama_cli.errors import UsageError, UserError
from panorama_cli.localrun.frames.channel import (
    MAX_SOCKET_PATH,
    CallArena,
    pack_array,
    socket_path,
    unpack_array,
)
from panorama_cli.localrun.frames.ring import FrameRing
from panorama_cli.localrun.plan import parameter_value, parse_binding
from panorama_cli.localrun.report import percentile, summary_ms


def test_socket_path_stays_under_the_unix_limit(tmp_path):
    short = socket_path(tmp_path)
    assert short == tmp_path / "ctl.sock"
    deep = tmp_path / ("d" * 120)
    far = socket_path(deep)
    assert len(str(far)) <= MAX_SOCKET_PATH and far.parent.name.startswith("pcr-")
    far.parent.rmdir()


def _shm_names() -> set[str]:
    return {p.name for p in Path("/dev/shm").iterdir()} if Path("/dev/shm").is_dir() else set()


def test_frame_ring_slots_are_shared_memory_and_held_slots_are_skipped():
    before = _shm_names()
    ring = FrameRing((4, 6, 3), slots=3, stream="cam")
    try:
        assert _shm_names() == before  # anonymous: nothing in /dev/shm names the ring
        first = ring.write(np.full((4, 6, 3), 1, np.uint8))
        ring.hold(first)
        second = ring.write(np.full((4, 6, 3), 2, np.uint8))
        third = ring.write(np.full((4, 6, 3), 3, np.uint8))
        fourth = ring.write(np.full((4, 6, 3), 4, np.uint8))  # wraps, skipping the held slot
        assert (first, second, third) == (0, 1, 2) and fourth == 1
        assert int(ring.view(first)[0, 0, 0]) == 1
        fd = ring.dup_fd()  # what the runner sends the app
        assert fd is not None
        mapped = mmap.mmap(fd, 0)  # what the SDK maps
        os.close(fd)
        view = np.ndarray((4, 6, 3), np.uint8, buffer=mapped, offset=ring.offset(fourth))
        assert int(view[3, 5, 2]) == 4
        view[0, 0, 0] = 99  # the app draws in place: the runner sees it
        assert int(ring.view(fourth)[0, 0, 0]) == 99
        del view
        mapped.close()
        ring.release(first)
    finally:
        ring.close()
    assert ring.dup_fd() is None and _shm_names() == before


def test_an_app_holding_a_rings_descriptor_cannot_resize_or_seal_it():
    """A truncated ring would kill the runner with SIGBUS on its next frame."""
    ring = FrameRing((4, 6, 3), slots=2, stream="cam")
    fd = ring.dup_fd()
    assert fd is not None
    try:
        for size in (0, 10, 1 << 20):
            with pytest.raises(PermissionError):
                os.ftruncate(fd, size)
        with pytest.raises(PermissionError):
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE)
        assert os.fstat(fd).st_size == 4 * 6 * 3 * 2
        ring.write(np.full((4, 6, 3), 7, np.uint8))  # the runner goes on writing
    finally:
        os.close(fd)
        ring.close()


def test_arrays_travel_without_numpy_pickles():
    array = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]  # not contiguous
    packed = pack_array(array)
    assert (packed["dtype"], packed["shape"]) == ("<f4", [3, 2])
    assert isinstance(packed["data"], bytes)
    assert (unpack_array(packed, None) == array).all()


def test_large_arrays_go_through_the_sessions_arena():
    arena = CallArena(1 << 20)
    try:
        view = arena.view("<f4", (1, 3, 224, 224), 64)
        view[...] = 2.5
        ref = {"dtype": "<f4", "shape": [1, 3, 224, 224], "arena": arena.name, "offset": 64}
        same = unpack_array(ref, arena)
        assert same.shape == (1, 3, 224, 224) and float(same.mean()) == 2.5
        with pytest.raises(ValueError, match="unknown shared memory"):
            unpack_array({**ref, "arena": "a-someone_else"}, arena)
        with pytest.raises(ValueError, match="outside"):
            unpack_array({**ref, "offset": (1 << 20) - 64}, arena)
        del view, same
    finally:
        arena.close()
    assert arena.dup_fd() is None


@pytest.mark.parametrize(
    "type_name, text, value",
    [
        ("float32", "60", 60.0),
        ("float32", 60, 60.0),
        ("int32", "7", 7),
        ("boolean", "true", True),
        ("boolean", "0", False),
        ("string", "us-west-2", "us-west-2"),
    ],
)
def test_parameter_values_are_typed_by_the_interface(type_name, text, value):
    typed = parameter_value(type_name, text, "--param p")
    assert typed == value and type(typed) is type(value)


@pytest.mark.parametrize("type_name, text", [("int32", "1.5"), ("float32", "x"), ("boolean", "2")])
def test_bad_parameter_values_are_one_line(type_name, text):
    with pytest.raises(UserError, match=f"is not a {type_name} value"):
        parameter_value(type_name, text, "--param p")


def test_bindings_need_node_equals_value():
    assert parse_binding("cam=rtsp://a/b?x=1", "--camera") == ("cam", "rtsp://a/b?x=1")
    with pytest.raises(UsageError, match="give NODE=SOURCE") as raised:
        parse_binding("just-a-file.avi", "--camera", ["front", "back"])
    assert raised.value.exit_code == 2
    assert raised.value.hint == "camera nodes: front, back; e.g. --camera front=just-a-file.avi"


def test_timing_summaries_in_milliseconds():
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    stats = summary_ms([0.001] * 19 + [0.021])
    assert stats["count"] == 20 and stats["p50"] == 1.0 and stats["mean"] == 2.0
    assert stats["p95"] == pytest.approx(2.0, abs=1e-9)
    assert summary_ms([]) == {"count": 0, "mean": 0.0, "p50": 0.0, "p95": 0.0, "max": 0.0}


def test_frame_ring_reuses_given_back_slots_first_and_finds_its_own_views():
    ring = FrameRing((2, 2, 3), slots=4, stream="cam")
    try:
        views = [ring.claim_view() for _ in range(3)]
        assert [ring.slot_of(v) for v in views] == [0, 1, 2]
        assert ring.slot_of(views[0].copy()) is None  # same pixels, another array
        assert ring.slot_of(np.zeros((2, 2, 3), np.uint8)) is None
        ring.unclaim(views[1])  # dropped, never delivered: reused first
        ring.unclaim(np.zeros((2, 2, 3), np.uint8))  # not the ring's: ignored
        assert ring.claim() == 1
        assert [ring.claim() for _ in range(3)] == [3, 0, 2]  # then least recently claimed
        ring.hold(1)
        assert ring.claim() == 3  # a held slot is skipped
        ring.release(1)
    finally:
        ring.close()
    assert ring.claim_view() is None and ring.slot_of(views[0]) is None
