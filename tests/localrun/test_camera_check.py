"""`serve --check`'s camera check on a real file, a real RTSP server on 127.0.0.1, a closed
port and a port that accepts but never answers."""

from __future__ import annotations

import socket
import time

from panorama_cli.localrun.frames.camera_check import (
    CameraCheck,
    check_camera,
    format_check_line,
)
from tests.support.cameras import RtspCamera, free_port, write_clip
from tests.support.paths import VIDEO
from tests.support.shared import require


def test_check_a_video_file(tmp_path):
    check = check_camera(str(write_clip(tmp_path / "clip.avi", 5)))
    assert (check.reachable, check.width, check.height, check.fps) == (True, 64, 48, 25.0)
    assert check.codec == "MJPG" and check.error is None
    line = format_check_line("cam", check)
    assert line == f"cam: {tmp_path / 'clip.avi'}  reachable  64x48  25 fps  MJPG"


def test_check_vtest():
    require(VIDEO)
    check = check_camera(str(VIDEO))
    assert (check.width, check.height, check.fps, check.codec) == (768, 576, 10.0, "MP43")


def test_check_an_image_folder_and_a_missing_file(tmp_path):
    import cv2
    import numpy as np

    (tmp_path / "frames").mkdir()
    cv2.imwrite(str(tmp_path / "frames" / "a.png"), np.zeros((10, 20, 3), np.uint8))
    check = check_camera(str(tmp_path / "frames"))
    assert (check.reachable, check.width, check.height, check.codec) == (True, 20, 10, "png")
    missing = check_camera(str(tmp_path / "absent.mp4"))
    assert not missing.reachable and "no such video file" in missing.error


def test_check_a_live_rtsp_camera(gst_rtsp):
    with RtspCamera(width=320, height=240, fps=10) as camera:
        camera.start()
        check = check_camera(camera.url.replace("rtsp://", "rtsp://admin:pw@"), timeout_s=10)
    assert check.reachable, check.error
    assert (check.width, check.height, check.fps, check.codec) == (320, 240, 10.0, "h264")
    assert check.uri == camera.url.replace("rtsp://", "rtsp://admin:***@")
    assert format_check_line("front", check).endswith("reachable  320x240  10 fps  h264")


def test_check_a_closed_port_is_unreachable_at_once():
    url = f"rtsp://admin:secret@127.0.0.1:{free_port()}/cam"
    check = check_camera(url, timeout_s=5)
    assert not check.reachable and check.width is None and check.seconds < 5
    assert "cannot open the RTSP stream" in check.error and "secret" not in check.error
    line = format_check_line("door", check)
    assert line.startswith("door: UNREACHABLE  rtsp://admin:***@127.0.0.1:") and "\n" not in line
    assert CameraCheck(**check.as_dict()) == check


def test_check_a_camera_that_never_answers_ends_within_the_timeout():
    with socket.socket() as listener:  # accepts TCP connections, says nothing
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        started = time.monotonic()
        check = check_camera(f"rtsp://127.0.0.1:{port}/cam", timeout_s=1.5)
        took = time.monotonic() - started
    assert not check.reachable and check.error
    assert 1.0 <= took < 2.5, took
