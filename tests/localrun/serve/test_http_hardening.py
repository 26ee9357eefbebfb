"""serve's HTTP server on a hostile network: a slowloris against a real serve at 1,024 open
files, the Host check and the security headers on every response.

Before: 1,100 half-sent requests at the default 1,024 open files made /healthz time out for
the whole test and wrote 580,828 ``Too many open files`` tracebacks (207 MB) to stderr;
``Host: attacker.example`` answered 200; no CSP.
"""

from __future__ import annotations

import logging
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from panorama_cli.localrun.serve.hardening import HEAD_TIMEOUT_S
from panorama_cli.localrun.serve.http import HttpServer
from panorama_cli.localrun.serve.metrics import ModelLatency
from tests.localrun.helpers import make_project, video
from tests.localrun.serve.fake_view import FakeView, served_with_token
from tests.support.cameras import free_port
from tests.support.polling import until

APP = """
import panoramasdk

app = panoramasdk.node()
while True:
    app.outputs.video_out.put(app.inputs.video_in.get())
"""
HALF_OPEN = 1100


@pytest.fixture
def served(tmp_path):
    with served_with_token(tmp_path / "state") as served:
        yield served


def test_every_response_carries_the_security_headers(served):
    server, token = served
    bearer = {"Authorization": f"Bearer {token}"}
    responses = {
        "health": httpx.get(server.url + "/healthz"),
        "401": httpx.get(server.url + "/api/status"),
        "login page": httpx.get(server.url + "/"),
        "303": httpx.get(server.url + f"/?token={token}"),
        "json": httpx.get(server.url + "/api/status", headers=bearer),
        "404": httpx.get(server.url + "/nothing", headers=bearer),
        "400 host": httpx.get(server.url + "/healthz", headers={"Host": "attacker.example"}),
        "page": httpx.get(server.url + "/", headers=bearer),
    }
    assert responses["400 host"].status_code == 400
    for name, r in responses.items():
        assert r.headers["x-content-type-options"] == "nosniff", name
        assert r.headers["referrer-policy"] == "no-referrer", name
        assert r.headers["x-frame-options"] == "DENY", name
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp, name
        assert "server" not in r.headers, name


@pytest.mark.parametrize("which", ["page", "login page"])
def test_the_pages_run_only_their_own_nonced_script_and_style(served, which):
    server, token = served
    headers = {"Authorization": f"Bearer {token}"} if which == "page" else {}
    r = httpx.get(server.url + "/", headers=headers)
    csp = r.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([A-Za-z0-9_-]+)'", csp).group(1)
    assert f"script-src 'self' 'nonce-{nonce}'" in csp and "default-src 'self'" in csp
    assert "img-src 'self' blob: data:" in csp
    tags = re.findall(r"<(script|style)\b([^>]*)>", r.text)
    assert tags and all(f'nonce="{nonce}"' in attrs for _, attrs in tags), tags
    assert not re.search(r"\sstyle=", r.text)  # no inline style attribute
    assert not re.search(r"\son[a-z]+=", r.text)  # no inline event handler
    again = httpx.get(server.url + "/", headers=headers)
    assert nonce not in again.headers["content-security-policy"]  # a new nonce each time


def test_allowed_names_and_ip_addresses_pass_other_names_get_400(tmp_path):
    view = FakeView(tmp_path / "state")
    server = HttpServer(view, "127.0.0.1", 0, ModelLatency(), allowed_hosts=("box.example",))
    server.start()
    try:
        for host, code in [
            ("attacker.example", 400),
            ("box.example.attacker.example", 400),
            ("box.example", 200),
            (f"localhost:{server.port}", 200),
            ("10.1.2.3:8765", 200),  # an address: no DNS rebinding through it
            ("[::1]:8765", 200),
        ]:
            assert httpx.get(server.url + "/healthz", headers={"Host": host}).status_code == code
    finally:
        server.stop()


