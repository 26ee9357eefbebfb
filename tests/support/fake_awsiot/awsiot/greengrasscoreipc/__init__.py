"""Stand-in for ``awsiot.greengrasscoreipc``: ``connect()`` reads the stand-in nucleus file."""

from __future__ import annotations

import json
import os
from typing import Any


class FakeConnection:
    """What ``connect()`` returns: the stand-in nucleus' state."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.closed = False

    def close(self) -> None:
        self.closed = True


def connect(
    *,
    ipc_socket: str | None = None,
    authtoken: str | None = None,
    lifecycle_handler: Any = None,
    timeout: float = 10.0,
) -> FakeConnection:
    """As the SDK: the socket's path and the token from the environment when not given."""
    path = ipc_socket or os.environ["AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"]
    token = authtoken or os.environ["SVCUID"]
    try:
        with open(path, encoding="utf-8") as stream:
            state = json.load(stream)
    except OSError as exc:
        raise RuntimeError(f"44 (AWS_ERROR_FILE_INVALID_PATH): Invalid file path. {exc}") from None
    if token != state["svcuid"]:
        raise RuntimeError("connection refused by the nucleus: bad SVCUID")
    return FakeConnection(state)
