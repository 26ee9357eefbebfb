"""What the fleet's engine tests share: a pass-through app, CLI and HTTP helpers (serve's
endpoints but /healthz and /readyz answer only with the bundle's login token)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support import polling
from tests.support.cli_runner import run_cli_subprocess

APP = """
import panoramasdk

with open("/opt/aws/panorama/storage/starts", "a") as f:
    f.write("start\\n")
node = panoramasdk.node()
while True:
    frames = node.inputs.video_in.get()
    for m in frames:
        m.add_label("people: 0", 0.05, 0.05)
    node.outputs.video_out.put(frames)
"""
DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends python3-numpy \\
    && rm -rf /var/lib/apt/lists/*
COPY src /panorama
"""
LABEL_APP = "org.panorama-cli.application"
READY_S = 240.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(root: Path, *args: str, timeout_s: float = 900.0) -> Any:
    result = run_cli_subprocess(list(args), cwd=root, timeout_s=timeout_s)
    assert result.exit_code == 0, result.describe()
    return result


def token_of(bundle: Path) -> str:
    """serve's login token of the bundle in ``bundle`` (``secrets/serve-token``)."""
    return (Path(bundle) / "secrets" / "serve-token").read_text().strip()


def get(port: int, path: str, token: str | None = None) -> tuple[int, str]:
    """GET ``http://127.0.0.1:PORT/PATH`` (with ``Authorization: Bearer TOKEN`` when given):
    (status, body); (0, why) when nothing answers."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def until(predicate: Any, timeout_s: float, what: str, every: float = 1.0) -> Any:
    """:func:`tests.support.polling.until`, polling each second (an engine is slow)."""
    return polling.until(predicate, timeout_s, what, every)


def metric(port: int, name: str, token: str) -> float:
    status, text = get(port, "/metrics", token)
    if status != 200:
        return 0.0
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def status(port: int, token: str) -> dict[str, Any]:
    status, text = get(port, "/api/status", token)
    return json.loads(text) if status == 200 else {}
