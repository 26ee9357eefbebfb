"""Panorama test server fixtures (registered in tests/conftest.py through pytest_plugins).

- ``panorama_server_session`` (session) one :class:`PanoramaServer` on 127.0.0.1 for the whole
  run, bucket "panorama-test-storage", region us-east-1, account 123456789012 (as moto).
- ``panorama_server`` (function) the same server after ``reset()``: no packages, devices,
  instances, injections, delays or calls.
- ``panorama_env`` (function; uses ``aws_env``) ``AWS_ENDPOINT_URL_PANORAMA`` points at the
  server (botocore prefers it to ``AWS_ENDPOINT_URL``, which stays on moto for S3/STS), the
  storage bucket exists in moto, and registrations FAIL when the manifest or an asset was not
  uploaded there (``server.check_uploads``). Returns a :class:`PanoramaEnv`.

Example::

    def test_deploy(panorama_env):
        device = panorama_env.server.add_device()
        client = make_client(make_session(), "panorama")
        client.create_application_instance(DefaultRuntimeContextDevice=device, ...)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.aws_fixtures import AwsEnv
from tests.support.panorama_server import PanoramaServer

STORAGE_BUCKET = "panorama-test-storage"


@dataclass(frozen=True)
class PanoramaEnv:
    """What ``panorama_env`` set up."""

    endpoint_url: str  # the Panorama test server, e.g. "http://127.0.0.1:54321"
    bucket: str  # package storage bucket, created in moto
    region: str
    account_id: str
    server: PanoramaServer


@pytest.fixture(scope="session")
def panorama_server_session() -> Iterator[PanoramaServer]:
    """One Panorama test server for the session."""
    with PanoramaServer(bucket=STORAGE_BUCKET) as server:
        yield server


@pytest.fixture
def panorama_server(panorama_server_session: PanoramaServer) -> PanoramaServer:
    """The session's Panorama test server, reset for this test."""
    panorama_server_session.reset()
    return panorama_server_session


@pytest.fixture
def panorama_env(aws_env: AwsEnv, panorama_server: PanoramaServer, monkeypatch) -> PanoramaEnv:
    """Point panorama clients at the test server; create the storage bucket in moto."""
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL_PANORAMA", panorama_server.endpoint_url)
    s3 = boto3.Session(region_name=aws_env.region).client("s3", endpoint_url=aws_env.endpoint_url)
    s3.create_bucket(Bucket=panorama_server.bucket)
    panorama_server.check_uploads(aws_env.endpoint_url)
    return PanoramaEnv(
        endpoint_url=panorama_server.endpoint_url,
        bucket=panorama_server.bucket,
        region=panorama_server.region,
        account_id=panorama_server.account_id,
        server=panorama_server,
    )
