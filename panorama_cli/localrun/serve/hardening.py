"""What keeps serve's HTTP server up and its pages inert on a hostile network.

**The server.** uvicorn (h11) stays: serve runs the starlette app on a thread of its own
process, over the live :class:`~.view.ServeView` objects, and uvicorn takes an open socket and
a protocol class. What uvicorn lacks is bounded here, in :class:`BoundedH11Protocol`
(its ``H11Protocol`` with two additions):

- *a deadline for a request's head*: a connection has :data:`HEAD_TIMEOUT_S` seconds from its
  start (and from the end of each response) to send a complete request line and headers, or
  it is closed. uvicorn itself only times out an idle keep-alive connection, and cancels that
  timer at the first byte, so a client sending one header byte at a time (slowloris) holds a
  connection and a file descriptor forever; ``h11_max_incomplete_event_size`` bounds the
  bytes of a head, not its time; ``limit_concurrency`` answers 503 to *complete* requests
  over the limit and never closes a half-open one.
- *a bound on connections*: past :func:`max_connections` open connections, the oldest one
  still waiting for its request head is closed to make room (attackers' half-open
  connections go first, so ``/healthz`` still gets in); when every connection is busy with
  a request, the new one is closed at once.

Under TLS the protocol starts after the handshake: asyncio bounds a handshake by its own
60 s ``ssl_handshake_timeout``, and such connections count against the open files only.

hypercorn's ``read_timeout`` is per read (a byte now and then keeps it alive) and it has no
connection bound; granian has a header-read timeout but runs applications in its own worker
processes (an in-process embedding is experimental), which does not fit a server that
reads serve's objects in place. Neither is needed for two small overrides of uvicorn's class.

**File descriptors.** :func:`raise_nofile` lifts RLIMIT_NOFILE's soft limit to the hard one at
serve's start. The event loop's errors (``socket.accept() out of system resource`` when the
descriptors run out anyway) and uvicorn's per-request warnings (``Invalid HTTP request``) are
rate-limited to one line per kind per :data:`ERROR_EVERY_S` seconds, with no traceback
(:class:`OncePerInterval`).

**The responses.** :class:`SecurityHeaders` puts ``X-Content-Type-Options: nosniff``,
``Referrer-Policy: no-referrer``, ``X-Frame-Options: DENY``,
``Cross-Origin-Resource-Policy: same-origin`` and a Content-Security-Policy (:data:`CSP`, or
the page's own with its script nonce: :func:`page_csp`) on every response. :class:`HostCheck`
is starlette's ``TrustedHostMiddleware`` (400 for another ``Host``) over the allowed names
(:func:`allowed_hosts`), letting through a Host that is an IP address: DNS rebinding, which
the check exists for, needs a name the attacker controls.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import resource
import socket
import threading
import time
from collections.abc import Iterable
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from panorama_cli.localrun.serve.auth import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

#: Seconds a connection has to send a complete request head.
HEAD_TIMEOUT_S = 10.0
#: Connections at most (see :func:`max_connections`), and descriptors kept for the rest.
MAX_CONNECTIONS = 2048
RESERVED_FDS = 256
#: Seconds between two lines about the same kind of server error.
ERROR_EVERY_S = 60.0
#: The Content-Security-Policy of every response but the pages.
CSP = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


def page_csp(nonce: str) -> str:
    """The Content-Security-Policy of a page whose ``<script>`` and ``<style>`` carry
    ``nonce`` (nothing inline runs without it; no other origin is reached)."""
    return (
        f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; "
        f"style-src 'self' 'nonce-{nonce}'; img-src 'self' blob: data:; connect-src 'self'; "
        "media-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )


def raise_nofile() -> tuple[int, int]:
    """Lift RLIMIT_NOFILE's soft limit to its hard limit (capped at ``fs.nr_open``).

    Returns:
        (soft, hard) after the change (unchanged when it cannot be raised).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if target == resource.RLIM_INFINITY:
        try:
            with open("/proc/sys/fs/nr_open") as f:
                target = int(f.read())
        except (OSError, ValueError):
            target = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError) as exc:
            log.debug("RLIMIT_NOFILE stays %d: %s", soft, exc)
    return soft, hard


