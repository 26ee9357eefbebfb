"""The control socket's wire format against hostile and real peers: no pickle, caps, schemas.

A real :class:`ControlServer` with the real :class:`Router` (on a one-node plan) serves
raw sockets from this process (hostile frames) and the real simulated SDK in a child
process (every message kind, numpy arrays of several dtypes inline and through the arena).
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from panorama_cli.localrun import routing
from panorama_cli.localrun.engine import SDK_DIR
from panorama_cli.localrun.frames import identity, wire
from panorama_cli.localrun.frames.channel import MAX_HELLO_BYTES
from tests.localrun.control_helpers import (
    NODE,
    TOKEN,
    _closed,
    _connect,
    _frame,
    _hello,
    _reply,
    _send,
    serving,
)


@pytest.fixture
def runner(tmp_path, monkeypatch):
    """See :func:`tests.localrun.control_helpers.serving`."""
    with serving(tmp_path, monkeypatch) as served:
        yield served


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


class _Pwn:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_that_would_create_a_file_is_refused_not_run(runner, tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"op": "hello", "x": _Pwn(marker)}, protocol=4)
    assert pickle.loads(payload) and marker.exists()  # the payload works when unpickled
    marker.unlink()
    for data in (
        struct.pack(">I", len(payload)) + payload,  # the old framing
        _frame(payload),  # the new framing, a pickle as the header
        _frame(
            json.dumps({"op": "hello", "id": 1, "node": NODE, "pid": 1, "token": TOKEN}).encode(),
            payload,
        ),  # as a blob
    ):
        with _connect(runner.server) as sock:
            sock.sendall(data)
            reply = _reply(sock)
            if reply is not None and reply.get("node") == NODE:  # a blob is only bytes
                _send(sock, {"op": "get", "id": 2, "port": "video_in", "timeout": 0})
                assert _reply(sock)["error"] == "timeout"
            else:
                assert reply is not None and reply["error"] == "protocol"
                assert _closed(sock)
    assert not marker.exists()
    assert runner.crashes == []
    with _connect(runner.server) as sock:  # the runner goes on
        _hello(sock)


def test_a_4gib_length_is_refused_before_anything_is_allocated(runner, monkeypatch):
    asked: list[int] = []
    real = wire._recv_exact

    def spy(sock, size):
        asked.append(size)
        return real(sock, size)

    monkeypatch.setattr(wire, "_recv_exact", spy)
    before = _rss_kib()
    socks = [_connect(runner.server) for _ in range(3)]
    for sock in socks:
        sock.sendall(b"\xff\xff\xff\xff" + b"x" * 64)
    replies = [_reply(sock) for sock in socks]
    after = _rss_kib()
    print(f"VmRSS before {before} KiB, after 3 x 0xFFFFFFFF {after} KiB")
    for reply, sock in zip(replies, socks, strict=True):
        assert reply["error"] == "protocol" and "4294967295 bytes" in reply["message"]
        assert str(MAX_HELLO_BYTES) in reply["message"]  # before hello: 64 KiB at most
        assert _closed(sock)
        sock.close()
    assert max(asked) == 4  # only the length word was ever read
    assert after - before < 64 * 1024  # the old reader allocated 4 GiB per such header
    warnings = runner.log.warnings()
    assert len(warnings) == 3 and all("4294967295" in r.getMessage() for r in warnings)


def test_memory_follows_the_bytes_really_sent(runner):
    """A frame under the cap that claims 60 MB but sends 1 KB costs about 1 MB, not 60."""
    socks = [_connect(runner.server) for _ in range(3)]
    for sock in socks:
        _hello(sock)
    before = _rss_kib()
    for sock in socks:
        sock.sendall(struct.pack(">II", 60 << 20, 10) + b'{"op":"x"}' + b"\0" * 1024)
    time.sleep(0.5)
    grown = _rss_kib() - before
    for sock in socks:
        sock.close()
    assert grown < 12 * 1024, f"{grown} KiB for 3 KB sent"
    deadline = time.monotonic() + 10

    def cut():
        return [r for r in runner.log.records if "before a frame's end" in r.getMessage()]

    while len(cut()) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(cut()) == 3 and runner.log.warnings() == []  # an app gone mid-frame: debug only


def test_an_arena_over_the_cap_is_refused_and_the_run_total_is_capped(runner, monkeypatch):
    with _connect(runner.server) as sock:
        _hello(sock)
        _send(sock, {"op": "arena", "id": 2, "size": wire.MAX_ARENA_BYTES + 1})
        reply = _reply(sock)
        assert reply["error"] == "value" and "limit" in reply["message"]
        _send(sock, {"op": "arena", "id": 3, "size": 1 << 20})
        assert _reply(sock)["size"] == 1 << 20  # the connection goes on
    monkeypatch.setattr(routing, "MAX_ARENA_TOTAL", 5 << 20)
    with _connect(runner.server) as first, _connect(runner.server) as second:
        _hello(first)
        _hello(second)
        _send(first, {"op": "arena", "id": 2, "size": 3 << 20})
        assert _reply(first)["size"] == 3 << 20
        _send(second, {"op": "arena", "id": 2, "size": 3 << 20})
        reply = _reply(second)
        assert reply["error"] == "value" and "per run" in reply["message"]
        _send(first, {"op": "arena", "id": 3, "size": 4 << 20})  # replaces its own
        assert _reply(first)["size"] == 4 << 20
    assert runner.crashes == [] and runner.log.warnings() == []


_ARRAY = {"dtype": "<f4", "shape": [2, 2], "data": {"$blob": [0, 16]}}


@pytest.mark.parametrize(
    "hello, header, body, says",
    [
        (False, b"{not json", b"", "not JSON"),
        (False, b"\xff\xfe", b"", "not JSON"),
        (False, b"[1, 2]", b"", "JSON list, not an object"),
        (True, b"[" * 100000, b"", "not JSON"),  # over 64 KiB: after hello
        (False, b'{"op": "get", "id": 1, "port": "video_in"}', b"", "get before hello"),
        (True, b'{"op": "exec", "id": 2}', b"", "unknown op 'exec'"),
        (True, b'{"op": "get", "id": 2, "port": 5}', b"", "get: port must be string"),
        (
            True,
            b'{"op": "get", "id": 2, "port": "p", "timeout": -1}',
            b"",
            "timeout must be bigger than or equal to 0",
        ),
        (
            True,
            b'{"op": "get", "id": 2, "port": "p", "x": 1}',
            b"",
            "must not contain {'x'} properties",
        ),
        (True, b'{"op": "arena", "id": 2, "size": 1.5}', b"", "size must be integer"),
        (True, b'{"op": "arena", "id": 2, "size": true}', b"", "size must be integer"),
        (
            True,
            b'{"op": "get", "id": 2, "port": "p", "timeout": "5"}',
            b"",
            "timeout must be number",
        ),
        (
            True,
            b'{"op": "put", "port": "p", "media": [{"ref": ["a", -1]}]}',
            b"",
            "media[0].ref[1] must be bigger than or equal to 0",
        ),
        (
            True,
            json.dumps(
                {"op": "call", "id": 2, "model": "double", "inputs": {"array": _ARRAY}}
            ).encode(),
            b"\0" * 8,
            "outside the 8 bytes sent",
        ),
        (
            True,
            json.dumps(
                {"op": "call", "id": 2, "model": "double", "inputs": {"array": _ARRAY}}
            ).encode(),
            b"\0" * 64,
            "",  # fits: answered
        ),
        (
            True,
            json.dumps(
                {
                    "op": "call",
                    "id": 2,
                    "model": "double",
                    "inputs": {"array": {**_ARRAY, "shape": [3, 2]}},
                }
            ).encode(),
            b"\0" * 64,
            "of 24 bytes sent with 16",
        ),
        (
            True,
            json.dumps(
                {
                    "op": "call",
                    "id": 2,
                    "model": "double",
                    "inputs": {"array": {**_ARRAY, "dtype": "|O"}},
                }
            ).encode(),
            b"\0" * 64,
            "dtype",
        ),
        (
            True,
            json.dumps(
                {
                    "op": "call",
                    "id": 2,
                    "model": "double",
                    "inputs": {"array": {**_ARRAY, "arena": "psm_x", "offset": 0}},
                }
            ).encode(),
            b"\0" * 64,
            "an array has data or arena + offset",
        ),
        (
            True,
            b'{"op": "call", "id": 2, "model": "double", "inputs": {"array": {"dtype": "<f4", "shape": [1]}}}',
            b"",
            "an array has data or arena + offset",
        ),
    ],
)
def test_a_bad_message_is_one_warning_a_protocol_error_and_a_closed_connection(
    runner, hello, header, body, says
):
    with _connect(runner.server) as sock:
        if hello:
            _hello(sock)
        sock.sendall(_frame(header, body))
        reply = _reply(sock)
        if not says:
            assert [o["dtype"] for o in reply["outputs"]] == ["<f4", "<f4"]
            assert runner.log.warnings() == []
            return
        assert reply["error"] == "protocol" and says in reply["message"]
        assert _closed(sock)
    warnings = runner.log.warnings()
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    line = warnings[0].getMessage()
    assert "\n" not in line and says in line and warnings[0].exc_info is None
    assert (f"node {NODE}" in line) == hello
    assert runner.crashes == []
    with _connect(runner.server) as sock:
        _hello(sock)


_CLIENT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import panoramasdk
    from panoramasdk import _client

    app = panoramasdk.node()
    out = {"inputs": sorted(p.name for p in app.inputs), "models": _client.connection().hello["models"]}
    try:
        app.inputs.video_in.get(timeout=0.2)
    except TimeoutError as exc:
        out["get"] = str(exc)
    app.outputs.video_out.put([])
    conn = _client.connection()
    conn.post({"op": "put", "port": "video_out",
               "media": [{"ref": ["none", 0], "labels": [["a", 0.1, 0.2]], "rects": [[0, 0, 1, 1]]}]})
    for _ in range(300):
        conn.record("get", 0.001)  # a stats message after 256
    checks = {}
    for dtype in sys.argv[1:]:
        small = (np.arange(24) % 3).astype(dtype).reshape(2, 3, 4)
        large = (np.arange(3 * 40000) % 5).astype(dtype).reshape(3, 40000)[:, ::2]
        got = app.call({"small": small, "large": large}, "double")
        want = [~a if a.dtype == np.bool_ else a * 2 for a in (small, large)]
        checks[dtype] = [
            str(got[0].dtype), list(got[1].shape), bool((got[0] == want[0]).all()),
            bool((got[1] == want[1]).all()), float(got[2].mean()), got[0].flags.writeable,
        ]
    out["calls"] = checks
    out["one"] = app.call(np.ones(3, np.float64), "double")[0].tolist()
    big = app.call({"big": np.ones((1, 3, 400, 400), np.float64)}, "double")  # a new arena
    out["big"] = [list(big[0].shape), float(big[0].sum())]
    out["arena"] = conn.arena is not None
    try:
        conn.request({"op": "get", "port": 5})
    except RuntimeError as exc:
        out["refused"] = str(exc)
    try:
        app.call({"x": np.array(["text"])}, "double")
    except TypeError as exc:
        out["strings"] = str(exc)
    out["after"] = app.call(np.zeros(2, np.int32), "double")[0].tolist()  # a new connection
    print(json.dumps(out))
    """
)

