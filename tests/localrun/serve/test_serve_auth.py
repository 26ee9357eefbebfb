"""``panorama-cli serve`` for real with its login: the token stays out of its output and
serve.log, RTSP out asks a real client for it, ``--auth none`` says what it exposes, and
serve without PyGObject starts with RTSP out off (one warning) instead of refusing.

Before: no login anywhere (RTSP out republished a password-protected camera to anyone); after
``./install.sh`` serve exited 1 (``RTSP out: RTSPServer needs the Python module 'gi'``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.localrun.helpers import make_project, video
from tests.localrun.serve.serve_process import ServeProcess, http_get
from tests.support.cameras import free_port
from tests.support.polling import until

APP = """
import panoramasdk

app = panoramasdk.node()
while True:
    app.outputs.video_out.put(app.inputs.video_in.get())
"""


def _receive(url: str, frames: int = 3) -> int:
    av = pytest.importorskip("av")
    got = 0
    with av.open(url, options={"rtsp_transport": "tcp", "stimeout": "5000000"}) as client:
        for _ in client.decode(video=0):
            got += 1
            if got >= frames:
                break
    return got


def test_the_token_guards_http_and_rtsp_and_stays_out_of_the_logs(tmp_path):
    pytest.importorskip("gi")
    av = pytest.importorskip("av")
    root = make_project(tmp_path, APP)
    rtsp_port = free_port()
    serve = ServeProcess(root, tmp_path / "state", video(), "--rtsp-port", str(rtsp_port))
    try:
        serve.wait_listening()
        token = serve.token
        assert token and http_get(f"{serve.base}/api/status")[0] == 401

        def streaming() -> bool:
            return bool(serve.status()["streams"].get("front_camera", {}).get("rtsp"))

        until(streaming, 60, "the HDMI stream")
        url = serve.status()["streams"]["front_camera"]["rtsp"]
        assert url == f"rtsp://panorama@127.0.0.1:{rtsp_port}/front_camera"
        page = serve.get("/")[1].decode()
        assert url in page and 'id="rtsp-note"' in page and token not in page
        with pytest.raises(av.error.HTTPUnauthorizedError):
            _receive(f"rtsp://127.0.0.1:{rtsp_port}/front_camera")
        assert _receive(url.replace("panorama@", f"panorama:{token}@")) == 3
    finally:
        code = serve.stop()
    assert code == 0
    output, log = serve.output(), serve.serve_log()
    assert token not in output and token not in log  # no terminal: where it is, not what
    assert f"?token=<the token in {serve.state / 'auth' / 'token'}>" in output


def test_auth_none_is_open_and_says_so(tmp_path):
    root = make_project(tmp_path, APP)
    serve = ServeProcess(root, tmp_path / "state", video(), "--auth", "none")
    try:
        serve.wait_listening()
        code, body = http_get(f"{serve.base}/api/status")
        assert code == 200 and "nodes" in json.loads(body)
    finally:
        assert serve.stop() == 0
    assert "--auth none: the page, status, metrics, clips and live video" in serve.output()
    assert not (serve.state / "auth" / "token").exists()


def _without_gi(tmp_path: Path) -> dict[str, str]:
    """An environment whose Python cannot import gi (as after ./install.sh's user install)."""
    shadow = tmp_path / "no-gi"
    (shadow / "gi").mkdir(parents=True)
    (shadow / "gi" / "__init__.py").write_text("raise ImportError(\"No module named 'gi'\")\n")
    path = os.pathsep.join(p for p in [str(shadow), os.environ.get("PYTHONPATH", "")] if p)
    return {**os.environ, "PYTHONPATH": path}


def test_without_pygobject_serve_starts_with_rtsp_out_off_and_one_warning(tmp_path):
    root = make_project(tmp_path, APP)
    env = _without_gi(tmp_path)
    port = free_port()
    output = tmp_path / "out.txt"
    argv = [sys.executable, "-m", "panorama_cli", "serve", "--camera", f"front_camera={video()}",
            "--listen", f"127.0.0.1:{port}"]  # fmt: skip

    def listening() -> bool:
        assert proc.poll() is None, output.read_text()
        try:
            up = http_get(f"http://127.0.0.1:{port}/healthz", 1)[0] == 200
        except OSError:
            return False
        return up and "nodes started" in output.read_text()  # past start: SIGTERM exits 0

    with open(output, "wb") as out:  # the default --rtsp-port (8554): lenient
        proc = subprocess.Popen(  # noqa: S603 - an argument list
            [*argv, "--state-dir", str(tmp_path / "state")],
            cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        until(listening, 60, "serve to listen")
    finally:
        proc.terminate()
        code = proc.wait(30)
    text = output.read_text()
    assert code == 0, text
    warnings = [line for line in text.splitlines() if "RTSP out is off" in line]
    assert len(warnings) == 1, text
    assert "PyGObject" in warnings[0] and "apt-get install" in warnings[0], warnings
    assert "create-package" not in text

    # asked for explicitly: one line, exit 1
    done = subprocess.run(  # noqa: S603 - an argument list
        [*argv, "--state-dir", str(tmp_path / "state2"), "--rtsp-port", str(free_port())],
        cwd=root, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "RTSP out needs PyGObject" in done.stderr and "Traceback" not in done.stderr
