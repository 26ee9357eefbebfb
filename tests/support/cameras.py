"""Cameras for tests: :func:`write_clip` (a short video file) and :class:`RtspCamera`, a real
RTSP camera on 127.0.0.1 in its own process, so a test can kill it (SIGKILL, as a camera losing
power) and start it again on the same port.

:class:`RtspCamera` runs this module as ``python -m tests.support.cameras --port N ...``:
backpack's :class:`~backpack.rtsp.RTSPServer` (gst-rtsp-server) serving a live
``videotestsrc`` encoded with x264 at ``rtsp://127.0.0.1:N/cam``. The child prints ``ready``
once it listens and exits when its stdin closes, so it never outlives the test process.
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
    """

    def __init__(
        self, port: int | None = None, *, width: int = 160, height: int = 120, fps: int = 10
    ) -> None:
        self.port = port or free_port()
        self.width, self.height, self.fps = width, height, fps
        self.url = f"rtsp://127.0.0.1:{self.port}/cam"
        self.process: subprocess.Popen[str] | None = None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Starts the server process and waits until it listens.

        Raises:
            RuntimeError: it did not print ``ready`` within ``timeout`` seconds.
        """
        args = [sys.executable, "-m", "tests.support.cameras", "--port", str(self.port)]
        args += ["--width", str(self.width), "--height", str(self.height), "--fps", str(self.fps)]
        deadline = time.monotonic() + timeout
        while True:  # the port of a killed server can take a moment to be free again
            process = subprocess.Popen(
                args, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            assert process.stdout is not None
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


def _serve(port: int, width: int, height: int, fps: int) -> None:
    from backpack.rtsp import RTSPServer

    server = RTSPServer(port, host="127.0.0.1")
    caps = f"video/x-raw,width={width},height={height},framerate={fps}/1"
    server.add_stream(
        "/cam",
        f"( videotestsrc is-live=true pattern=ball ! {caps} ! x264enc tune=zerolatency "
        f"speed-preset=ultrafast key-int-max={fps} ! rtph264pay name=pay0 pt=96 )",
    )
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
    ns = parser.parse_args()
    _serve(ns.port, ns.width, ns.height, ns.fps)
