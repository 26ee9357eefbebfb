""":class:`RTSPSkyLine` serves the application's frames as an RTSP stream (gst-rtsp-server).

:class:`RTSPServer` wraps ``GstRtspServer.RTSPServer`` with its own GLib main loop in a daemon
thread (on a private ``GLib.MainContext``, so it does not interfere with any other loop), and
can be started and stopped any number of times. One server serves any number of streams,
each at its mount point: ``rtsp://<host>:<port><path>``.

Design: the appsrc lives *inside* the RTSP media pipeline
``( appsrc ! videoconvert ! x264enc ! rtph264pay name=pay0 )``, which gst-rtsp-server builds
when the first client asks for the stream and shares with later clients
(``RTSPMediaFactory`` with ``shared=True``). :meth:`RTSPSkyLine.put` pushes into the appsrc of
that media. So nothing is encoded while nobody watches (encoding runs on the device's CPU),
and ``put()`` returns False in that case. Buffers are stamped with the media pipeline's clock
(the media pipeline starts whenever a client connects). The aws-panorama-samples backpack
instead encoded all the time and relayed RTP through a loopback UDP port; that needs a free
port per stream and CPU for nobody.

Needs gst-rtsp-server's typelib (Debian: ``gir1.2-gst-rtsp-server-1.0``) and the x264 encoder
(``gstreamer1.0-plugins-ugly``). Clients: e.g. ``ffplay rtsp://...``, VLC, or OpenCV's
``cv2.VideoCapture("rtsp://...")`` (FFMPEG backend).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from backpack._appsrc import APPSRC_NAME, AppSrcFeeder
from backpack._gst import gst, rtsp_server
from backpack.skyline import SkyLine, h264_encoder


class RTSPServer:
    """An RTSP server (gst-rtsp-server) whose GLib main loop runs in its own thread.

    Args:
        port: TCP port to listen on; 0 picks a free one (see :attr:`port` once started).
        host: address to listen on; ``"0.0.0.0"`` for all interfaces.
        parent_logger: logger to attach this server's logger to.

    Raises:
        MissingDependencyError: PyGObject or gst-rtsp-server's typelib is missing.
    """

    def __init__(
        self,
        port: int | str = 8554,
        host: str = "0.0.0.0",
        *,
        parent_logger: logging.Logger | None = None,
    ) -> None:
        name = self.__class__.__name__
        self.logger = (
            logging.getLogger(f"backpack.rtsp.{name}")
            if parent_logger is None
            else parent_logger.getChild(name)
        )
        self._rtsp = rtsp_server(name)
        _, _, self._glib = gst(name)
        self.host = host
        self._requested_port = int(port)
        self.gst_server = self._rtsp.RTSPServer()
        self.gst_server.set_address(host)
        self.gst_server.set_service(str(int(port)))
        self.streams: dict[str, str] = {}
        self._lock = threading.Lock()
        self._context: Any = None
        self._loop: Any = None
        self._thread: threading.Thread | None = None
        self._source_id = 0

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._thread is not None

    @property
    def port(self) -> int:
        """The port the server listens on (the bound one while running)."""
        if self.running:
            return int(self.gst_server.get_bound_port())
        return self._requested_port

    def start(self) -> None:
        """Start listening and serving from a daemon thread (no-op when already running).

        Raises:
            OSError: the address or port cannot be bound.
        """
        with self._lock:
            if self._thread is not None:
                return
            context = self._glib.MainContext.new()
            try:
                source_id = self.gst_server.attach(context)
            except self._glib.Error as exc:
                raise OSError(
                    f"RTSP server cannot listen on {self.host}:{self.port}: {exc.message}"
                ) from exc
            if source_id == 0:
                raise OSError(f"RTSP server cannot listen on {self.host}:{self._requested_port}")
            self._context, self._source_id = context, source_id
            self._loop = self._glib.MainLoop.new(context, False)
            self._thread = threading.Thread(target=self._loop.run, name="RTSPServer", daemon=True)
            self._thread.start()
            self.logger.info("RTSP server listening on %s:%d", self.host, self.port)

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnect all clients, stop listening and end the loop thread (waits up to
        ``timeout`` seconds). The server can be started again."""
        with self._lock:
            if self._thread is None:
                return
            remove = self._rtsp.RTSPFilterResult.REMOVE
            self.gst_server.client_filter(lambda _server, _client: remove)
            source = self._context.find_source_by_id(self._source_id)
            if source is not None:
                source.destroy()
            self._loop.quit()
            self._thread.join(timeout)
            self._thread = self._loop = self._context = None
            self.logger.info("RTSP server stopped")

    def add_stream(
        self,
        mount_point: str,
        pipeline: str,
        on_media: Callable[[Any], None] | None = None,
    ) -> Any:
        """Serve ``pipeline`` at ``mount_point`` (replacing what was there).

        Args:
            mount_point: path such as ``"/stream1"``.
            pipeline: gst-launch description of the media, with the payloader named
                ``pay0``, e.g. ``"( videotestsrc ! x264enc ! rtph264pay name=pay0 )"``.
            on_media: called (in the server thread) with each new ``GstRtspServer.RTSPMedia``
                once it is configured.

        Returns:
            The ``GstRtspServer.RTSPMediaFactory``.
        """
        factory = self._rtsp.RTSPMediaFactory()
        factory.set_launch(pipeline)
        factory.set_shared(True)
        if on_media is not None:
            factory.connect("media-configure", lambda _factory, media: on_media(media))
        self.gst_server.get_mount_points().add_factory(mount_point, factory)
        self.streams[mount_point] = pipeline
        self.logger.info("serving %s", self.url(mount_point))
        return factory

    def remove_stream(self, mount_point: str) -> None:
        """Stop offering ``mount_point`` to new clients (no error if it is not served)."""
        self.gst_server.get_mount_points().remove_factory(mount_point)
        self.streams.pop(mount_point, None)

    def url(self, mount_point: str, host: str | None = None) -> str:
        """``rtsp://host:port/mount_point``; the host defaults to the listening address
        (``127.0.0.1`` when listening on all interfaces); an IPv6 address is bracketed
        (RFC 3986)."""
        shown = host or ("127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host)
        if ":" in shown and not shown.startswith("["):
            shown = f"[{shown}]"
        return f"rtsp://{shown}:{self.port}{mount_point}"

    def urls(self) -> list[str]:
        """The URLs of all served streams."""
        return [self.url(mount_point) for mount_point in self.streams]

    def __repr__(self) -> str:
        return (
            f"<{self.__class__.__name__} running={self.running} streams=[{', '.join(self.urls())}]>"
        )


class RTSPSkyLine(SkyLine):
    """Serves the frames put into it at ``rtsp://<host>:<port><path>`` (live, clock timestamps).

    Example::

        server = RTSPServer(port=8554)
        skyline = RTSPSkyLine(server, "/annotated", fps=15, width=1280, height=720)
        server.start()
        skyline.start_streaming()
        while True:
            skyline.put(frame)   # False while no client watches

    Args:
        server: the :class:`RTSPServer` to mount the stream on; None creates one on
            ``port``/``host`` that this SkyLine starts and stops with the stream.
        path: mount point, e.g. ``"/skyline"`` (a missing leading ``/`` is added).
        port, host: for the server this SkyLine creates when ``server`` is None.
        bitrate_kbps: H.264 bit rate in kbit/s.
        speed_preset: x264 preset (see :func:`~backpack.skyline.h264_encoder`).
        **kwargs: :class:`~backpack.skyline.SkyLine` arguments (fps, width, height, ...).

    Raises:
        MissingDependencyError: PyGObject, GStreamer or gst-rtsp-server is missing.
    """

    def __init__(
        self,
        server: RTSPServer | None = None,
        path: str = "/skyline",
        *,
        port: int = 8554,
        host: str = "0.0.0.0",
        bitrate_kbps: int = 2000,
        speed_preset: str = "ultrafast",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.path = path if path.startswith("/") else "/" + path
        self.bitrate_kbps = bitrate_kbps
        self.speed_preset = speed_preset
        self._owns_server = server is None
        self.server = (
            server if server is not None else RTSPServer(port, host, parent_logger=self.logger)
        )
        self._feeder: AppSrcFeeder | None = None
        self._stream: tuple[float, int, int] | None = None

    @property
    def url(self) -> str:
        """Where clients find the stream."""
        return self.server.url(self.path)

    @property
    def clients_watching(self) -> bool:
        """True while a client's media pipeline is receiving frames."""
        return self._feeder is not None

    def _get_pipeline(self, fps: float, width: int, height: int) -> str:
        encoder = h264_encoder(fps, self.bitrate_kbps, self.speed_preset)
        return f"{encoder} ! rtph264pay name=pay0 pt=96 config-interval=-1"

    def _open_stream(self, fps: float, width: int, height: int) -> None:
        if self._owns_server:
            self.server.start()
        self._stream = (fps, width, height)
        description = f"( appsrc name={APPSRC_NAME} ! {self._get_pipeline(fps, width, height)} )"
        self.logger.info("RTSP media pipeline: %s", description)
        session = self.session
        self.server.add_stream(self.path, description, lambda media: self._on_media(media, session))
        self.logger.info("streaming at %s", self.url)

    def _on_media(self, media: Any, session: int) -> None:
        # Server thread: a client asked for the stream and its media pipeline was built.
        if session != self.session or self._stream is None:
            return
        fps, width, height = self._stream
        src = media.get_element().get_by_name(APPSRC_NAME)
        feeder = AppSrcFeeder(
            src,
            fps,
            width,
            height,
            live=True,
            max_queued_frames=self.max_queued_frames,
            block=False,
        )
        media.connect("unprepared", lambda _media: self._on_media_gone(feeder))
        self._feeder = feeder
        self.logger.info("a client opened %s", self.url)

    def _on_media_gone(self, feeder: AppSrcFeeder) -> None:
        if self._feeder is feeder:
            self._feeder = None
            self.logger.info("no more clients on %s", self.url)

    def _push(self, frame: np.ndarray) -> bool:
        feeder = self._feeder
        return feeder is not None and feeder.push(frame)

    def _close_stream(self) -> None:
        feeder, self._feeder = self._feeder, None
        if self._stream is None:
            return
        self._stream = None
        self.server.remove_stream(self.path)
        if feeder is not None:
            feeder.src.end_of_stream()
        if self._owns_server:
            self.server.stop()

    def __repr__(self) -> str:
        return (
            f"<{self.__class__.__name__} url={self.url} state={self.state.name} "
            f"fps={self.video_fps} width={self.video_width} height={self.video_height} "
            f"watching={self.clients_watching} sent={self.frames_sent}>"
        )