def max_connections() -> int:
    """Open connections allowed: half the descriptors left after :data:`RESERVED_FDS`, at
    least 64 and at most :data:`MAX_CONNECTIONS`."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(64, min(MAX_CONNECTIONS, (soft - RESERVED_FDS) // 2))


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request-head deadline and a bound on connections (module
    docstring). Set :attr:`head_timeout_s` and :attr:`limit` on a subclass (:func:`protocol`)."""

    head_timeout_s: float = HEAD_TIMEOUT_S
    limit: int = MAX_CONNECTIONS
    _deadline: asyncio.TimerHandle | None = None
    _since: float = 0.0

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._since = time.monotonic()
        if len(self.connections) > self.limit:
            self._make_room()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()  # a complete head: the request runs as long as it needs

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state in (h11.IDLE, h11.DONE):
            self._since = time.monotonic()
            self._arm()

    def _waiting(self) -> bool:
        """Waiting for a request head (nothing of this connection is running)."""
        return self.conn.their_state is h11.IDLE and (
            self.cycle is None or self.cycle.response_complete
        )

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.head_timeout_s, self._head_timeout)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_timeout(self) -> None:
        self._deadline = None
        if self._waiting() and not self.transport.is_closing():
            self.transport.abort()

    def _make_room(self) -> None:
        """Close the oldest connection waiting for its head, else this one."""
        waiting = [
            c for c in self.connections
            if isinstance(c, BoundedH11Protocol) and c is not self and c._waiting()
            and not c.transport.is_closing()
        ]  # fmt: skip
        victim = min(waiting, key=lambda c: c._since) if waiting else self
        victim.transport.abort()


def protocol(head_timeout_s: float = HEAD_TIMEOUT_S, limit: int | None = None) -> type:
    """A :class:`BoundedH11Protocol` subclass with these bounds (uvicorn's ``http=``)."""
    bound = max_connections() if limit is None else limit
    return type(
        "ServeH11Protocol",
        (BoundedH11Protocol,),
        {"head_timeout_s": head_timeout_s, "limit": bound},
    )


class OncePerInterval(logging.Filter):
    """A logging filter (and an asyncio exception handler): one record per message kind per
    ``every_s`` seconds, the rest counted and said in the next line; tracebacks dropped.

    Args:
        every_s: seconds between two lines of one kind.
        kinds: kinds remembered at most (the oldest forgotten past it).
    """

    def __init__(self, every_s: float = ERROR_EVERY_S, kinds: int = 64) -> None:
        super().__init__()
        self.every_s, self.kinds = every_s, kinds
        self._seen: dict[str, tuple[float, int]] = {}  # kind -> (last said, suppressed)
        self._lock = threading.Lock()

    def _allow(self, kind: str) -> int | None:
        """None to suppress, else how many were suppressed since the last line."""
        now = time.monotonic()
        with self._lock:
            last, hidden = self._seen.get(kind, (None, 0))
            if last is not None and now - last < self.every_s:
                self._seen[kind] = (last, hidden + 1)
                return None
            self._seen.pop(kind, None)
            self._seen[kind] = (now, 0)
            while len(self._seen) > self.kinds:
                self._seen.pop(next(iter(self._seen)))
            return hidden

    def filter(self, record: logging.LogRecord) -> bool:
        hidden = self._allow(str(record.msg)[:80])
        if hidden is None:
            return False
        why = f": {record.exc_info[1]}" if record.exc_info and record.exc_info[1] else ""
        more = f" ({hidden} more like it not shown)" if hidden else ""
        record.msg, record.args = f"{record.getMessage()}{why}{more}", None
        record.exc_info = record.exc_text = None
        return True

    def loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """asyncio's exception handler: one line per kind per interval, no traceback."""
        message = str(context.get("message") or "event loop error")
        hidden = self._allow(message[:80])
        if hidden is None:
            return
        exc = context.get("exception")
        why = f": {exc}" if exc else ""
        more = f" ({hidden} more like it not shown)" if hidden else ""
        log.warning("HTTP server: %s%s%s", message, why, more)


class SecurityHeaders:
    """ASGI middleware: the module docstring's headers on every response (a response's own
    Content-Security-Policy is kept)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in HEADERS if k not in names]
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", CSP.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _host_of(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"host":
            text: str = value.decode("latin-1")
            if text.startswith("["):
                return text[: text.find("]") + 1] if "]" in text else text
            return text.rsplit(":", 1)[0] if text.count(":") == 1 else text
    return ""


class HostCheck:
    """starlette's ``TrustedHostMiddleware`` over ``hosts``; a Host that is an IP address
    passes (see the module docstring).

    Args:
        app: the application behind it.
        hosts: allowed names (``*.example.com`` patterns as starlette has them).
    """

    def __init__(self, app: ASGIApp, hosts: Iterable[str]) -> None:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        self.app = app
        self.checked = TrustedHostMiddleware(app, allowed_hosts=list(hosts), www_redirect=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and _is_ip(_host_of(scope)):
            await self.app(scope, receive, send)
        else:
            await self.checked(scope, receive, send)


def allowed_hosts(listen_host: str, extra: Iterable[str] = ()) -> list[str]:
    """The names a request's Host may give: ``listen_host``, :data:`LOCAL_NAMES`, this
    machine's host name (and fully qualified name) when listening on every address, and
    ``extra`` (``--allowed-host``)."""
    names = [listen_host, *LOCAL_NAMES]
    if listen_host in ("", "0.0.0.0", "::"):
        names += [socket.gethostname(), socket.getfqdn()]
    names += list(extra)
    seen: list[str] = []
    for name in names:
        name = name.strip().lower()
        if name and name not in seen:
            seen.append(name)
    return seen