def _nofile(soft: int, hard: int):
    def preexec() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return preexec


def _open_files_limit(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open files limit")


def _healthz_s(port: int) -> float:
    start = time.monotonic()
    r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2.0)
    assert r.status_code == 200
    return time.monotonic() - start


class _Slowloris:
    """``count`` connections, each sending a request head a header line at a time."""

    def __init__(self, port: int, count: int) -> None:
        self.socks: list[socket.socket] = []
        self.closed = 0
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.setblocking(False)
            try:
                s.send(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            except OSError:
                pass
            self.socks.append(s)

    def trickle(self) -> None:
        """One more header line on each connection still open; count the ones closed."""
        alive = []
        for s in self.socks:
            try:
                if s.recv(1, socket.MSG_PEEK) == b"":
                    raise ConnectionResetError
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                self.closed += 1
                continue
            try:
                s.send(b"X-Slow: 1\r\n")
                alive.append(s)
            except OSError:
                s.close()
                self.closed += 1
        self.socks = alive

    def close(self) -> None:
        for s in self.socks:
            s.close()


@pytest.mark.parametrize(
    "soft,hard",
    [(1024, None), (1024, 1024)],
    ids=["soft-1024-raised-by-serve", "soft-and-hard-1024"],
)
def test_slowloris_at_1024_open_files_leaves_healthz_answering(tmp_path, soft, hard):
    own_soft, own_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if own_hard != resource.RLIM_INFINITY and own_hard < HALF_OPEN + 200:
        pytest.fail(f"the test needs {HALF_OPEN + 200} open files; the hard limit is {own_hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (own_hard, own_hard))
    hard = own_hard if hard is None else hard
    root = make_project(tmp_path, APP)
    port = free_port()
    output = tmp_path / "serve-output.txt"
    argv = [sys.executable, "-m", "panorama_cli", "serve", "--camera", f"front_camera={video()}",
            "--listen", f"127.0.0.1:{port}", "--rtsp-port", "0",
            "--state-dir", str(tmp_path / "state")]  # fmt: skip
    with open(output, "wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - an argument list
            argv, cwd=root, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_nofile(soft, hard)
        )
    attack = None
    try:

        def up() -> bool:
            assert proc.poll() is None, output.read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        until(up, 60, "serve to listen")
        limits = _open_files_limit(proc.pid)
        assert limits == (hard, hard), limits  # serve raised its soft limit to the hard one
        t0 = time.monotonic()
        attack = _Slowloris(port, HALF_OPEN)
        opened_s = time.monotonic() - t0
        waits = []
        while time.monotonic() - t0 < HEAD_TIMEOUT_S + 5:
            attack.trickle()
            waits.append(_healthz_s(port))
            time.sleep(0.5)
        print(
            f"\nRLIMIT_NOFILE {limits}: {HALF_OPEN} half-open connections opened in "
            f"{opened_s:.1f} s; /healthz answered {len(waits)} times during the hold, slowest "
            f"{max(waits) * 1000:.0f} ms; attacker connections closed by serve: "
            f"{attack.closed}/{HALF_OPEN}"
        )
        assert max(waits) < 2.0
        assert attack.closed == HALF_OPEN  # the head deadline closed every one
    finally:
        if attack is not None:
            attack.close()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    text = output.read_text(errors="replace")
    assert code == 0, text[-3000:]
    assert output.stat().st_size < 20_000, text[-3000:]
    assert "Traceback" not in text and "Too many open files" not in text, text[-3000:]


def test_garbage_requests_are_one_log_line_a_minute_not_a_flood(served, caplog):
    server, _ = served
    caplog.set_level(logging.WARNING)
    for _ in range(50):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 400")
    lines = [r for r in caplog.records if "Invalid HTTP request" in r.getMessage()]
    assert len(lines) <= 1, [r.getMessage() for r in lines]
    assert all(r.exc_info is None for r in caplog.records)
