"""The app's world under panorama-cli run: mounts, interpreter, environment, SDK contract."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from panorama_cli.localrun import run_project
from tests.localrun.helpers import make_project, video

WORLD = """
import json, os, shutil, subprocess, sys
import panoramasdk

if __name__ == "__main__":
    child = subprocess.run(["python3", "-c", "import sys, panoramasdk; print(sys.executable)"],
                           capture_output=True, text=True)
    facts = {
        "name": __name__,
        "cwd": os.getcwd(),
        "app_files": sorted(os.listdir("/panorama")),
        "executable": sys.executable,
        "child_executable": child.stdout.strip(),
        "child_error": child.stderr[-300:],
        "uid_env": os.environ.get("AppGraph_Uid"),
        "metadata_disabled": os.environ.get("AWS_EC2_METADATA_DISABLED"),
        "aws_keys": sorted(k for k in os.environ if k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE")),
        "credentials_file": os.environ.get("AWS_SHARED_CREDENTIALS_FILE"),
    }
    with open("/opt/aws/panorama/logs/app.log", "w") as f:
        f.write("logged\\n")
    with open("/opt/aws/panorama/storage/facts.json", "w") as f:
        json.dump(facts, f)
"""


def test_entry_sees_panorama_mounts_interpreter_and_no_credentials(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE00")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    root = make_project(tmp_path, WORLD, files={"helper.txt": "x"}, cameras=(), hdmi=False)
    result = run_project(root, grace_s=1.0)
    # the app ended by itself before any frame: a non-zero run status, even with exit code 0
    assert result.report["exit_reason"] == "app-exited"
    assert result.report["app_exit_code"] == 0 and result.exit_status == 1
    facts = json.loads((result.run_dir / "storage" / "facts.json").read_text())
    assert facts["name"] == "__main__" and facts["cwd"] == "/panorama"
    assert facts["app_files"] == ["app.py", "helper.txt"]
    assert Path(facts["executable"]).resolve() == Path(sys.executable).resolve()
    assert Path(facts["child_executable"]).resolve() == Path(sys.executable).resolve(), facts
    assert facts["uid_env"].startswith("applicationInstance-")
    assert facts["metadata_disabled"] == "true"
    assert facts["aws_keys"] == [] and facts["credentials_file"] == "/dev/null"
    assert (result.run_dir / "logs" / "app.log").read_text() == "logged\n"
    assert not Path("/panorama").exists()  # the host's /panorama was never created


def test_bash_entry_runs_python3_from_run_sh(tmp_path):
    app = """
    import json, sys, panoramasdk
    node = panoramasdk.node()
    media = node.inputs.video_in.get()
    json.dump({"argv0": sys.argv[0], "frames": len(media)}, open("/opt/aws/panorama/storage/bash.json", "w"))
    node.outputs.video_out.put(media)
    node.inputs.video_in.get()
    """
    root = make_project(
        tmp_path,
        "#!/bin/bash\nset -e\ncd /panorama\nexec python3 main.py\n",
        entry=("bash", "/panorama/run.sh"),
        files={"main.py": app},
        params={},
    )
    result = run_project(root, frames=1, cameras={"front_camera": video()}, grace_s=1.0)
    assert result.report["exit_reason"] == "frames", result.console
    facts = json.loads((result.run_dir / "storage" / "bash.json").read_text())
    assert facts == {"argv0": "main.py", "frames": 1}
    assert result.report["hdmi"]["front_camera"]["frames"] == 1


SDK_CONTRACT = """
import json, panoramasdk
import numpy as np

out = {}
node = panoramasdk.node()
out["ports"] = sorted(p.name for p in node.inputs) + sorted(p.name for p in node.outputs)
try:
    node.inputs.not_declared
except AttributeError as e:
    out["undeclared"] = str(e)
out["limit"] = [node.inputs.limit.get(), node.inputs.limit.get(), node.inputs.enabled.get(),
                node.inputs.label.get()]
try:
    node.inputs.video_in.get(timeout=0.3)
except TimeoutError:
    out["timeout"] = True
try:
    node.outputs.video_out.put("not media")
except TypeError as e:
    out["put_type"] = str(e)
node.outputs.video_out.put([])  # unconnected output: accepted and dropped
try:
    node.call({"x": np.zeros(3)}, "no_such_model")
except ValueError as e:
    out["call"] = str(e)

class Sub(panoramasdk.node):
    def __init__(self):
        self.ready = True
out["subclass"] = [Sub().ready, hasattr(Sub(), "inputs"), hasattr(Sub(), "outputs")]
json.dump(out, open("/opt/aws/panorama/storage/sdk.json", "w"))
"""


def test_sdk_ports_parameters_timeouts_and_errors(tmp_path):
    params = {"limit": ("int32", 7), "enabled": ("boolean", True), "label": ("string", "a")}
    root = make_project(tmp_path, SDK_CONTRACT, cameras=(), hdmi=False, params=params)
    result = run_project(root, params={"limit": "9"})
    assert result.report["exit_reason"] == "app-exited", result.console
    out = json.loads((result.run_dir / "storage" / "sdk.json").read_text())
    assert out["ports"] == ["enabled", "label", "limit", "video_in", "video_out"]
    assert "not_declared" in out["undeclared"] and "package.json" in out["undeclared"]
    assert out["limit"] == [9, 9, True, "a"]
    assert out["timeout"] is True
    assert "list or tuple of media" in out["put_type"]
    assert "no_such_model" in out["call"] and "model nodes: none" in out["call"]
    assert out["subclass"] == [True, True, True]


HTTP_APP = """
import http.server, panoramasdk

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"panorama app here")

