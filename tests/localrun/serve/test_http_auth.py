"""serve's login on a real uvicorn: every endpoint but /healthz and /readyz needs the token
(Bearer, the session cookie from ``?token=`` or the login form); failed logins are limited;
the token file is made once, private, and never followed through a link.

Before: every endpoint answered anyone (the page, /api/status, /metrics, live video, clips).
"""

from __future__ import annotations

import os
import stat

import httpx
import pytest

from panorama_cli.errors import UserError
from panorama_cli.localrun.serve.auth import (
    FAILURES_BURST,
    FailedLogins,
    TokenAuth,
    client_key,
    load_token,
)
from panorama_cli.localrun.serve.http import HttpServer
from panorama_cli.localrun.serve.metrics import ModelLatency
from tests.localrun.serve.fake_view import FakeView, served_with_token

PROTECTED = [
    "/",
    "/metrics",
    "/api/status",
    "/api/graph",
    "/api/clips",
    "/clips/code_node/event-1.mp4",
    "/streams/cam1.jpg",
    "/streams/cam1.mjpeg",
    "/nothing-here",
]
OPEN = ["/healthz", "/readyz"]


@pytest.fixture
def served(tmp_path):
    with served_with_token(tmp_path / "state") as served:
        yield served


def _status(client: httpx.Client, url: str, **kw) -> int:
    """The status of GET url; a stream's first bytes only."""
    with client.stream("GET", url, **kw) as r:
        return r.status_code


def _table(server: HttpServer, token: str) -> dict[str, tuple[int, int, int]]:
    """path -> (unauthenticated, Bearer, session cookie) statuses."""
    table = {}
    with httpx.Client(timeout=10) as anonymous, httpx.Client(timeout=10) as browser:
        r = browser.get(f"{server.url}/?token={token}", follow_redirects=True)  # login URL
        assert r.status_code == 200 and browser.cookies.get(server.auth.cookie)
        bearer = {"Authorization": f"Bearer {token}"}
        for path in PROTECTED + OPEN:
            url = server.url + path
            table[path] = (
                _status(anonymous, url),
                _status(anonymous, url, headers=bearer),
                _status(browser, url),
            )
    return table


def test_every_endpoint_but_health_needs_the_token(served):
    server, token = served
    table = _table(server, token)
    print("\npath: unauthenticated / Bearer / cookie")
    for path, row in table.items():
        print(f"{path}: {row}")
    for path in PROTECTED:
        expected = 404 if path == "/nothing-here" else 200
        assert table[path] == (401, expected, expected), path
    for path in OPEN:
        assert table[path] == (200, 200, 200), path
    r = httpx.get(server.url + "/api/status")
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert "code_node" not in r.text  # nothing of the status leaks
    page = httpx.get(server.url + "/")
    assert page.status_code == 401 and '<form method="post" action="/login"' in page.text
    assert "/streams/" not in page.text and "<svg" not in page.text


def test_the_login_url_sets_a_private_cookie_and_drops_the_token_from_the_url(served):
    server, token = served
    r = httpx.get(f"{server.url}/?token={token}")
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"panorama_serve_{server.port}=")
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/", "Max-Age="):
        assert attribute.lower() in cookie.lower(), cookie
    assert "secure" not in cookie.lower()  # plain HTTP: TLS sets Secure (test_tls)
    assert token not in cookie  # the cookie is a signature, not the token
    deep = httpx.get(f"{server.url}/api/status?token={token}&x=1")
    assert deep.status_code == 303 and deep.headers["location"] == "/api/status?x=1"
    assert httpx.get(f"{server.url}/?token=wrong").status_code == 401
    # never a redirect to another host
    r = httpx.get(f"{server.url}//attacker.example/x?token={token}")
    assert r.status_code == 303 and r.headers["location"] == "/attacker.example/x"


