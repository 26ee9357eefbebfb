"""serve's RTSP out: each HDMI stream at ``rtsp://HOST:PORT/<stream_id>`` (gst-rtsp-server).

Built on backpack's :class:`backpack.rtsp.RTSPServer` (its own GLib loop in a daemon thread)
with the media design of :class:`backpack.rtsp.RTSPSkyLine`: the appsrc lives inside the
media pipeline ``( appsrc ! videoconvert ! x264enc tune=zerolatency ! rtph264pay )``, which
gst-rtsp-server builds when the first client asks for the stream, shares with later clients
and tears down when the last one leaves. So nothing is encoded while nobody watches:
:meth:`RtspOut.push` returns False at once for such a stream (no copy, no encode). While a
client watches, a frame is copied into the appsrc (live, stamped with the pipeline clock at
push); the appsrc holds at most :data:`MAX_QUEUED` frames and drops beyond that, so push never
blocks the encoder thread that calls it.

With a ``password`` (serve's login token) every stream asks for RTSP basic authentication
(gst-rtsp-server's ``RTSPAuth``): user :data:`~.auth.RTSP_USER`, that password; a client
without them gets 401. The URLs it gives name the user, never the password
(``rtsp://panorama@HOST:PORT/<stream_id>``). Basic authentication sends the password in the
clear (base64): on a network that is not trusted, reach RTSP out through a tunnel.

Behind a published or forwarded port (a container engine, a Kubernetes Service) the address
clients reach differs from the one RTSP out listens on: ``public_url`` (serve's
``--public-url rtsp://HOST[:PORT]``) names it, and the URLs name its host (``0.0.0.0``: the
host the client named, e.g. the page's own) and port.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from panorama_cli.errors import UsageError, UserError

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

#: Frames the appsrc of a watched stream may hold before push() drops.
MAX_QUEUED = 2
#: H.264 bit rate (kbit/s) and x264 preset of the RTSP streams.
BITRATE_KBPS = 2000
SPEED_PRESET = "ultrafast"
_STREAM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass
class _Stream:
    fps: float
    width: int
    height: int
    feeder: Any = None  # backpack._appsrc.AppSrcFeeder while a client watches
    pushed: int = 0  # frames accepted by the appsrc
    dropped: int = 0  # frames refused while watched (appsrc full)
    encoded: int = 0  # H.264 buffers out of the encoder (counted at the payloader)
    clients: int = 0  # media pipelines built so far
    lock: threading.Lock = field(default_factory=threading.Lock)


class RtspUnavailable(UserError):
    """RTSP out cannot run here: PyGObject or gst-rtsp-server's typelib is missing.

    Attributes:
        missing: what is missing, in words.
    """

    missing = "PyGObject or gst-rtsp-server"


#: What installs RTSP out's dependencies (said when they are missing).
RTSP_FIX = (
    "sudo apt-get install -y gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-ugly "
    "libgirepository1.0-dev libcairo2-dev pkg-config python3-dev, then run ./install.sh again "
    "(or pip install 'panorama-cli[gi]' in panorama-cli's environment)"
)


#: Hosts of a public URL that stand for "the host the client named".
_ANY_HOST = frozenset({"0.0.0.0", "::"})


def check_public_url(url: str) -> str:
    """``url`` (``--public-url``) when it is ``rtsp://HOST[:PORT]`` with no user, password,
    path, query or fragment, as ``rtsp://HOST[:PORT]``.

    Raises:
        UsageError: anything else.
    """
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port that is not a number in 0..65535 raises here
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme != "rtsp"
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise UsageError(
            f"--public-url {url!r} is not rtsp://HOST[:PORT]",
            hint="e.g. --public-url rtsp://edge-box-1.example.com:8554",
        )
    return f"rtsp://{parts.netloc}"


class RtspOut:
    """RTSP server for serve's HDMI streams.

    Args:
        host: address to listen on (``0.0.0.0`` for all interfaces).
        port: TCP port (0 picks a free one: see :attr:`port` after :meth:`start`).
        password: RTSP basic authentication's password (user :data:`~.auth.RTSP_USER`);
            None: no authentication.
        public_url: ``rtsp://HOST[:PORT]`` clients reach it by (:func:`check_public_url`;
            HOST ``0.0.0.0``: the host the client named); None: the listening address.

    Raises:
        UserError: from :meth:`start` when the port cannot be bound (in use);
            :class:`RtspUnavailable` when PyGObject or gst-rtsp-server is not installed.
    """

    def __init__(
        self,
        host: str = "0.0.0.0",
        port: int = 8554,
        password: str | None = None,
        public_url: str | None = None,
    ) -> None:
        from urllib.parse import urlsplit

        self.host, self._port = host, int(port)
        self._password = password
        self._public = urlsplit(check_public_url(public_url)) if public_url else None
        self._server: Any = None
        self._streams: dict[str, _Stream] = {}

    @property
    def port(self) -> int:
        """The bound port while running, else the requested one."""
        return int(self._server.port) if self._server is not None else self._port

    def start(self) -> None:
        """Start listening (no-op when started).

        Raises:
            UserError: the port is in use / cannot be bound, or gst-rtsp-server is missing.
        """
        if self._server is not None:
            return
        from backpack.errors import MissingDependencyError
        from backpack.rtsp import RTSPServer

        try:
            server = RTSPServer(self._port, self.host, parent_logger=log)
            if self._password is not None:
                server.gst_server.set_auth(_basic_auth(self._password))
            server.start()
        except MissingDependencyError as exc:
            log.debug("RTSP out unavailable: %s", exc)
            missing = (
                "PyGObject (the Python module gi)"
                if "module 'gi'" in str(exc)
                else "gst-rtsp-server's GObject introspection data (GstRtspServer 1.0)"
            )
            error = RtspUnavailable(
                f"RTSP out needs {missing}, which is not installed",
                hint=f"{RTSP_FIX}; or pass --rtsp-port 0",
            )
            error.missing = missing
            raise error from exc
        except OSError as exc:
            raise UserError(
                f"RTSP out cannot listen on {self.host}:{self._port} (port in use?)",
                hint="pass another --rtsp-port, or 0 to turn RTSP out off",
            ) from exc
        self._server = server

    def stop(self) -> None:
        """Disconnect clients and stop the server (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        for stream in self._streams.values():
            with stream.lock:
                stream.feeder = None
        server.stop()

    def add_stream(self, stream: str, fps: float, width: int, height: int) -> str:
        """Offer ``stream`` (frames ``height``×``width``×3 BGR at ``fps``) at its mount point.

        Adding a stream again with the same rate and size keeps the mount point (and its
        watching clients); another size or rate replaces it.

        Returns:
            ``rtsp://HOST:PORT/<stream>`` (127.0.0.1 shown when listening on all interfaces).

        Raises:
            ValueError: a stream id unfit for a URL path, or fps/size not > 0.
            RuntimeError: before :meth:`start`.
        """
        from backpack._appsrc import APPSRC_NAME
        from backpack._gst import h264_encoder

        if not _STREAM_ID.match(stream):
            raise ValueError(f"{stream!r} cannot be an RTSP mount point")
        if not (fps > 0 and width > 0 and height > 0):
            raise ValueError("fps, width and height must be > 0")
        if self._server is None:
            raise RuntimeError("RtspOut.add_stream before start()")
        known = self._streams.get(stream)
        if known is not None and (known.fps, known.width, known.height) == (fps, width, height):
            return self.url(stream) or ""  # a new runtime generation: clients stay connected
        state = _Stream(float(fps), int(width), int(height))
        self._streams[stream] = state
        encoder = h264_encoder(fps, BITRATE_KBPS, SPEED_PRESET, threads=1)
        description = (
            f"( appsrc name={APPSRC_NAME} ! {encoder} ! rtph264pay name=pay0 pt=96 "
            "config-interval=-1 )"
        )
        factory = self._server.add_stream(
            f"/{stream}", description, lambda m: self._on_media(state, m)
        )
        if self._password is not None:
            _allow_user(factory)
        return self.url(stream) or ""

    def url(self, stream: str, host: str | None = None) -> str | None:
        """The stream's URL naming ``host`` (default: the listening address) and, with
        authentication, the user (never the password); None when it is not served. With a
        public URL: its host (``0.0.0.0``: ``host``, else the listening address) and port."""
        if self._server is None or stream not in self._streams:
            return None
        public = self._public
        if public is None:
            url = str(self._server.url(f"/{stream}", host))
        else:
            named = public.hostname if public.hostname not in _ANY_HOST else None
            shown = named or host or ("127.0.0.1" if self.host in _ANY_HOST else self.host)
            if ":" in shown and not shown.startswith("["):
                shown = f"[{shown}]"
            port = f":{public.port}" if public.port else ""
            url = f"rtsp://{shown}{port}/{stream}"
        if self._password is not None:
            from panorama_cli.localrun.serve.auth import RTSP_USER

            url = url.replace("rtsp://", f"rtsp://{RTSP_USER}@", 1)
        return url

    def push(self, stream: str, image: np.ndarray) -> bool:
        """Hand one drawn frame (H×W×3 BGR uint8, the size given to :meth:`add_stream`) to the
        stream's encoder. Never blocks.

        Returns:
            False when nobody watches (nothing is copied or encoded), the appsrc is full
            (frame dropped), the size differs, or the stream is unknown.
        """
        state = self._streams.get(stream)
        if state is None:
            return False
        feeder = state.feeder
        if feeder is None:
            return False
        if image.shape[:2] != (state.height, state.width):
            import cv2

            image = cv2.resize(image, (state.width, state.height), interpolation=cv2.INTER_AREA)
        import numpy as np

        if feeder.push(np.ascontiguousarray(image)):
            state.pushed += 1
            return True
        state.dropped += 1
        return False

    def stats(self, stream: str) -> dict[str, Any]:
        """``{"watching", "clients", "pushed", "dropped", "encoded"}`` of one stream."""
        state = self._streams[stream]
        return {
            "watching": state.feeder is not None,
            "clients": state.clients,
            "pushed": state.pushed,
            "dropped": state.dropped,
            "encoded": state.encoded,
        }

    def _on_media(self, state: _Stream, media: Any) -> None:
        # Server thread: a client asked for the stream and its media pipeline was built.
        from backpack._appsrc import APPSRC_NAME, AppSrcFeeder
        from backpack._gst import gst

        gst_mod, _, _ = gst("RtspOut")
        element = media.get_element()
        feeder = AppSrcFeeder(
            element.get_by_name(APPSRC_NAME),
            state.fps,
            state.width,
            state.height,
            live=True,
            max_queued_frames=MAX_QUEUED,
            block=False,
        )

        def count(_pad: Any, _info: Any) -> Any:
            state.encoded += 1
            return gst_mod.PadProbeReturn.OK

        pay = element.get_by_name("pay0")
        if pay is not None:
            pay.get_static_pad("sink").add_probe(gst_mod.PadProbeType.BUFFER, count)

        def gone(_media: Any) -> None:
            with state.lock:
                if state.feeder is feeder:
                    state.feeder = None
            log.info("RTSP: no more clients on a stream")

        media.connect("unprepared", gone)
        with state.lock:
            state.feeder = feeder
            state.clients += 1
        log.info(
            "RTSP: a client opened a stream (%dx%d @ %.3g fps)",
            state.width,
            state.height,
            state.fps,
        )


def _basic_auth(password: str) -> Any:
    """gst-rtsp-server's ``RTSPAuth`` accepting user :data:`~.auth.RTSP_USER` with
    ``password`` (basic), granting the media factory role of that name."""
    from backpack._gst import rtsp_server
    from panorama_cli.localrun.serve.auth import RTSP_USER

    rtsp = rtsp_server("RtspOut")
    auth = rtsp.RTSPAuth()
    token = rtsp.RTSPToken()
    token.set_string(rtsp.RTSP_TOKEN_MEDIA_FACTORY_ROLE, RTSP_USER)
    auth.add_basic(rtsp.RTSPAuth.make_basic(RTSP_USER, password), token)
    return auth


def _allow_user(factory: Any) -> None:
    """Let the role :data:`~.auth.RTSP_USER` see and build ``factory``'s media (nobody else
    may: a client without the credentials gets 401)."""
    from backpack._gst import gst
    from panorama_cli.localrun.serve.auth import RTSP_USER

    gst_mod, _, _ = gst("RtspOut")
    role = gst_mod.Structure.from_string(
        f"{RTSP_USER}, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
    )[0]
    factory.add_role_from_structure(role)
