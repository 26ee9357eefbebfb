"""serve's HTTP endpoints: a starlette app run by uvicorn on a thread of serve's process.

Routes (all GET):

- ``/healthz``: 200 ``ok`` while serve runs; ``/readyz``: 200 ``ready`` or 503 with
  :meth:`ServeView.ready`'s reason;
- ``/metrics``: Prometheus text (:mod:`.metrics`);
- ``/api/status``, ``/api/graph``, ``/api/clips``: the view's JSON;
- ``/clips/<node>/<name>``: a clip listed by :meth:`ServeView.clips` at
  ``storage/<node>/clips/<name>`` (names checked), sent from a file descriptor opened without
  following any link below the state folder, regular files only (:func:`.clips.open_clip`):
  a link the app put there answers 404;
- ``/streams/<id>.mjpeg``: ``multipart/x-mixed-replace`` JPEG parts, one per new frame of the
  stream's :class:`~.view.LiveFeed`; ``/streams/<id>.jpg``: the current frame;
- ``/``: the web page (:mod:`.page`).

Every route but ``/healthz`` and ``/readyz`` needs the login token when ``auth`` is given
(:mod:`.auth`: Bearer, session cookie, ``?token=`` and ``POST /login``); every response carries
the security headers, a Host that is not allowed answers 400, and the server bounds request
heads and connections (:mod:`.hardening`). ``tls=(cert, key)`` serves HTTPS.

uvicorn installs no signal handler (serve owns SIGINT/SIGTERM/SIGHUP), prints no access log and
configures no handler: its warnings and errors go to the ``uvicorn.*`` loggers, under serve's own
handlers (its INFO lines are off: serve logs where it listens itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import secrets
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from panorama_cli.errors import UserError
from panorama_cli.localrun.serve import hardening, metrics, page
from panorama_cli.localrun.serve.auth import AuthMiddleware, TokenAuth
from panorama_cli.localrun.serve.view import LiveFeed, ServeView

log = logging.getLogger(__name__)

#: Seconds an MJPEG handler waits for a new frame before it checks for a stop (bounds stop()).
WAIT_S = 0.25
#: Seconds stop() waits for the server thread (uvicorn's graceful shutdown is shorter).
STOP_S = 5.0
#: Seconds start() waits for uvicorn to answer.
START_S = 10.0
BOUNDARY = "frame"
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,254}")
#: The listen backlog: connections the kernel queues, and asyncio accepts in one round.
BACKLOG = 128
#: The HTTP server's event loop errors and uvicorn's warnings: one line per kind a minute.
_ERRORS = hardening.OncePerInterval()
logging.getLogger("uvicorn.error").addFilter(_ERRORS)


class _Server(uvicorn.Server):
    errors: hardening.OncePerInterval | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # serve's signals stay serve's

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        if self.errors is not None:
            asyncio.get_running_loop().set_exception_handler(self.errors.loop_error)
        await super().serve(sockets)


class HttpServer:
    """serve's HTTP endpoints over ``view``, on ``host:port`` (port 0: a free port).

    Args:
        view: the running serve (:class:`~.view.ServeView`).
        host, port: where to listen.
        latency: the model latency histogram shown in ``/metrics``.
        clips_root: the folder clip paths are relative to (default: ``view.state_root``
            when the view has one; without it ``/clips/...`` answers 404).
        token: the login token every route but ``/healthz`` and ``/readyz`` asks for
            (:mod:`.auth`); None: no login.
        tls: (certificate file, key file) in PEM: HTTPS; None: HTTP.
        allowed_hosts: names a request's Host may give beyond the listen host and localhost.

    Attributes:
        port: the bound port (after :meth:`start`); url: ``http(s)://host:port``.
        active_streams: MJPEG responses being sent now.
    """

    def __init__(
        self,
        view: ServeView,
        host: str,
        port: int,
        latency: metrics.ModelLatency,
        clips_root: Path | None = None,
        *,
        token: str | None = None,
        tls: tuple[Path, Path] | None = None,
        allowed_hosts: Sequence[str] = (),
    ) -> None:
        self.view = view
        self.token = token
        self.auth: TokenAuth | None = None  # made by start(): the cookie names the port
        self.tls = tls
        self.allowed_hosts = hardening.allowed_hosts(host, allowed_hosts)
        self.host = host
        self.port = port
        root = clips_root if clips_root is not None else getattr(view, "state_root", None)
        self.clips_root = Path(root).resolve() if root is not None else None
        self.registry = metrics.build_registry(view, latency)
        self.active_streams = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def start(self) -> None:
        """Bind, then serve on a thread; returns once the server accepts connections.

        Raises:
            UserError: the address cannot be bound (in use, not local, not allowed), or the
                TLS certificate or key cannot be loaded.
        """
        tls = _check_tls(self.tls) if self.tls else {}
        self._sock = _bind(self.host, self.port)
        self.port = self._sock.getsockname()[1]
        if self.token is not None:
            self.auth = TokenAuth(self.token, self.port, secure=bool(self.tls))
        config = uvicorn.Config(
            self.app(),
            log_config=None,  # serve's logging stays serve's
            log_level="warning",  # no "Uvicorn running on ..." / "Shutting down" lines
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            server_header=False,
            proxy_headers=False,  # X-Forwarded-For from a local app must not pick the client
            http=hardening.protocol(),
            backlog=BACKLOG,  # also what one accept round takes before connection_made runs
            timeout_keep_alive=5,
            **tls,
        )
        self._server = _Server(config)
        self._server.errors = _ERRORS
        sock, server = self._sock, self._server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="serve-http", daemon=True
        )
        self._thread.start()
        for _ in range(int(START_S / 0.02)):
            if server.started or not self._thread.is_alive():
                break
            self._thread.join(0.02)
        if not server.started:
            self.stop()
            raise UserError(f"serve's HTTP server did not start on {self.host}:{self.port}")
        log.debug("HTTP endpoints on %s", self.url)

    def stop(self) -> None:
        """Stop serving (open MJPEG streams end within :data:`WAIT_S`); joins the thread."""
        self._stopping.set()
        server, thread = self._server, self._thread
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(STOP_S)
            if thread.is_alive() and server is not None:
                server.force_exit = True
                thread.join(STOP_S)
        if self._sock is not None:
            self._sock.close()
        self._thread = self._server = self._sock = None

    # -- the app ------------------------------------------------------------------------

    def app(self) -> Starlette:
        """The starlette application (routes and middleware in the module docstring)."""
        middleware = [
            Middleware(hardening.SecurityHeaders),
            Middleware(hardening.HostCheck, hosts=self.allowed_hosts),
        ]
        if self.auth is not None:
            middleware.append(Middleware(AuthMiddleware, auth=self.auth, login_page=_login_page))
        return Starlette(
            middleware=middleware,
            routes=[
                Route("/", self._page),
                Route("/healthz", self._healthz),
                Route("/readyz", self._readyz),
                Route("/metrics", self._metrics),
                Route("/api/status", self._json(lambda: self.view.status())),
                Route("/api/graph", self._json(lambda: self.view.graph())),
                Route("/api/clips", self._json(lambda: self.view.clips())),
                Route("/clips/{node}/{name}", self._clip),
                Route("/streams/{stream}.mjpeg", self._mjpeg),
                Route("/streams/{stream}.jpg", self._snapshot),
            ],
        )

    async def _page(self, request: Request) -> Response:
        nonce = secrets.token_urlsafe(16)
        html = await run_in_threadpool(page.render, self.view, request.url.hostname, nonce)
        headers = {
            "Cache-Control": "no-store",
            "Content-Security-Policy": hardening.page_csp(nonce),
        }
        return HTMLResponse(html, headers=headers)

    async def _healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def _readyz(self, request: Request) -> Response:
        ok, reason = await run_in_threadpool(self.view.ready)
        if ok:
            return PlainTextResponse("ready")
        return PlainTextResponse(reason or "not ready", status_code=503)

    async def _metrics(self, request: Request) -> Response:
        body = await run_in_threadpool(metrics.exposition, self.registry)
        return Response(body, media_type=metrics.CONTENT_TYPE)

    def _json(self, read: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            data = await run_in_threadpool(read)
            return JSONResponse(data, headers={"Cache-Control": "no-store"})

        return endpoint

    async def _clip(self, request: Request) -> Response:
        node, name = request.path_params["node"], request.path_params["name"]
        if not (NAME.fullmatch(node) and NAME.fullmatch(name)) or ".." in name:
            return PlainTextResponse("bad clip name", status_code=400)
        opened = await run_in_threadpool(self._open_clip, node, name)
        if opened is None:
            return PlainTextResponse("no such clip", status_code=404)
        fd, info = opened
        return _OpenFileResponse(fd, info, media_type="video/mp4", filename=name)

    def _open_clip(self, node: str, name: str) -> tuple[int, Any] | None:
        """The listed clip ``node``/``name`` opened (fd, fstat), or None."""
        from panorama_cli.localrun.serve.clips import open_clip

        if self.clips_root is None:
            return None
        for clip in self.view.clips():
            if clip.get("node") == node and clip.get("name") == name:
                if clip.get("path") != f"storage/{node}/clips/{name}":
                    return None
                return open_clip(self.clips_root / "storage", node, name)
        return None

    def _feed(self, request: Request) -> LiveFeed | None:
        stream = request.path_params["stream"]
        return self.view.live(stream) if NAME.fullmatch(stream) else None

    async def _snapshot(self, request: Request) -> Response:
        feed = self._feed(request)
        if feed is None:
            return PlainTextResponse("no such stream", status_code=404)
        item = await run_in_threadpool(feed.jpeg)
        if item is None:
            return PlainTextResponse("no frame yet", status_code=503)
        return Response(item[1], media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def _mjpeg(self, request: Request) -> Response:
        feed = self._feed(request)
        if feed is None:
            return PlainTextResponse("no such stream", status_code=404)
        return StreamingResponse(
            self._parts(feed),
            media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def _parts(self, feed: LiveFeed) -> AsyncIterator[bytes]:
        """One multipart part per new frame until the server stops (or the client leaves:
        starlette then cancels this generator)."""
        with self._lock:
            self.active_streams += 1
        try:
            seen = 0
            while not self._stopping.is_set():
                seen, data = await run_in_threadpool(_next_jpeg, feed, seen)
                if data is not None:
                    head = (
                        f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                        f"Content-Length: {len(data)}\r\n\r\n"
                    )
                    yield head.encode("ascii") + data + b"\r\n"
        finally:
            with self._lock:
                self.active_streams -= 1


class _OpenFileResponse(FileResponse):
    """A FileResponse (ranges, HEAD, ETag) of a file serve already opened safely: it reads
    ``/proc/self/fd/<fd>``, which reopens that very file (renaming it or putting a link in
    its place changes nothing), and closes the fd when the response ends."""

    def __init__(self, fd: int, info: Any, **kwargs: Any) -> None:
        super().__init__(f"/proc/self/fd/{fd}", stat_result=info, **kwargs)
        self._fd = fd

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            os.close(self._fd)


def _next_jpeg(feed: LiveFeed, seen: int) -> tuple[int, bytes | None]:
    """Wait (at most :data:`WAIT_S`) for a frame newer than ``seen``: ``(its seq, JPEG)``, or
    ``(seen, None)`` when none came; runs on a worker thread (blocks, encodes)."""
    if feed.seq <= seen and feed.wait(seen, WAIT_S) is None:
        return seen, None
    item = feed.jpeg()
    if item is None or item[0] <= seen:
        return max(seen, feed.seq), None  # counted but not yet a picture: wait for the next
    return item[0], item[1]


def _login_page(error: str | None) -> tuple[str, str]:
    """The login page's HTML and Content-Security-Policy (``error``: said above the form)."""
    nonce = secrets.token_urlsafe(16)
    return page.render_login(error, nonce), hardening.page_csp(nonce)


