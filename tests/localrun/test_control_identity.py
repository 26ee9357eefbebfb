"""Who may speak on the control socket: a node's own token, per-node connection limits, a
deadline for hello.

A real :class:`ControlServer` and :class:`Router` (the fixture of ``test_channel_wire``: nodes
``app_node`` and ``other_node``, small limits) against raw sockets from this process and the
real simulated SDK in child processes.
"""

from __future__ import annotations

import array
import json
import mmap
import os
import socket
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from panorama_cli.localrun.engine import SDK_DIR
from panorama_cli.localrun.frames import identity, wire
from panorama_cli.localrun.frames.ring import FrameRing
from tests.localrun.control_helpers import (
    KEY,
    NODE,
    OTHER,
    PENDING,
    PER_NODE,
    TOKEN,
    _closed,
    _connect,
    _hello,
    _reply,
    _send,
    serving,
)

OTHER_TOKEN = identity.node_token(KEY, OTHER)


@pytest.fixture
def runner(tmp_path, monkeypatch):
    """See :func:`tests.localrun.control_helpers.serving`."""
    with serving(tmp_path, monkeypatch) as served:
        yield served


def _refused(sock, says: str) -> None:
    reply = _reply(sock)
    assert reply is not None and reply["error"] == "protocol", reply
    assert says in reply["message"], reply["message"]
    assert _closed(sock)


def _say_hello(sock, node: str, **fields) -> None:
    _send(sock, {"op": "hello", "id": 1, "node": node, "pid": 4242, **fields})


