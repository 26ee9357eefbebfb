"""serve --external-nodes: node containers prove who they are with tokens derived from the
bundle's control key (``--control-key``); without the key serve does not start.

A real serve process and real SDK clients (standing in for the engine's node containers) on
its control socket.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

from panorama_cli.localrun.engine import SDK_DIR
from panorama_cli.localrun.frames import identity
from tests.localrun.helpers import make_project, video
from tests.support.polling import until

APP = "print('never started: the engine starts the nodes')\n"

CLIENT = textwrap.dedent(
    """
    import json
    import panoramasdk
    try:
        node = panoramasdk.node()
        frames = node.inputs.video_in.get(timeout=30)
        print(json.dumps({"node": node.inputs._panorama_meta[0],
                          "frame": list(frames[0].image.shape)}))
    except RuntimeError as exc:
        print(json.dumps({"refused": str(exc)}))
    """
)


def _serve(root: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "panorama_cli", "serve", "--rtsp-port", "0", *args],
        cwd=root, capture_output=True, text=True, timeout=60, **kw,
    )  # fmt: skip


def test_external_nodes_without_the_control_key_do_not_start(tmp_path):
    root = make_project(tmp_path, APP)
    done = _serve(root, "--external-nodes", "--camera", f"front_camera={video()}")
    assert done.returncode == 1, done.stderr
    assert "--external-nodes needs --control-key FILE" in done.stderr
    assert "Traceback" not in done.stderr
    bad = tmp_path / "control.key"
    bad.write_text("not a key\n")
    done = _serve(
        root, "--external-nodes", "--control-key", str(bad), "--camera", f"front_camera={video()}"
    )
    assert done.returncode == 1 and "not a control key" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _client(sock_path: Path, tmp_path: Path, token: str) -> dict:
    script = tmp_path / "node.py"
    script.write_text(CLIENT)
    secret = tmp_path / "token"
    secret.write_text(token + "\n")
    secret.chmod(0o600)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(SDK_DIR),
        "PANORAMA_LOCALRUN_SOCKET": str(sock_path),
        "PANORAMA_LOCALRUN_NODE": "code_node",
        identity.TOKEN_FILE_ENV: str(secret),
    }
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_an_external_node_needs_its_token_from_the_bundles_key(tmp_path):
    root = make_project(tmp_path, APP)
    key = identity.new_key()
    key_file = tmp_path / "control.key"
    key_file.write_text(identity.key_to_text(key))
    key_file.chmod(0o600)
    sock_path = tmp_path / "ctl" / "ctl.sock"
    sock_path.parent.mkdir()
    port = _free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "panorama_cli", "serve", "--rtsp-port", "0",
         "--listen", f"127.0.0.1:{port}", "--external-nodes", "--control-key", str(key_file),
         "--control-socket", str(sock_path), "--camera", f"front_camera={video()}"],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        until(sock_path.exists, 60, "serve's control socket")
        spoofed = _client(sock_path, tmp_path, identity.node_token(identity.new_key(), "code_node"))
        assert spoofed == {
            "refused": "the panorama-cli runner refused: the hello's token is not node code_node's"
        }
        real = _client(sock_path, tmp_path, identity.node_token(key, "code_node"))
        assert real == {"node": "code_node", "frame": [576, 768, 3]}
    finally:
        serve.send_signal(signal.SIGTERM)
        out, err = serve.communicate(timeout=60)
    assert serve.returncode == 0, err
    assert err.count("refused a hello as 'code_node'") == 1, err
    serve_log = (root / ".panorama-serve" / "logs" / "serve.log").read_text()
    assert serve_log.count("refused a hello as 'code_node'") == 1, serve_log


def test_the_systemd_unit_keeps_external_nodes_and_the_control_key(tmp_path):
    import shlex

    root = make_project(tmp_path, APP)
    (tmp_path / "control.key").write_text(identity.key_to_text(identity.new_key()))
    done = _serve(root, "--external-nodes", "--control-key", "../control.key",
                  "--control-socket", "../ctl.sock", "--systemd-unit")  # fmt: skip
    assert done.returncode == 0, done.stderr
    unit = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    words = shlex.split(unit["ExecStart"])
    assert "--external-nodes" in words
    assert words[words.index("--control-key") + 1] == str(tmp_path / "control.key")
    assert words[words.index("--control-socket") + 1] == str(tmp_path / "ctl.sock")
