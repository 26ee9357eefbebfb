"""serve over HTTPS (``--tls-cert``/``--tls-key``) with a certificate made here by the
``cryptography`` package: a client trusting that CA gets through, the session cookie is
Secure, the login URL serve prints is https, and a bad pair is one error at start."""

from __future__ import annotations

import datetime
import ipaddress
import os
import pty
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from panorama_cli.errors import UserError
from panorama_cli.localrun.serve.auth import load_token
from panorama_cli.localrun.serve.http import HttpServer
from panorama_cli.localrun.serve.metrics import ModelLatency
from tests.localrun.helpers import make_project, video
from tests.localrun.serve.fake_view import FakeView
from tests.support.cameras import free_port
from tests.support.polling import until

APP = """
import panoramasdk

app = panoramasdk.node()
while True:
    app.outputs.video_out.put(app.inputs.video_in.get())
"""


def make_certificate(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 / localhost signed by it:
    (ca.pem, server.pem, server.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "panorama test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths[2].chmod(0o600)
    return paths


def test_https_with_a_test_ca(tmp_path):
    ca, cert, key = make_certificate(tmp_path)
    token, _ = load_token(tmp_path / "state")
    view = FakeView(tmp_path / "state")
    server = HttpServer(view, "127.0.0.1", 0, ModelLatency(), token=token, tls=(cert, key))
    server.start()
    try:
        assert server.url == f"https://127.0.0.1:{server.port}"
        trusted = ssl.create_default_context(cafile=str(ca))
        with httpx.Client(verify=trusted) as client:
            assert client.get(server.url + "/healthz").text == "ok"
            assert client.get(server.url + "/api/status").status_code == 401
            r = client.get(f"{server.url}/?token={token}")
            assert r.status_code == 303 and "secure" in r.headers["set-cookie"].lower()
            assert client.get(server.url + "/api/status").status_code == 200  # the cookie
        with pytest.raises(httpx.ConnectError):  # not trusted: refused by the client
            httpx.get(server.url + "/healthz")
        with pytest.raises(httpx.HTTPError):  # plain HTTP on the TLS port
            httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=3)
    finally:
        server.stop()


def test_a_key_that_does_not_fit_is_one_error(tmp_path):
    _, cert, _ = make_certificate(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _, _, wrong_key = make_certificate(other)
    view = FakeView(tmp_path / "state")
    for pair in [(cert, wrong_key), (cert, tmp_path / "missing.key")]:
        server = HttpServer(view, "127.0.0.1", 0, ModelLatency(), tls=pair)
        with pytest.raises(UserError, match="--tls-cert"):
            server.start()


def test_serve_prints_the_https_login_url_on_its_terminal_only(tmp_path):
    """serve on a terminal (a pty) prints ``log in: https://...?token=...`` there; serve.log
    never holds the token; the token works over HTTPS."""
    ca, cert, key = make_certificate(tmp_path)
    root = make_project(tmp_path, APP)
    port = free_port()
    state = tmp_path / "state"
    argv = [sys.executable, "-m", "panorama_cli", "serve", "--camera", f"front_camera={video()}",
            "--listen", f"127.0.0.1:{port}", "--rtsp-port", "0", "--state-dir", str(state),
            "--tls-cert", str(cert), "--tls-key", str(key)]  # fmt: skip
    leader, follower = pty.openpty()
    proc = subprocess.Popen(  # noqa: S603 - an argument list
        argv, cwd=root, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower
    )
    os.close(follower)
    seen = bytearray()

    def printed() -> bool:
        assert proc.poll() is None, seen.decode(errors="replace")
        import select

        while select.select([leader], [], [], 0.2)[0]:
            try:
                seen.extend(os.read(leader, 65536))
            except OSError:
                break
        return b"log in: " in seen and b"nodes started" in seen  # past start

    try:
        until(printed, 60, "the login URL on the terminal")
        token = (state / "auth" / "token").read_text().strip()
        assert f"log in: https://127.0.0.1:{port}/?token={token}".encode() in seen
        trusted = ssl.create_default_context(cafile=str(ca))
        r = httpx.get(
            f"https://127.0.0.1:{port}/api/status",
            headers={"Authorization": f"Bearer {token}"},
            verify=trusted,
        )
        assert r.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        os.close(leader)
    assert code == 0
    log = (state / "logs" / "serve.log").read_text()
    assert f"https://127.0.0.1:{port}" in log and token not in log


def test_tls_cert_without_key_is_a_usage_error(tmp_path):
    root = make_project(tmp_path, APP)
    done = subprocess.run(
        [sys.executable, "-m", "panorama_cli", "serve", "--tls-cert", "x.pem"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "--tls-cert and --tls-key go together" in done.stderr
