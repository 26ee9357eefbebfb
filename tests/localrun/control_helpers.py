"""The control socket under test: a real ControlServer and Router on a two-node plan, and raw
socket helpers (hostile peers speak the wire format by hand)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from panorama_cli.localrun.frames import identity, wire
from panorama_cli.localrun.frames.channel import ControlServer, socket_path
from panorama_cli.localrun.routing import Router

NODE, OTHER = "app_node", "other_node"
KEY = identity.new_key()
TOKEN = identity.node_token(KEY, NODE)
#: The pre-hello and per-node limits of the fixture's server (small, so tests fill them).
PENDING, PER_NODE = 4, 6


class _Double:
    """A model node: each input array doubled (same dtype), plus a 1 MB float32 output."""

    def run(self, payload):
        arrays = list(payload.values()) if isinstance(payload, dict) else [payload]
        return tuple(a * 2 if a.dtype != np.bool_ else ~a for a in arrays) + (
            np.full((512, 512), 1.5, np.float32),
        )


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)

    def warnings(self):
        return [r for r in self.records if r.levelno >= logging.WARNING]


@contextlib.contextmanager
def serving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """A ControlServer + Router for business nodes ``app_node`` and ``other_node`` and model
    ``double``; yields (server, router, ops seen, log records, thread exceptions)."""
    business = [
        SimpleNamespace(
            node=SimpleNamespace(name=name),
            inputs={"video_in": {"type": "media", "connected": True}},
            outputs={"video_out": {"type": "media", "connected": True}},
            package_json="packages/app/package.json",
        )
        for name in (NODE, OTHER)
    ]
    plan = SimpleNamespace(
        business=business,
        models=[SimpleNamespace(name="double")],
        sinks=set(),
        graph=SimpleNamespace(edges_from=lambda node, port: []),
        media_producers=lambda node, port: [],
    )
    router = Router(plan, {}, {"double": _Double()}, None, lambda node: None, lambda: None)
    seen: list[str] = []

    def handler(session, message):
        seen.append(message["op"])
        router(session, message)

    records = _Records()
    logger = logging.getLogger("panorama_cli.localrun")
    logger.addHandler(records)
    children = [
        logging.getLogger(f"panorama_cli.localrun.{n}") for n in ("channel", "wire", "routing")
    ]
    saved = [(each, each.level, each.disabled) for each in (logger, *children)]
    logger.setLevel(logging.DEBUG)  # setLevel, not the attribute: it clears isEnabledFor's cache
    for child in children:  # earlier tests may have set or disabled them
        child.setLevel(logging.NOTSET)
        child.disabled = False
    crashes: list[object] = []
    monkeypatch.setattr(threading, "excepthook", crashes.append)
    server = ControlServer(
        socket_path(tmp_path),
        handler,
        on_close=router.session_closed,
        key=KEY,
        nodes=[NODE, OTHER],
        max_per_node=PER_NODE,
        max_pending=PENDING,
        hello_timeout_s=2.0,
    )
    try:
        yield SimpleNamespace(server=server, router=router, seen=seen, log=records, crashes=crashes)
    finally:
        server.close()
        router.close()
        logger.removeHandler(records)
        for each, level, disabled in saved:
            each.setLevel(level)
            each.disabled = disabled


def _connect(server) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(server.path))
    return sock


def _frame(header: bytes, body: bytes = b"") -> bytes:
    return struct.pack(">II", 4 + len(header) + len(body), len(header)) + header + body


def _send(sock, message: dict) -> None:
    sock.sendall(wire.encode(message))


def _reply(sock) -> dict | None:
    """The next message from the runner, or None when it closed the connection."""
    try:
        first = sock.recv(4, socket.MSG_WAITALL)
        if len(first) < 4:
            return None
        (size,) = struct.unpack(">I", first)
        payload = sock.recv(size, socket.MSG_WAITALL)
    except ConnectionResetError:
        return None
    (header,) = struct.unpack_from(">I", payload)
    return json.loads(payload[4 : 4 + header])


def _closed(sock) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _hello(sock) -> dict:
    _send(sock, {"op": "hello", "id": 1, "node": NODE, "pid": os.getpid(), "token": TOKEN})
    reply = _reply(sock)
    assert reply is not None and reply["node"] == NODE
    return reply
