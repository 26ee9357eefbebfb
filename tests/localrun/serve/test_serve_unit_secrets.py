"""``serve --systemd-unit`` with a camera that needs a password: the password goes to a 0600
environment file the unit names, never into the unit or a command line; serve started the way
the unit says (its ExecStart, WorkingDirectory and that file's variables) gets the camera's
frames from a real RTSP camera that asks for the credentials."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import stat
import subprocess
import sys
from pathlib import Path

from tests.localrun.helpers import make_project
from tests.localrun.serve.serve_process import http_get
from tests.support.cameras import RtspCamera, free_port
from tests.support.polling import until

APP = """
import panoramasdk
node = panoramasdk.node()
while True:
    node.outputs.video_out.put(node.inputs.video_in.get())
"""
PASSWORD = "pw-5ecret$'x"  # a $ and a quote: special to systemd


def _unit(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _environment_file(path: Path) -> dict[str, str]:
    """The variables systemd reads from ``path`` (the quoting environment_text writes:
    systemd.exec(5), EnvironmentFile=)."""
    found = {}
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        if value.startswith("'"):
            found[name] = value[1:-1]
        else:
            assert value.startswith('"') and value.endswith('"'), line
            found[name] = re.sub(r"\\(.)", r"\1", value[1:-1])
    return found


def test_the_unit_names_a_0600_environment_file_and_serve_sees_the_camera(tmp_path, gst_rtsp):
    root = make_project(tmp_path, APP)
    state = tmp_path / "state"
    port = free_port()
    with RtspCamera(user="viewer", password=PASSWORD) as camera:
        camera.start()
        done = subprocess.run(
            [sys.executable, "-m", "panorama_cli", "serve", "--camera",
             f"front_camera={camera.secret_url}", "--listen", f"127.0.0.1:{port}",
             "--rtsp-port", "0", "--state-dir", str(state), "--systemd-unit"],
            cwd=root, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert PASSWORD not in done.stdout and "5ecret" not in done.stdout
        assert "5ecret" not in done.stderr
        assert "PANORAMA_CAMERA_FRONT_CAMERA" in done.stderr  # the command-line warning
        unit = _unit(done.stdout)
        assert "--camera" not in unit["ExecStart"]
        env_file = Path(unit["EnvironmentFile"])
        assert env_file == state / "auth" / "cameras.env"
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(env_file.parent.stat().st_mode) == 0o700
        variables = _environment_file(env_file)
        assert variables == {"PANORAMA_CAMERA_FRONT_CAMERA": camera.secret_url}

        anonymous = subprocess.run(
            [sys.executable, "-m", "panorama_cli", "serve", "--check", "--camera",
             f"front_camera={camera.url}"],
            cwd=root, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert "NOT reachable" in anonymous.stdout, anonymous  # the camera asks for them

        argv = shlex.split(unit["ExecStart"].replace("%%", "%").replace("$$", "$"))
        serve = subprocess.Popen(
            argv, cwd=unit["WorkingDirectory"], env={**os.environ, **variables},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            cmdline = Path(f"/proc/{serve.pid}/cmdline").read_bytes()
            assert b"5ecret" not in cmdline

            def frames() -> int:
                assert serve.poll() is None, "serve exited"
                token_file = state / "auth" / "token"
                if not token_file.exists():
                    return 0
                try:
                    status, body = http_get(
                        f"http://127.0.0.1:{port}/api/status", 2, token_file.read_text().strip()
                    )
                except OSError:  # not listening yet
                    return 0
                if status != 200:
                    return 0
                camera = json.loads(body)["cameras"].get("front_camera") or {}
                return int(camera.get("frames") or 0)

            until(lambda: frames() > 5, 90, "frames from the password-protected camera")
        finally:
            serve.send_signal(signal.SIGTERM)
            assert serve.wait(60) == 0


def test_a_camera_file_stays_a_file_and_a_plain_camera_stays_on_the_command_line(tmp_path):
    root = make_project(tmp_path, APP, cameras=("front_camera", "back_camera"))
    secret = tmp_path / "front.url"
    secret.write_text("rtsp://u:filepw@10.0.0.5/s\n")
    state = tmp_path / "state"
    done = subprocess.run(
        [sys.executable, "-m", "panorama_cli", "serve", "--camera",
         f"front_camera=@{os.path.relpath(secret, root)}", "--camera",
         "back_camera=rtsp://10.0.0.6/s", "--state-dir", str(state), "--systemd-unit"],
        cwd=root, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PANORAMA_CAMERA_SIDE": "rtsp://u:envpw@10.0.0.7/s"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    unit = _unit(done.stdout)
    words = shlex.split(unit["ExecStart"])
    cameras = [words[i + 1] for i, word in enumerate(words) if word == "--camera"]
    assert cameras == [f"front_camera=@{secret}", "back_camera=rtsp://10.0.0.6/s"]
    assert "filepw" not in done.stdout and "envpw" not in done.stdout
    # a variable set when the unit was made carries over through the file
    variables = _environment_file(Path(unit["EnvironmentFile"]))
    assert variables == {"PANORAMA_CAMERA_SIDE": "rtsp://u:envpw@10.0.0.7/s"}
