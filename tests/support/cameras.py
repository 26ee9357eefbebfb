"""Cameras for tests: :func:`write_clip` (a short video file) and :class:`RtspCamera`, a real
RTSP camera on 127.0.0.1 in its own process, so a test can kill it (SIGKILL, as a camera losing
power) and start it again on the same port.

:class:`RtspCamera` runs this module as ``python -m tests.support.cameras --port N ...``:
backpack's :class:`~backpack.rtsp.RTSPServer` (gst-rtsp-server) serving a live
``videotestsrc`` encoded with x264 at ``rtsp://127.0.0.1:N/cam``. The child prints ``ready``
once it listens and exits when its stdin closes, so it never outlives the test process. With
``user`` and ``password`` the camera asks for them (RTSP basic authentication) and
:attr:`RtspCamera.secret_url` carries them.
Needs PyGObject, gst-rtsp-server and x264enc: use it with the ``gst_rtsp`` fixture
(tests/support/gstreamer.py), which skips (or fails under CI) without them.
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support.paths import REPO

#: Seconds a start waits for the child's ``ready`` line.
START_TIMEOUT = 20.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_clip(path: Path, count: int, fps: float = 25.0) -> Path:
    """A 64x48 MJPG avi of ``count`` frames at ``fps``; frame i is filled with 10 * i % 250."""
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    assert writer.isOpened()
    for i in range(count):
        writer.write(np.full((48, 64, 3), (10 * i) % 250, np.uint8))
    writer.release()
    return path


class RtspCamera:
    """An RTSP server process at ``rtsp://127.0.0.1:<port>/cam``.

    Args:
        port: TCP port (a free one when None); kept across :meth:`kill` / :meth:`start`.
        width, height: picture size in pixels. fps: frames per second.
        user, password: the credentials a client must send (None: none asked).
    """

    def __init__(
        self, port: int | None = None, *, width: int = 160, height: int = 120, fps: int = 10,
        user: str | None = None, password: str | None = None,
    ) -> None:  # fmt: skip
        self.port = port or free_port()
        self.width, self.height, self.fps = width, height, fps
        self.user, self.password = user, password
        self.url = f"rtsp://127.0.0.1:{self.port}/cam"
        self.secret_url = (
            f"rtsp://{user}:{password}@127.0.0.1:{self.port}/cam" if user else self.url
        )
        self.process: subprocess.Popen[str] | None = None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Starts the server process and waits until it listens.

        Raises:
            RuntimeError: it did not print ``ready`` within ``timeout`` seconds.
        """
        args = [sys.executable, "-m", "tests.support.cameras", "--port", str(self.port)]
        args += ["--width", str(self.width), "--height", str(self.height), "--fps", str(self.fps)]
        if self.user and self.password:  # on stdin, never in the child's command line
            args += ["--user", self.user]
        deadline = time.monotonic() + timeout
        while True:  # the port of a killed server can take a moment to be free again
            process = subprocess.Popen(
                args, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            assert process.stdout is not None and process.stdin is not None
            if self.user and self.password:
                process.stdin.write(self.password + "\n")
                process.stdin.flush()
            line = process.stdout.readline().strip()
            if line == "ready":
                self.process = process
                return
            process.kill()
            process.wait()
            if time.monotonic() > deadline:
                raise RuntimeError(f"RTSP camera on port {self.port} did not start: {line!r}")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILLs the server (no RTSP teardown: the connection just breaks)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            if self.process.stdin is not None:
                self.process.stdin.close()
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.process = None

    def __enter__(self) -> RtspCamera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def _basic_auth(server: object, user: str, password: str) -> None:
    """Ask every client for ``user``/``password`` (gst-rtsp-server's ``RTSPAuth``, basic)."""
    from backpack._gst import rtsp_server

    rtsp = rtsp_server("TestCamera")
    auth = rtsp.RTSPAuth()
    token = rtsp.RTSPToken()
    token.set_string(rtsp.RTSP_TOKEN_MEDIA_FACTORY_ROLE, user)
    auth.add_basic(rtsp.RTSPAuth.make_basic(user, password), token)
    server.gst_server.set_auth(auth)  # type: ignore[attr-defined]


def _allow(factory: object, user: str) -> None:
    from backpack._gst import gst

    gst_mod, _, _ = gst("TestCamera")
    role = gst_mod.Structure.from_string(
        f"{user}, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
    )[0]
    factory.add_role_from_structure(role)  # type: ignore[attr-defined]


def _serve(port: int, width: int, height: int, fps: int, user: str | None = None) -> None:
    from backpack.rtsp import RTSPServer

    server = RTSPServer(port, host="127.0.0.1")
    password = sys.stdin.readline().strip() if user else ""
    if user:
        _basic_auth(server, user, password)
    caps = f"video/x-raw,width={width},height={height},framerate={fps}/1"
    factory = server.add_stream(
        "/cam",
        f"( videotestsrc is-live=true pattern=ball ! {caps} ! x264enc tune=zerolatency "
        f"speed-preset=ultrafast key-int-max={fps} ! rtph264pay name=pay0 pt=96 )",
    )
    if user:
        _allow(factory, user)
    try:
        server.start()
    except OSError as exc:
        print(f"error: {exc}", flush=True)
        return
    print("ready", flush=True)
    sys.stdin.read()  # until the test process closes the pipe (or dies)
    server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for name in ("--port", "--width", "--height", "--fps"):
        parser.add_argument(name, type=int, required=True)
    parser.add_argument("--user")
    ns = parser.parse_args()
    _serve(ns.port, ns.width, ns.height, ns.fps, ns.user)