def test_cookies_of_another_token_or_forged_are_refused(served, tmp_path):
    server, token = served
    other = TokenAuth("x" * 43, server.port)
    for value in (other.session(), "session.forged.sig", ""):
        r = httpx.get(server.url + "/api/status", cookies={server.auth.cookie: value})
        assert r.status_code == 401
    good = TokenAuth(token, server.port).session()
    r = httpx.get(server.url + "/api/status", cookies={server.auth.cookie: good})
    assert r.status_code == 200


def test_the_login_form(served):
    server, token = served
    with httpx.Client() as client:
        r = client.post(server.url + "/login", data={"token": "wrong"})
        assert r.status_code == 401 and "wrong token" in r.text
        r = client.post(server.url + "/login", data={"token": token})
        assert r.status_code == 303 and r.headers["location"] == "/"
        assert client.get(server.url + "/api/status").status_code == 200
    huge = httpx.post(server.url + "/login", data={"token": "x" * 10_000})
    assert huge.status_code == 401


def test_failed_logins_are_limited_per_address(served):
    server, token = served
    bad = {"Authorization": "Bearer wrong"}
    codes = [httpx.get(server.url + "/api/status", headers=bad).status_code for _ in range(12)]
    assert codes[:FAILURES_BURST] == [401] * FAILURES_BURST
    assert codes[FAILURES_BURST:] == [429, 429]
    r = httpx.get(server.url + "/api/status", headers=bad)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    # a client that keeps failing cannot lock out the ones that hold the token
    ok = {"Authorization": f"Bearer {token}"}
    assert httpx.get(server.url + "/api/status", headers=ok).status_code == 200
    assert httpx.get(server.url + f"/?token={token}").status_code == 303
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_a_forwarded_for_header_does_not_pick_the_client(served):
    """X-Forwarded-For from a local process (an app shares the host network) must not give
    each guess a fresh address."""
    server, _ = served
    codes = [
        httpx.get(
            server.url + "/api/status",
            headers={"Authorization": f"Bearer wrong{i}", "X-Forwarded-For": f"10.9.9.{i}"},
        ).status_code
        for i in range(12)
    ]
    assert codes[FAILURES_BURST:] == [429] * (12 - FAILURES_BURST)


def test_the_failure_table_refills_and_is_bounded():
    now = [0.0]
    table = FailedLogins(burst=3, refill_s=10, max_clients=100, clock=lambda: now[0])
    for _ in range(3):
        assert table.retry_after("a") == 0
        table.failed("a")
    assert table.retry_after("a") == pytest.approx(10)
    now[0] += 10
    assert table.retry_after("a") == 0
    for i in range(1000):
        table.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(table) == 100
    # one host's IPv6 /64 is one client; an IPv4-mapped address is the IPv4 one
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff:1") == "2001:db8::/64"
    assert client_key("::ffff:10.1.2.3") == "10.1.2.3"


def test_the_token_file_is_made_once_private_and_atomic(tmp_path):
    token, path = load_token(tmp_path)
    assert path == tmp_path / "auth" / "token" and len(token) >= 43
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_token(tmp_path)[0] == token  # reused on the next start
    assert [p.name for p in path.parent.iterdir()] == ["token"]  # no temporary left
    path.chmod(0o644)
    load_token(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_token_file_that_is_a_link_or_garbage_is_one_error(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("y" * 43)
    target.chmod(0o644)
    (tmp_path / "auth").mkdir(mode=0o700)
    link = tmp_path / "auth" / "token"
    os.symlink(target, link)
    with pytest.raises(UserError, match="a link"):
        load_token(tmp_path)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # never chmod-ed through the link
    link.unlink()
    link.write_text("short")
    with pytest.raises(UserError, match="holds no token"):
        load_token(tmp_path)


def test_no_token_no_login(tmp_path):
    view = FakeView(tmp_path / "state")
    server = HttpServer(view, "127.0.0.1", 0, ModelLatency())
    server.start()
    try:
        assert httpx.get(server.url + "/api/status").status_code == 200
    finally:
        server.stop()
