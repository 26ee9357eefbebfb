"""AWS test fixtures: a moto server on loopback and an isolated AWS environment.

``moto_server`` (session scope) runs moto in SERVER mode -- a real HTTP server on
127.0.0.1 and a free port -- so the code under test goes through botocore's real HTTP
stack, endpoint resolution and s3transfer threads, unlike in-process ``mock_aws``.

``aws_env`` (function scope) gives each test fake credentials, region us-east-1,
``AWS_ENDPOINT_URL`` pointing at the moto server, empty temporary AWS config and
credentials files (nothing from ``~/.aws`` leaks in) and a freshly reset moto state.
"""

from __future__ import annotations

import logging
import os
import socket
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

#: The account id moto reports for any credentials.
MOTO_ACCOUNT_ID = "123456789012"
REGION = "us-east-1"


@dataclass(frozen=True)
class AwsEnv:
    """What ``aws_env`` set up."""

    endpoint_url: str  # moto server, e.g. "http://127.0.0.1:54321"
    region: str
    account_id: str
    config_file: Path  # empty AWS_CONFIG_FILE
    credentials_file: Path  # empty AWS_SHARED_CREDENTIALS_FILE


def dead_endpoint_url() -> str:
    """An http://127.0.0.1:PORT URL on which nothing listens (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Start a moto server on 127.0.0.1 (free port); yield its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def reset_moto(endpoint_url: str) -> None:
    """Drop all state (buckets, objects, ...) in the moto server (POST /moto-api/reset)."""
    request = urllib.request.Request(f"{endpoint_url}/moto-api/reset", method="POST", data=b"")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        response.read()


@pytest.fixture
def aws_env(moto_server: str, tmp_path_factory, monkeypatch) -> AwsEnv:
    """Isolate AWS configuration for one test and point every service at moto."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    aws_dir = tmp_path_factory.mktemp("aws")
    config_file = aws_dir / "config"
    credentials_file = aws_dir / "credentials"
    config_file.write_text("")
    credentials_file.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config_file))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials_file))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    # Never wait on the EC2 instance metadata service for credentials or region.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # Loopback must not go through a proxy from the developer's environment.
    for name in ("NO_PROXY", "no_proxy"):
        current = os.environ.get(name, "")
        monkeypatch.setenv(name, ",".join(p for p in (current, "127.0.0.1", "localhost") if p))
    reset_moto(moto_server)
    return AwsEnv(
        endpoint_url=moto_server,
        region=REGION,
        account_id=MOTO_ACCOUNT_ID,
        config_file=config_file,
        credentials_file=credentials_file,
    )
