"""serve's login: one secret token, a session cookie for browsers, Bearer for API clients.

The token (``secrets.token_urlsafe(32)``: 256 random bits) is made on serve's first start in
``<state-dir>/auth/token`` (folder 0700, file 0600, written atomically: a temporary file
linked into place, so two starts never see half a token) and read again on later starts
(:func:`load_token`). Every HTTP request but ``/healthz`` and ``/readyz`` needs it
(:class:`AuthMiddleware`), in one of three ways:

- ``Authorization: Bearer <token>`` (API clients, Prometheus' ``authorization`` setting);
- ``?token=<token>`` on a GET (the login URL serve prints, like Jupyter's): answered with a
  303 to the same path without the query, setting the session cookie;
- the session cookie (``panorama_serve_<port>``: cookies are per host, not per port, so two
  serves on one machine keep theirs apart): an itsdangerous ``TimestampSigner`` signature
  under a key derived from the token (a new token ends every session), HttpOnly,
  SameSite=Strict, Secure under TLS, valid :data:`SESSION_S` seconds. The login form
  (``POST /login``, the page shown instead of the app without a session) sets it too.

Comparisons are constant-time over SHA-256 digests (the length does not leak either). A token
that is presented and wrong counts against the client's address (an IPv6 address by its /64:
one host owns a whole /64) in :class:`FailedLogins`: a token bucket of
:data:`FAILURES_BURST` failures refilled at one per :data:`FAILURE_REFILL_S` seconds; past it
every login from that address answers 429 until the bucket refills. The table holds at most
:data:`MAX_CLIENTS` addresses (least recently failed dropped first). It is a few lines here
rather than the ``limits`` package: that keeps a key per client until it expires (bounded by
time, not count) and would be one more dependency for a dozen lines; with 256-bit tokens the
limiter is defence in depth, not what keeps the token from being guessed. A bad or expired
cookie is no guess at the token and is ignored (the login page is shown), so a browser left
open across a token change is not locked out.

Unauthenticated: ``GET /`` (and HEAD) answer 401 with the login page; everything else 401
``authentication required`` with ``WWW-Authenticate: Bearer``.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import ipaddress
import logging
import os
import re
import secrets
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from panorama_cli.errors import UserError

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Seconds a browser session lasts.
SESSION_S = 7 * 24 * 3600
#: Failed logins an address may make at once, and seconds until it may make one more.
FAILURES_BURST = 10
FAILURE_REFILL_S = 6.0
#: Addresses the failed-login table holds.
MAX_CLIENTS = 4096
#: Paths that answer without the token.
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
#: Bytes of a login form's body read at most, and seconds to send it.
MAX_FORM = 4096
FORM_S = 5.0
#: RTSP out's user name (the token is its password).
RTSP_USER = "panorama"
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9._~-]{32,256}")
_AUTH_DIR, _TOKEN_FILE = "auth", "token"


def load_token(state_root: Path) -> tuple[str, Path]:
    """The token in ``<state_root>/auth/token``, made there first when missing.

    Returns:
        (the token, the file's path).

    Raises:
        UserError: the folder or file cannot be made or read, is a link or not a regular
            file, or does not hold a token (32 to 256 of ``A-Z a-z 0-9 . _ ~ -``).
    """
    folder = Path(state_root) / _AUTH_DIR
    path = folder / _TOKEN_FILE
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise UserError(f"{folder}: {exc.strerror or exc}", hint="check --state-dir") from None
    try:
        os.fchmod(dir_fd, 0o700)
        token = _read(dir_fd, path)
        if token is None:
            token = _create(dir_fd, path)
    finally:
        os.close(dir_fd)
    return token, path


def read_token_file(path: Path) -> str:
    """The token held in ``path`` (a file another tool wrote: a mounted secret).

    Raises:
        UserError: missing, unreadable, not a regular file, or not a token.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise UserError(f"token file {path}: {exc.strerror or exc}") from None
    try:
        return _token_of(fd, path)
    finally:
        os.close(fd)


def _read(dir_fd: int, path: Path) -> str | None:
    try:
        fd = os.open(_TOKEN_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        why = "a link" if exc.errno == errno.ELOOP else (exc.strerror or str(exc))
        raise UserError(f"{path}: {why}", hint=f"remove {path}; serve makes a new token") from None
    try:
        os.fchmod(fd, 0o600)
        return _token_of(fd, path)
    finally:
        os.close(fd)


def _token_of(fd: int, path: Path) -> str:
    import stat

    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"{path}: not a regular file")
    text = os.read(fd, 1024).decode("ascii", "replace").strip()
    if not TOKEN_PATTERN.fullmatch(text):
        raise UserError(
            f"{path} holds no token (32 to 256 of A-Z a-z 0-9 . _ ~ -)",
            hint=f"remove {path}; serve makes a new token",
        )
    return text


def _create(dir_fd: int, path: Path) -> str:
    token = secrets.token_urlsafe(32)
    tmp = f".{_TOKEN_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
        try:
            os.write(fd, token.encode("ascii") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, _TOKEN_FILE, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except FileExistsError:  # another start made it first: theirs holds
            return _read(dir_fd, path) or token
        finally:
            os.unlink(tmp, dir_fd=dir_fd)
        os.fsync(dir_fd)
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror or exc}", hint="check --state-dir") from None
    log.debug("new login token in %s", path)
    return token


def client_key(address: str | None) -> str:
    """The rate limiter's key of a client address: an IPv6 address by its /64."""
    if not address:
        return "?"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        mapped = ip.ipv4_mapped  # type: ignore[union-attr]
        if mapped is not None:
            return str(mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class FailedLogins:
    """Failed logins per client key: a token bucket each, at most ``max_clients`` of them.

    Args:
        burst: failures allowed at once.
        refill_s: seconds until one more is allowed.
        max_clients: keys held (the least recently failed one is dropped past it).
        clock: monotonic seconds.
    """

    def __init__(
        self,
        burst: int = FAILURES_BURST,
        refill_s: float = FAILURE_REFILL_S,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst, self.refill_s, self.max_clients = burst, refill_s, max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (t, n)
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        then, level = self._buckets.get(key, (now, float(self.burst)))
        return min(float(self.burst), level + (now - then) / self.refill_s)

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again (0: it may now)."""
        with self._lock:
            if key not in self._buckets:
                return 0.0
            level = self._level(key, self._clock())
        return 0.0 if level >= 1.0 else (1.0 - level) * self.refill_s

    def failed(self, key: str) -> None:
        """Count one failure of ``key``."""
        with self._lock:
            now = self._clock()
            level = max(0.0, self._level(key, now) - 1.0)
            self._buckets[key] = (now, level)
            self._buckets.move_to_end(key)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)


class TokenAuth:
    """What :class:`AuthMiddleware` checks: the token and the session cookie made from it.

    Args:
        token: the secret.
        port: the HTTP port (names the cookie).
        secure: the cookie is sent over HTTPS only (TLS on).
        failures: the failed-login table (default: a new one).
    """

    def __init__(
        self, token: str, port: int, secure: bool = False, failures: FailedLogins | None = None
    ) -> None:
        from itsdangerous import TimestampSigner

        self._digest = hashlib.sha256(token.encode()).digest()
        key = hmac.new(token.encode(), b"panorama-cli serve session", hashlib.sha256).digest()
        self._signer = TimestampSigner(key, salt="panorama-serve-session")
        self.cookie = f"panorama_serve_{port}"
        self.secure = secure
        self.failures = failures or FailedLogins()

    def matches(self, given: str) -> bool:
        """Whether ``given`` is the token (constant time)."""
        digest = hashlib.sha256(given.encode("utf-8", "replace")).digest()
        return hmac.compare_digest(digest, self._digest)

    def session(self) -> str:
        """A new session cookie value."""
        return self._signer.sign(b"session").decode("ascii")

    def session_ok(self, value: str) -> bool:
        """Whether ``value`` is a session this token signed in the last :data:`SESSION_S`."""
        from itsdangerous import BadSignature

        try:
            return self._signer.unsign(value, max_age=SESSION_S) == b"session"
        except (BadSignature, UnicodeError, ValueError):
            return False

    def set_cookie(self, response: Any) -> None:
        """Put the session cookie on ``response`` (a starlette Response)."""
        response.set_cookie(
            self.cookie,
            self.session(),
            max_age=SESSION_S,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )


class AuthMiddleware:
    """ASGI middleware: every request but :data:`OPEN_PATHS` needs the token (module
    docstring).

    Args:
        app: the application behind it.
        auth: the token and cookie (:class:`TokenAuth`).
        login_page: ``(error or None) -> (html, content-security-policy)`` of the login page.
    """

    def __init__(
        self,
        app: ASGIApp,
        auth: TokenAuth,
        login_page: Callable[[str | None], tuple[str, str]],
    ) -> None:
        self.app, self.auth, self.login_page = app, auth, login_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        from starlette.requests import Request

        request = Request(scope, receive)
        response = await self._check(request)
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)

    async def _check(self, request: Any) -> Any:
        """None when the request may pass, else the response to send."""
        from starlette.responses import RedirectResponse

        auth = self.auth
        key = client_key(request.client.host if request.client else None)
        header = request.headers.get("authorization", "")
        query = request.query_params.get("token")
        form = request.url.path == "/login" and request.method == "POST"
        if header:
            scheme, _, given = header.partition(" ")
            if scheme.lower() == "bearer" and auth.matches(given.strip()):
                return None
            return self._failed(request, key, "wrong token")
        if form:
            given = await _form_token(request)
            if given is not None and auth.matches(given):
                done = RedirectResponse("/", status_code=303)
                auth.set_cookie(done)
                return done
            return self._failed(request, key, "wrong token", page=True)
        if query is not None and request.method in ("GET", "HEAD"):
            if auth.matches(query):
                rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                path = "/" + request.url.path.lstrip("/\\")  # never //other.host: a redirect
                target = path + (f"?{urllib.parse.urlencode(rest)}" if rest else "")
                done = RedirectResponse(target, status_code=303)
                auth.set_cookie(done)
                return done
            return self._failed(request, key, "wrong token")
        cookie = request.cookies.get(auth.cookie)
        if cookie and auth.session_ok(cookie):
            return None
        return self._denied(request, None)

    def _failed(self, request: Any, key: str, error: str, page: bool = False) -> Any:
        """A wrong token from client ``key``: counted, and 429 once its failures are used
        up. Only failures are limited: the right token always passes, so a client that
        keeps failing cannot lock out the ones that know it (the 32-byte token cannot be
        guessed in the attempts a limited client still sees answered)."""
        from starlette.responses import PlainTextResponse

        wait = self.auth.failures.retry_after(key)
        if wait > 0:
            return PlainTextResponse(
                "too many failed logins; try again later\n",
                status_code=429,
                headers={"Retry-After": str(int(wait) + 1)},
            )
        self.auth.failures.failed(key)
        return self._denied(request, error, page=page)

    def _denied(self, request: Any, error: str | None, page: bool = False) -> Any:
        from starlette.responses import HTMLResponse, PlainTextResponse

        if page or (request.url.path == "/" and request.method in ("GET", "HEAD")):
            html, policy = self.login_page(error)
            return HTMLResponse(
                html,
                status_code=401,
                headers={"Cache-Control": "no-store", "Content-Security-Policy": policy},
            )
        text = "authentication required" if error is None else error
        return PlainTextResponse(
            f"{text}: send Authorization: Bearer <token> (the token is in the state folder's "
            "auth/token)\n",
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="panorama-cli serve"'},
        )


async def _form_token(request: Any) -> str | None:
    """The ``token`` field of a urlencoded login form (at most :data:`MAX_FORM` bytes, sent
    within :data:`FORM_S` seconds), or None."""
    import asyncio

    from starlette.requests import ClientDisconnect

    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return None

    async def body() -> bytes | None:
        data = b""
        async for chunk in request.stream():
            data += chunk
            if len(data) > MAX_FORM:
                return None
        return data

    try:
        data = await asyncio.wait_for(body(), FORM_S)
    except (asyncio.TimeoutError, ClientDisconnect, OSError):
        return None
    if data is None:
        return None
    fields = urllib.parse.parse_qs(data.decode("utf-8", "replace"), max_num_fields=8)
    values = fields.get("token") or [None]
    return values[0]
