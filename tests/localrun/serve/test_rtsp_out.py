"""serve's RTSP out: a real RTSP client (PyAV/FFmpeg over TCP) receives decodable frames, and
nothing is encoded while nobody watches."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from panorama_cli.errors import UserError

pytest.importorskip("gi")
av = pytest.importorskip("av")

from panorama_cli.localrun.serve.rtsp_out import RtspOut  # noqa: E402

W, H, FPS = 320, 240, 15


def _frame(i: int) -> np.ndarray:
    image = np.zeros((H, W, 3), np.uint8)
    image[:, : W // 2] = (0, 0, 255)  # left half red (BGR)
    image[:, W // 2 :] = (255, 0, 0)  # right half blue
    image[(i * 4) % H : (i * 4) % H + 8] = 255  # a moving white bar
    return image


@pytest.fixture
def rtsp():
    try:
        out = RtspOut("127.0.0.1", 0)
        out.start()
    except UserError as exc:  # gst-rtsp-server missing
        pytest.skip(str(exc))
    yield out
    out.stop()


class _Pusher(threading.Thread):
    def __init__(self, out: RtspOut, stream: str) -> None:
        super().__init__(daemon=True)
        self.out, self.stream = out, stream
        self.stop = threading.Event()
        self.accepted = 0
        self.push_s: list[float] = []

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            image = _frame(i)
            start = time.perf_counter()
            self.accepted += self.out.push(self.stream, image)
            self.push_s.append(time.perf_counter() - start)
            i += 1
            time.sleep(1 / FPS)


def test_nothing_is_encoded_while_nobody_watches(rtsp: RtspOut) -> None:
    rtsp.add_stream("front_camera", FPS, W, H)
    for i in range(30):
        assert rtsp.push("front_camera", _frame(i)) is False
    stats = rtsp.stats("front_camera")
    assert stats == {"watching": False, "clients": 0, "pushed": 0, "dropped": 0, "encoded": 0}
    assert rtsp.push("unknown", _frame(0)) is False


def test_a_real_client_receives_decodable_frames(rtsp: RtspOut) -> None:
    url = rtsp.add_stream("front_camera", FPS, W, H)
    assert url == f"rtsp://127.0.0.1:{rtsp.port}/front_camera"
    assert rtsp.url("front_camera", "fe80::1") == f"rtsp://[fe80::1]:{rtsp.port}/front_camera"
    assert rtsp.url("front_camera", "box.local") == f"rtsp://box.local:{rtsp.port}/front_camera"
    pusher = _Pusher(rtsp, "front_camera")
    pusher.start()
    try:
        time.sleep(0.5)
        assert rtsp.stats("front_camera")["encoded"] == 0  # frames pushed, nobody watching
        opened = time.monotonic()
        with av.open(url, options={"rtsp_transport": "tcp", "stimeout": "5000000"}) as client:
            frames = []
            for frame in client.decode(video=0):
                if not frames:
                    first_s = time.monotonic() - opened
                frames.append(frame.to_ndarray(format="bgr24"))
                if len(frames) >= 10:
                    break
        stats = rtsp.stats("front_camera")
    finally:
        pusher.stop.set()
        pusher.join(5)
    print(
        f"first frame {first_s:.2f} s after connecting; push p max {max(pusher.push_s) * 1e3:.2f} ms"
    )
    assert stats["clients"] == 1 and stats["encoded"] >= 10
    last = frames[-1]
    assert last.shape == (H, W, 3)
    # Colors survive the round trip: left red, right blue (H.264 loses a little).
    left, right = last[H // 2, W // 4].astype(int), last[H // 2, 3 * W // 4].astype(int)
    assert left[2] > 180 and left[0] < 80, left
    assert right[0] > 180 and right[2] < 80, right
    assert max(pusher.push_s) < 0.1


def test_the_stream_stops_encoding_when_the_client_leaves(rtsp: RtspOut) -> None:
    url = rtsp.add_stream("cam", FPS, W, H)
    pusher = _Pusher(rtsp, "cam")
    pusher.start()
    try:
        with av.open(url, options={"rtsp_transport": "tcp"}) as client:
            for n, _ in enumerate(client.decode(video=0)):
                if n >= 3:
                    break
        deadline = time.monotonic() + 10
        while rtsp.stats("cam")["watching"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not rtsp.stats("cam")["watching"]
        encoded = rtsp.stats("cam")["encoded"]
        time.sleep(0.5)
        assert rtsp.stats("cam")["encoded"] == encoded
        assert rtsp.push("cam", _frame(0)) is False
    finally:
        pusher.stop.set()
        pusher.join(5)


def test_a_port_in_use_is_one_user_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = RtspOut("127.0.0.1", port)
        try:
            with pytest.raises(UserError, match=f"127.0.0.1:{port}"):
                out.start()
        finally:
            out.stop()


def test_adding_a_stream_again_keeps_its_mount_point(rtsp: RtspOut) -> None:
    url = rtsp.add_stream("cam", FPS, W, H)
    state = rtsp._streams["cam"]
    assert rtsp.add_stream("cam", FPS, W, H) == url and rtsp._streams["cam"] is state
    assert rtsp.add_stream("cam", FPS, W * 2, H * 2) == url and rtsp._streams["cam"] is not state


def _receive(url: str, frames: int = 3) -> int:
    """Frames a real RTSP client (FFmpeg over TCP) decoded from ``url``."""
    got = 0
    with av.open(url, options={"rtsp_transport": "tcp", "stimeout": "5000000"}) as client:
        for _ in client.decode(video=0):
            got += 1
            if got >= frames:
                break
    return got


def test_with_a_password_a_client_needs_the_credentials() -> None:
    token = "t0k3n-" + "x" * 40
    try:
        out = RtspOut("127.0.0.1", 0, password=token)
        out.start()
    except UserError as exc:
        pytest.skip(str(exc))
    try:
        url = out.add_stream("front_camera", FPS, W, H)
        # the URL names the user, never the password
        assert url == f"rtsp://panorama@127.0.0.1:{out.port}/front_camera"
        assert token not in url
        pusher = _Pusher(out, "front_camera")
        pusher.start()
        try:
            plain = f"rtsp://127.0.0.1:{out.port}/front_camera"
            for refused in (plain, url, url.replace("panorama@", "panorama:wrong@")):
                with pytest.raises(av.error.HTTPUnauthorizedError):
                    _receive(refused)
            assert out.stats("front_camera")["clients"] == 0  # nothing built for them
            good = url.replace("panorama@", f"panorama:{token}@")
            assert _receive(good) == 3
        finally:
            pusher.stop.set()
            pusher.join(5)
    finally:
        out.stop()


def test_a_public_url_names_where_clients_reach_it() -> None:
    """Behind a published port (compose: 127.0.0.1:18554 -> 8554) the URL names the published
    host and port, not the listening ones; 0.0.0.0 keeps the host the client named."""
    from panorama_cli.errors import UsageError
    from panorama_cli.localrun.serve.rtsp_out import check_public_url

    for public, host, expected in (
        ("rtsp://127.0.0.1:18554", None, "rtsp://panorama@127.0.0.1:18554/front_camera"),
        ("rtsp://box.example.com", "other", "rtsp://panorama@box.example.com/front_camera"),
        ("rtsp://0.0.0.0:18554", "box.local", "rtsp://panorama@box.local:18554/front_camera"),
        ("rtsp://0.0.0.0:18554", None, "rtsp://panorama@127.0.0.1:18554/front_camera"),
        ("rtsp://[::1]:18554", None, "rtsp://panorama@[::1]:18554/front_camera"),
    ):
        try:
            out = RtspOut("0.0.0.0", 0, password="t" * 43, public_url=public)
            out.start()
        except UserError as exc:  # gst-rtsp-server missing
            pytest.skip(str(exc))
        try:
            out.add_stream("front_camera", FPS, W, H)
            assert out.url("front_camera", host) == expected, public
        finally:
            out.stop()
    for bad in ("http://box:1", "rtsp://user:pw@box:1", "rtsp://box:1/path", "rtsp://box:x",
                "rtsp://", "rtsp://box?x=1"):  # fmt: skip
        with pytest.raises(UsageError, match="rtsp://HOST"):
            check_public_url(bad)