def _check_tls(tls: tuple[Path, Path]) -> dict[str, Any]:
    """uvicorn's TLS settings for (certificate, key), loaded once here so that a bad pair is
    one UserError at start.

    Raises:
        UserError: a file is missing or unreadable, or the key does not fit the certificate.
    """
    cert, key = tls
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise UserError(
            f"cannot use --tls-cert {cert} --tls-key {key}: "
            f"{getattr(exc, 'strerror', None) or exc}",
            hint="give a PEM certificate (chain) and its PEM private key, readable by serve",
        ) from None
    return {
        "ssl_certfile": str(cert),
        "ssl_keyfile": str(key),
        "ssl_ciphers": "ECDHE+AESGCM:ECDHE+CHACHA20",  # forward secrecy (TLS 1.3 has its own)
    }


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port, or UserError with what to do."""
    where = f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise UserError(
            f"cannot listen on {where}: unknown host ({exc.strerror})",
            hint="give --listen HOST:PORT with a local address, e.g. 127.0.0.1:8765",
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UserError(
                f"cannot listen on {where}: the address is in use",
                hint="stop what listens there or pick another port with --listen HOST:PORT",
            ) from None
        raise UserError(
            f"cannot listen on {where}: {exc.strerror or exc}",
            hint="give --listen HOST:PORT with an address of this machine",
        ) from None
    sock.set_inheritable(False)
    return sock