node = panoramasdk.node()
port = node.inputs.http_port.get()
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_app_without_camera_serves_http_until_the_run_ends(tmp_path):
    port = _free_port()
    root = make_project(
        tmp_path, HTTP_APP, cameras=(), hdmi=False, params={"http_port": ("int32", port)}
    )
    box: dict[str, object] = {}
    runner = threading.Thread(
        target=lambda: box.update(result=run_project(root, duration=4.0, grace_s=1.0))
    )
    runner.start()
    body = None
    deadline = time.monotonic() + 4.0
    while body is None and time.monotonic() < deadline:
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).read()
        except OSError:
            time.sleep(0.1)
    runner.join(30)
    assert body == b"panorama app here"
    result = box["result"]
    assert result.report["exit_reason"] == "duration" and result.exit_status == 0
    with pytest.raises(OSError):  # stopped: nothing listens any more
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)


def test_python_option_is_the_interpreter_python3_runs(tmp_path):
    import subprocess
    import venv

    other = tmp_path / "other-env"
    venv.EnvBuilder(with_pip=False).create(other)
    app = """
    import sys, panoramasdk
    panoramasdk.node()  # the SDK works without numpy until pixels are touched
    open("/opt/aws/panorama/storage/prefix", "w").write(sys.prefix)
    """
    root = make_project(tmp_path, app, cameras=(), hdmi=False, params={})
    result = run_project(root, python=str(other / "bin" / "python"))
    assert result.report["exit_reason"] == "app-exited", result.console
    assert (result.run_dir / "storage" / "prefix").read_text() == str(other)
    assert subprocess.run([str(other / "bin" / "python"), "-c", "import numpy"]).returncode != 0


def test_sdk_source_is_python_37_syntax():
    import ast

    from panorama_cli.localrun.engine import SDK_DIR

    files = sorted((SDK_DIR / "panoramasdk").glob("*.py"))
    assert [f.name for f in files] == ["__init__.py", "_client.py"]
    for path in files:
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 7))


@pytest.fixture
def unshare_fallback(monkeypatch):
    """Force the ``unshare --mount`` fallback (root only) instead of bubblewrap."""
    import os

    from panorama_cli.localrun import sandbox

    if os.geteuid() != 0:
        pytest.skip("the unshare fallback needs root")
    monkeypatch.setenv(sandbox.FORCE_ENV, "unshare")
    sandbox.mode.cache_clear()
    assert sandbox.mode() == "unshare"
    yield
    monkeypatch.delenv(sandbox.FORCE_ENV)
    sandbox.mode.cache_clear()


def test_unshare_fallback_gives_the_same_world(tmp_path, unshare_fallback):
    root = make_project(tmp_path, WORLD, files={"helper.txt": "x"}, cameras=(), hdmi=False)
    result = run_project(root, grace_s=1.0)
    assert result.report["exit_reason"] == "app-exited", result.console
    facts = json.loads((result.run_dir / "storage" / "facts.json").read_text())
    assert facts["name"] == "__main__" and facts["cwd"] == "/panorama"
    assert facts["app_files"] == ["app.py", "helper.txt"]
    assert Path(facts["child_executable"]).resolve() == Path(sys.executable).resolve(), facts
    assert (result.run_dir / "logs" / "app.log").read_text() == "logged\n"
    assert not Path("/panorama").exists()
    assert not list(result.run_dir.glob(".root-*"))  # its mount point is cleaned up