def _until(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_hello_as_another_node_is_refused_logged_once_and_closed(runner):
    attempts = [
        ({"token": OTHER_TOKEN}, f"the hello's token is not node {NODE}'s"),  # its own token
        ({}, f"has no token ({identity.TOKEN_ENV} is unset)"),
        ({"token": ""}, f"the hello's token is not node {NODE}'s"),
        ({"token": TOKEN[:-1] + ("A" if TOKEN[-1] != "A" else "B")}, "is not node"),
        ({"token": identity.node_token(identity.new_key(), NODE)}, "is not node"),  # other key
    ]
    for fields, says in attempts:
        with _connect(runner.server) as sock:
            _say_hello(sock, NODE, **fields)
            _refused(sock, says)
    assert _until(lambda: runner.server.connections() == 0)
    warnings = [r.getMessage() for r in runner.log.warnings()]
    assert len(warnings) == 1, warnings  # one per claimed node a minute, however many tries
    assert f"refused a hello as '{NODE}'" in warnings[0] and "peer pid" in warnings[0]
    assert runner.server.connections(NODE) == 0 and runner.router.model_callers() == {}
    with _connect(runner.server) as sock:  # the real node still gets in
        assert _hello(sock)["node"] == NODE
        _send(sock, {"op": "get", "id": 2, "port": "video_in", "timeout": 0})
        assert _reply(sock)["error"] == "timeout"
    assert runner.crashes == []


def test_a_hello_for_a_node_outside_the_graph_is_refused(runner):
    for node in ("front_camera", "output_node", "double", ""):
        with _connect(runner.server) as sock:
            _say_hello(sock, node, token=identity.node_token(KEY, node))
            _refused(sock, "is not a business-logic node of this application graph")
    assert runner.seen == []  # the router never saw any of them


def test_a_node_at_its_connection_limit_cannot_starve_another(runner):
    held = []
    try:
        for _ in range(PER_NODE):
            sock = _connect(runner.server)
            _say_hello(sock, OTHER, token=OTHER_TOKEN)
            assert _reply(sock)["node"] == OTHER
            held.append(sock)
        assert runner.server.connections(OTHER) == PER_NODE
        for _ in range(3):
            with _connect(runner.server) as extra:
                _say_hello(extra, OTHER, token=OTHER_TOKEN)
                _refused(extra, f"too many connections of node {OTHER} (the limit is {PER_NODE}")
        warnings = [r.getMessage() for r in runner.log.warnings()]
        assert len(warnings) == 1 and "too many connections of node other_node" in warnings[0]
        mine = [_connect(runner.server) for _ in range(PER_NODE)]  # app_node has all of its own
        for sock in mine:
            assert _hello(sock)["node"] == NODE
        assert runner.server.connections(NODE) == PER_NODE
        for sock in mine:
            sock.close()
        held.pop().close()  # a freed connection counts again
        assert _until(lambda: runner.server.connections(OTHER) < PER_NODE)
        with _connect(runner.server) as again:
            _say_hello(again, OTHER, token=OTHER_TOKEN)
            assert _reply(again)["node"] == OTHER
    finally:
        for sock in held:
            sock.close()
    assert runner.crashes == []


def test_a_silent_connection_is_closed_after_the_hello_deadline(runner):
    started = time.monotonic()
    silent = [_connect(runner.server) for _ in range(PENDING)]
    try:
        assert _until(lambda: runner.server.connections() == PENDING)
        with _connect(runner.server) as extra:  # the pre-hello bound is full: refused at once
            _refused(extra, f"too many connections waiting to say hello (the limit is {PENDING})")
        for sock in silent:
            assert _closed(sock)  # closed by the runner: recv sees the end
        elapsed = time.monotonic() - started
        assert 1.5 < elapsed < 8, elapsed  # the fixture's deadline is 2 s
        assert _until(lambda: runner.server.connections() == 0)
        with _connect(runner.server) as sock:
            assert _hello(sock)["node"] == NODE
        warnings = [r.getMessage() for r in runner.log.warnings()]
        assert any("no hello within 2 s" in w for w in warnings), warnings
        assert sum("waiting to say hello" in w for w in warnings) == 1
    finally:
        for sock in silent:
            sock.close()


def test_a_slow_hello_counts_against_the_same_deadline(runner):
    """A hello trickled a byte at a time (slowloris) is cut at the deadline too."""
    with _connect(runner.server) as sock:
        data = json.dumps({"op": "hello", "id": 1, "node": NODE, "pid": 1, "token": TOKEN})
        sock.sendall(len(data).to_bytes(4, "big"))
        started = time.monotonic()
        assert _closed(sock)
        assert 1.5 < time.monotonic() - started < 8


_SDK_CLIENT = textwrap.dedent(
    """
    import json
    import panoramasdk
    try:
        app = panoramasdk.node()
        print(json.dumps({"node": app.inputs._panorama_meta[0]}))
    except RuntimeError as exc:
        print(json.dumps({"refused": str(exc)}))
    """
)


def _sdk(runner, tmp_path, node: str, **env_extra: str) -> dict:
    script = tmp_path / "client.py"
    script.write_text(_SDK_CLIENT)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(SDK_DIR),
        "PANORAMA_LOCALRUN_SOCKET": str(runner.server.path),
        "PANORAMA_LOCALRUN_NODE": node,
        **env_extra,
    }
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_sdk_sends_its_token_from_the_environment_or_a_file(runner, tmp_path):
    assert _sdk(runner, tmp_path, NODE, **{identity.TOKEN_ENV: TOKEN}) == {"node": NODE}
    secret = tmp_path / "token"
    secret.write_text(OTHER_TOKEN + "\n")  # a secret file, a newline at its end
    assert _sdk(runner, tmp_path, OTHER, **{identity.TOKEN_FILE_ENV: str(secret)}) == {
        "node": OTHER
    }
    spoofed = _sdk(runner, tmp_path, NODE, **{identity.TOKEN_FILE_ENV: str(secret)})
    assert spoofed == {
        "refused": f"the panorama-cli runner refused: the hello's token is not node {NODE}'s"
    }
    bare = _sdk(runner, tmp_path, NODE)
    assert "has no token" in bare["refused"] and identity.TOKEN_ENV in bare["refused"]


def _receive_with_fds(sock) -> tuple[dict, list[int]]:
    """The next message and the descriptors attached to it (as the SDK reads them)."""
    fds: list[int] = []

    def exact(size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk, ancillary, _flags, _addr = sock.recvmsg(
                size - len(data), socket.CMSG_SPACE(16 * 4)
            )
            for level, kind, payload in ancillary:
                if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):
                    fds.extend(array.array("i", payload[: len(payload) - len(payload) % 4]))
            assert chunk, "closed"
            data += chunk
        return data

    (size,) = struct.unpack(">I", exact(4))
    payload = exact(size)
    (header,) = struct.unpack_from(">I", payload)
    return json.loads(payload[4 : 4 + header]), fds