DTYPES = ["uint8", "int8", "int16", "uint32", "int64", "float16", "float32", "float64", "bool"]


def test_every_message_kind_round_trips_with_the_real_sdk(runner, tmp_path):
    script = tmp_path / "client.py"
    script.write_text(_CLIENT)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(SDK_DIR),
        "PANORAMA_LOCALRUN_SOCKET": str(runner.server.path),
        "PANORAMA_LOCALRUN_NODE": NODE,
        identity.TOKEN_ENV: TOKEN,
    }
    done = subprocess.run(
        [sys.executable, str(script), *DTYPES], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["inputs"] == ["video_in"] and out["models"] == ["double"]
    assert out["get"] == "no camera is connected to this input"
    for dtype in DTYPES:
        assert out["calls"][dtype] == [np.dtype(dtype).name, [3, 20000], True, True, 1.5, True]
    assert out["one"] == [2.0, 2.0, 2.0] and out["arena"] is True
    assert out["big"] == [[1, 3, 400, 400], 2.0 * 3 * 400 * 400]
    assert "the panorama-cli runner refused: get: port must be string" in out["refused"]
    assert "cannot be model inputs" in out["strings"]
    assert out["after"] == [0, 0]
    assert {"hello", "get", "put", "call", "stats", "arena"} <= set(runner.seen)
    assert runner.router.model_callers() == {"double": [NODE]}  # serve's page draws the call arrow
    assert runner.crashes == []
    warnings = [r.getMessage() for r in runner.log.warnings()]
    assert len(warnings) == 1 and f"node {NODE}" in warnings[0] and "port" in warnings[0]


def test_pickle_is_gone_from_both_ends():
    for path in (
        Path(wire.__file__),
        Path(wire.__file__).with_name("channel.py"),
        SDK_DIR / "panoramasdk" / "_client.py",
        SDK_DIR / "panoramasdk" / "__init__.py",
    ):
        text = path.read_text()
        assert "import pickle" not in text and "loads(" not in text.replace("json.loads(", "")