def test_unshare_fallback_stops_a_bare_except_loop(tmp_path, unshare_fallback):
    from tests.localrun.test_run_apps import BARE_EXCEPT

    root = make_project(tmp_path, BARE_EXCEPT, params={})
    out = tmp_path / "out"
    result = run_project(
        root, frames=3, cameras={"front_camera": video()}, grace_s=0.5, output_dir=out
    )
    assert result.report["exit_reason"] == "frames", result.console
    assert result.report["hdmi"]["front_camera"]["frames"] == 3
    from tests.localrun.helpers import processes_with

    assert processes_with(str(out / ".bin")) == []


WRITER = """
import json, os

with open("/panorama/x.txt", "w") as f:
    f.write("written")
with open("/panorama/helper.txt", "a") as f:
    f.write(" appended")
os.makedirs("/panorama/cache/models")
os.remove("/panorama/gone.txt")
facts = {
    "x": open("/panorama/x.txt").read(),
    "helper": open("/panorama/helper.txt").read(),
    "listing": sorted(os.listdir("/panorama")),
}
with open("/opt/aws/panorama/storage/writes.json", "w") as f:
    json.dump(facts, f)
"""


def _writes_stay_out_of_src(tmp_path: Path) -> None:
    files = {"helper.txt": "x", "gone.txt": "still here"}
    root = make_project(tmp_path, WRITER, files=files, cameras=(), hdmi=False)
    src = next((root / "packages").glob("*/src"))
    before = {p.relative_to(src): p.read_bytes() for p in src.rglob("*") if p.is_file()}
    result = run_project(root, grace_s=1.0)
    assert result.report["exit_reason"] == "app-exited", result.console
    assert result.report["app_exit_code"] == 0, result.console
    facts = json.loads((result.run_dir / "storage" / "writes.json").read_text())
    # the app reads its own writes back ...
    assert facts == {
        "x": "written",
        "helper": "x appended",
        "listing": ["app.py", "cache", "helper.txt", "x.txt"],
    }
    # ... and the project's src/ is as it was; nothing of the app's /panorama is left
    after = {p.relative_to(src): p.read_bytes() for p in src.rglob("*") if p.is_file()}
    assert after == before and sorted(p.name for p in src.iterdir()) == sorted(
        ["app.py", "helper.txt", "gone.txt"]
    )
    assert not list(result.run_dir.glob(".panorama-*"))


def test_app_writes_to_panorama_never_reach_src(tmp_path):
    _writes_stay_out_of_src(tmp_path)


def test_unshare_fallback_writes_to_panorama_never_reach_src(tmp_path, unshare_fallback):
    _writes_stay_out_of_src(tmp_path)


def test_src_copy_leaves_out_a_run_folder_inside_src(tmp_path):
    from panorama_cli.localrun.sandbox import copy_src

    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "mod.py").write_text("x = 1\n")
    (src / "link").symlink_to("pkg/mod.py")
    (src / "run").mkdir()
    dest = copy_src(src, src / "run" / ".panorama-code_node")
    assert (dest / "pkg" / "mod.py").read_text() == "x = 1\n"
    assert (dest / "link").is_symlink() and str((dest / "link").readlink()) == "pkg/mod.py"
    assert sorted(p.name for p in (dest / "run").iterdir()) == []  # not itself


def test_bwrap_command_line_overlays_src_on_panorama():
    from panorama_cli.localrun import sandbox

    ops = sandbox.app_ops(Path("/p/src"), Path("/r/logs"), Path("/r/storage"), overlay=True)
    argv = sandbox.bwrap_argv(ops, ["python3", "/panorama/app.py"], 3, True)
    at = argv.index("--overlay-src")
    assert argv[at : at + 4] == ["--overlay-src", "/p/src", "--tmp-overlay", "/panorama"]
    assert ["--bind", "/r/logs", "/opt/aws/panorama/logs"] == argv[at + 4 : at + 7]
    plain = sandbox.app_ops(Path("/r/.panorama-n"), Path("/r/logs"), Path("/r/storage"))
    assert plain[0] == ("bind", "/r/.panorama-n", "/panorama")