def test_a_ring_reaches_only_the_node_its_frames_were_delivered_to(runner):
    ring = FrameRing((4, 6, 3), slots=2, stream="front_camera")
    slot = ring.write(np.full((4, 6, 3), 77, np.uint8))
    runner.router._by_name[ring.name] = ring  # as a get to app_node makes it
    runner.router._grant(NODE, [{"ring": ring.name}])
    try:
        with _connect(runner.server) as other:
            _say_hello(other, OTHER, token=OTHER_TOKEN)
            assert _reply(other)["node"] == OTHER
            _send(other, {"op": "ring", "id": 2, "ring": ring.name})
            reply, fds = _receive_with_fds(other)
            assert reply == {
                "id": 2,
                "error": "value",
                "message": f"no frame ring {ring.name!r} here",
            }
            assert fds == []
            _send(
                other,
                {"op": "call", "id": 3, "model": "double", "inputs": {"media": [ring.name, slot]}},
            )
            reply, fds = _receive_with_fds(other)
            assert reply["error"] == "value" and "not a frame" in reply["message"] and fds == []
        with _connect(runner.server) as mine:
            _hello(mine)
            _send(mine, {"op": "ring", "id": 2, "ring": ring.name})
            reply, fds = _receive_with_fds(mine)
            assert reply["ring"] == ring.name and reply["fds"] == [ring.name] and len(fds) == 1
            mapped = mmap.mmap(fds[0], 0)
            os.close(fds[0])
            assert mapped[ring.offset(slot)] == 77 and len(mapped) == ring.frame_bytes * 2
            mapped.close()
            _send(
                mine,
                {"op": "call", "id": 3, "model": "double", "inputs": {"media": [ring.name, slot]}},
            )
            reply, _ = _receive_with_fds(mine)
            assert "outputs" in reply, reply
    finally:
        ring.close()
    assert runner.crashes == []


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_descriptors_neither_leak_from_the_runner_nor_into_it(runner):
    """The runner closes the copy of a ring's descriptor it sends; descriptors an app sends
    the runner are never taken (the kernel closes them)."""
    ring = FrameRing((4, 6, 3), slots=2, stream="front_camera")
    runner.router._by_name[ring.name] = ring
    runner.router._grant(NODE, [{"ring": ring.name}])
    try:
        with _connect(runner.server) as mine:
            _hello(mine)
            before = _open_fds()
            for request in range(2, 202):
                _send(mine, {"op": "ring", "id": request, "ring": ring.name})
                reply, fds = _receive_with_fds(mine)
                assert reply["fds"] == [ring.name] and len(fds) == 1
                os.close(fds[0])  # the test's own copy
            data = wire.encode({"op": "stats", "stats": [["get", 0.001]]})
            with open("/dev/null") as null:
                for _ in range(100):  # one-way messages carrying descriptors to the runner
                    mine.sendmsg(
                        [data],
                        [
                            (
                                socket.SOL_SOCKET,
                                socket.SCM_RIGHTS,
                                array.array("i", [null.fileno()] * 8),
                            )
                        ],
                    )
            _send(mine, {"op": "get", "id": 300, "port": "video_in", "timeout": 0})
            assert _receive_with_fds(mine)[0]["error"] == "timeout"
            assert _open_fds() <= before + 2, (before, _open_fds())
    finally:
        ring.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="connecting as another uid needs root")
def test_silent_connections_of_one_uid_leave_another_uid_room_to_say_hello(runner):
    """The pre-hello bound is per peer uid as the kernel gives it (SO_PEERCRED): an app that
    fills its share with silent connections does not keep a node with its own uid out."""
    silent = [_connect(runner.server) for _ in range(PENDING)]
    folder = runner.server.path.parent
    old_mode = folder.stat().st_mode & 0o777
    try:
        assert _until(lambda: runner.server.connections() == PENDING)
        with _connect(runner.server) as extra:  # this uid's share is full
            _refused(extra, "too many connections waiting to say hello")
        folder.chmod(0o711)
        runner.server.path.chmod(0o666)
        reply = _hello_as_uid(folder, runner.server.path.name, 2_000_999_001)
        assert "error" not in reply, reply
    finally:
        folder.chmod(old_mode)
        for sock in silent:
            sock.close()


def _hello_as_uid(folder, name: str, uid: int) -> dict:
    """Connect to ``folder/name`` from a forked child running as ``uid``, say hello as
    :data:`NODE` with its token, and return the runner's reply."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read_end)
            os.chdir(folder)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(10)
                sock.connect(name)
                _say_hello(sock, NODE, token=TOKEN)
                os.write(write_end, json.dumps(_reply(sock)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as stream:
        data = stream.read()
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and data, "the other uid could not connect"
    return json.loads(data)
