"""The secret fetcher in the real runtime image, started as the component's Run step starts it
(its ``docker run`` words, from the recipe), with the real AWS IoT Device SDK: it reaches the
IPC socket through the read-only bind mount, and without a nucleus answering it fails in one
line, having written nothing."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from panorama_cli.fleet import greengrass_scripts
from panorama_cli.fleet.runtime_image import ensure_runtime_image
from tests.fleet.sample_app import sample_app

pytestmark = pytest.mark.docker


def test_the_runtime_image_fetches_over_the_ipc_socket(
    docker_client: Any, base_image_amd64: str, tmp_path: Path
) -> None:
    runtime = ensure_runtime_image(docker_client, "linux/amd64", base=base_image_amd64)
    app = sample_app()
    app = dataclasses.replace(app, serve=dataclasses.replace(app.serve, image=runtime))
    words = greengrass_scripts._fetch_words(app, "com.panorama-cli.test.fetch")
    # a stand-in nucleus that takes the connection and says nothing back
    path = tmp_path / "ipc.socket"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    seen: list[bytes] = []

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.settimeout(5)
            try:
                seen.append(connection.recv(4096))
            except OSError:
                seen.append(b"")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    work = tmp_path / "work"
    for folder in ("secrets", "tokens"):
        (work / folder).mkdir(parents=True, mode=0o700)
    script = f'secrets="{work}/secrets"\ntokens="{work}/tokens"\n' + " ".join(words)
    env = {
        **os.environ,
        greengrass_scripts.ENV_IPC_SOCKET: str(path),
        greengrass_scripts.ENV_SVCUID: "not-a-real-token",
        greengrass_scripts.ENV_SECRET_ARN: "arn:aws:secretsmanager:us-east-1:1:secret:x-AbCdEf",
    }
    try:
        done = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True,
                              text=True, timeout=120, check=False)  # fmt: skip
    finally:
        listener.close()
    thread.join(10)
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("panorama-cli greengrass secrets: ")
    # the SDK is in the image and connected through the mount: the nucleus got its hello
    assert "awsiotsdk" not in line and seen and seen[0], line
    assert b"not-a-real-token" in seen[0]  # the component's token, as the SDK sends it
    assert list((work / "secrets").iterdir()) == [] and list((work / "tokens").iterdir()) == []
