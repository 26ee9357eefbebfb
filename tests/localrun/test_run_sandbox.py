"""The app's world under panorama-cli run: the appliance's filesystem, no capabilities, its own
pids, an allow-listed environment, the interpreter, the SDK contract (both sandbox modes)."""

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
from panorama_cli.localrun.apps import sandbox
from tests.localrun.helpers import ACCOUNT, APP_ENV, PACKAGE, make_project, video

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
        "env": sorted(os.environ),
        "token": os.environ.get("GITHUB_TOKEN"),
    }
    with open("/opt/aws/panorama/logs/app.log", "w") as f:
        f.write("logged\\n")
    with open("/opt/aws/panorama/storage/facts.json", "w") as f:
        json.dump(facts, f)
"""


def test_entry_sees_panorama_mounts_interpreter_and_no_host_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE00")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_runner_token_must_not_leak")
    root = make_project(tmp_path, WORLD, files={"helper.txt": "x"}, cameras=(), hdmi=False)
    result = run_project(root, grace_s=1.0)
    # the app ended by itself before any frame: a non-zero run status, even with exit code 0
    assert result.report["exit_reason"] == "app-exited"
    assert result.report["app_exit_code"] == 0 and result.exit_status == 1
    facts = json.loads((result.run_dir / "storage" / "facts.json").read_text())
    assert facts["name"] == "__main__" and facts["cwd"] == "/"
    assert facts["token"] is None and facts["env"] == APP_ENV
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

    from panorama_cli.localrun.apps import sandbox

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
    assert facts["name"] == "__main__" and facts["cwd"] == "/"
    assert facts["app_files"] == ["app.py", "helper.txt"] and facts["env"] == APP_ENV
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
    "cwd": os.getcwd(),
}
with open("/opt/aws/panorama/storage/writes.json", "w") as f:
    json.dump(facts, f)
"""


def _writes_stay_out_of_src(tmp_path: Path) -> None:
    files = {"helper.txt": "x", "gone.txt": "still here"}
    root = make_project(tmp_path, WRITER, files=files, cameras=(), hdmi=False)
    src = next((root / "packages").glob("*/src"))
    before = {p.relative_to(src): p.read_bytes() for p in src.rglob("*") if p.is_file()}
    result = run_project(root, grace_s=1.0, writable_app=True)
    assert result.report["exit_reason"] == "app-exited", result.console
    assert result.report["app_exit_code"] == 0, result.console
    facts = json.loads((result.run_dir / "storage" / "writes.json").read_text())
    # the app reads its own writes back ...
    assert facts == {
        "x": "written",
        "helper": "x appended",
        "listing": ["app.py", "cache", "helper.txt", "x.txt"],
        "cwd": "/panorama",
    }
    # ... and the project's src/ is as it was; nothing of the app's /panorama is left
    after = {p.relative_to(src): p.read_bytes() for p in src.rglob("*") if p.is_file()}
    assert after == before and sorted(p.name for p in src.iterdir()) == sorted(
        ["app.py", "helper.txt", "gone.txt"]
    )
    assert not list(result.run_dir.glob(".panorama-*"))


def test_writable_app_writes_to_panorama_never_reach_src(tmp_path):
    _writes_stay_out_of_src(tmp_path)


def test_unshare_fallback_writable_app_never_reaches_src(tmp_path, unshare_fallback):
    _writes_stay_out_of_src(tmp_path)


def test_src_copy_leaves_out_a_run_folder_inside_src(tmp_path):
    from panorama_cli.localrun.apps.sandbox import copy_src

    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "mod.py").write_text("x = 1\n")
    (src / "link").symlink_to("pkg/mod.py")
    (src / "run").mkdir()
    dest = copy_src(src, src / "run" / ".panorama-code_node")
    assert (dest / "pkg" / "mod.py").read_text() == "x = 1\n"
    assert (dest / "link").is_symlink() and str((dest / "link").readlink()) == "pkg/mod.py"
    assert sorted(p.name for p in (dest / "run").iterdir()) == []  # not itself


def test_bwrap_command_line_overlays_src_on_panorama_with_writable_app():
    from panorama_cli.localrun.apps import sandbox

    logs, storage = Path("/r/logs"), Path("/r/storage")
    ops = sandbox.layout(Path("/p/src"), logs, storage, writable="overlay")
    argv = sandbox.bwrap_argv(ops, ["python3", "/panorama/app.py"], 3, "/panorama")
    at = argv.index("--overlay-src")
    assert argv[at : at + 4] == ["--overlay-src", "/p/src", "--tmp-overlay", "/panorama"]
    logs_at = argv.index("/r/logs")  # after the folders its mount point needs (0755)
    assert ["--bind", "/r/logs", "/opt/aws/panorama/logs"] == argv[logs_at - 1 : logs_at + 2]
    assert logs_at > at and argv[logs_at - 5 : logs_at - 1] == [
        "--perms", "0755", "--dir", "/opt/aws/panorama"
    ]  # fmt: skip
    assert argv[argv.index("--chdir") + 1] == "/panorama"
    plain = sandbox.layout(Path("/r/.panorama-n"), logs, storage, writable="copy")
    assert ("bind", "/r/.panorama-n", "/panorama") in plain
    default = sandbox.bwrap_argv(sandbox.layout(Path("/p/src"), logs, storage), ["x"], 3)
    at = default.index("/p/src")
    assert default[at - 1 : at + 2] == ["--ro-bind", "/p/src", "/panorama"]
    assert default[default.index("--cap-drop") + 1] == "ALL" and "--unshare-pid" in default
    assert default[default.index("--chdir") + 1] == "/"
    assert ["--remount-ro", "/"] == default[default.index("--unshare-pid") - 2 :][:2]


# -- a hostile app, in both sandbox modes -------------------------------------------------------

HOSTILE = """
import json, os, signal, subprocess

def attempt(path):
    try:
        with open(path, "w") as f:
            f.write("app was here")
        return "written"
    except OSError as e:
        return e.errno

def listing(path):
    try:
        return sorted(os.listdir(path))
    except OSError as e:
        return e.errno

def kill(pid):
    try:
        os.kill(pid, signal.SIGTERM)
        return "killed"
    except OSError as e:
        return type(e).__name__

host = json.load(open("/panorama/host.json"))
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
remount = subprocess.run(["mount", "-o", "remount,bind,rw", "/etc"], capture_output=True)
daemon = subprocess.Popen(["setsid", "sleep", "300"], env={"MARK": host["marker"]},
                          start_new_session=True)
facts = {
    "cwd": os.getcwd(),
    "cap_eff": status["CapEff"].strip(), "cap_prm": status["CapPrm"].strip(),
    "no_new_privs": status["NoNewPrivs"].strip(),
    "remount": remount.returncode,
    "etc": attempt("/etc/" + host["etc_name"]),
    "secret": listing(host["secret_dir"]),
    "home": listing("/home"), "tmp_before": listing("/tmp"),
    "host_tmp_file": os.path.exists(host["host_tmp_file"]),
    "write": {p: attempt(p) for p in ("/panorama/x", "/x", "/root/x", "/usr/x", "/tmp/x",
                                     "/opt/aws/panorama/logs/x", "/opt/aws/panorama/storage/x")},
    "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "sees_victim": os.path.exists("/proc/%d" % host["victim"]),
    "kill": kill(host["victim"]),
    "shm": attempt("/dev/shm/psm_sandbox_probe_%d" % os.getpid()),
    "run": listing("/run"),
    "sysctl": attempt("/proc/sys/kernel/hostname"),
}
os.remove("/dev/shm/psm_sandbox_probe_%d" % os.getpid())
json.dump(facts, open("/opt/aws/panorama/storage/hostile.json", "w"))
"""


@pytest.fixture(params=["bwrap", "unshare"])
def sandbox_mode(request, monkeypatch):
    """Each sandbox mode in turn (``PANORAMA_LOCALRUN_SANDBOX``); skip where it cannot run."""
    import os
    import shutil

    from panorama_cli.localrun.apps import sandbox

    if request.param == "unshare" and os.geteuid() != 0:
        pytest.skip("the unshare fallback needs root")
    if request.param == "bwrap" and not shutil.which("bwrap"):
        pytest.skip("bubblewrap is not installed")
    monkeypatch.setenv(sandbox.FORCE_ENV, request.param)
    sandbox.mode.cache_clear()
    if sandbox.mode() != request.param:
        pytest.skip(f"{request.param} cannot make the sandbox here")
    yield request.param
    monkeypatch.delenv(sandbox.FORCE_ENV)
    sandbox.mode.cache_clear()


def test_hostile_app_has_no_capabilities_no_host_files_and_no_host_processes(
    tmp_path, sandbox_mode
):
    import os
    import subprocess
    import uuid

    from tests.localrun.helpers import processes_with

    marker = f"panorama-sandbox-{uuid.uuid4().hex}"
    home = Path.home()
    secret_dir = home / f".{marker}"  # as ~/.aws would be
    secret_dir.mkdir()
    (secret_dir / "credentials").write_text("[default]\naws_secret_access_key = s\n")
    host_tmp_file = tmp_path / "host-tmp-file"
    host_tmp_file.write_text("the host's /tmp")
    etc_name = f"{marker}.conf"
    victim = subprocess.Popen(["sleep", "120"])
    hostname = Path("/proc/sys/kernel/hostname").read_text()
    host = {
        "marker": marker,
        "etc_name": etc_name,
        "secret_dir": str(secret_dir),
        "host_tmp_file": str(host_tmp_file),
        "victim": victim.pid,
    }
    root = make_project(
        tmp_path, HOSTILE, files={"host.json": json.dumps(host)}, cameras=(), hdmi=False
    )
    try:
        result = run_project(root, grace_s=1.0)
        deadline = time.monotonic() + 5
        while processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        daemons = processes_with(marker)
        victim_alive = victim.poll() is None
    finally:
        victim.kill()
        victim.wait()
        for pid in processes_with(marker):
            os.kill(pid, 9)
        shutil_rmtree(secret_dir)
        hostname_after = Path("/proc/sys/kernel/hostname").read_text()
        if hostname_after != hostname and os.geteuid() == 0:  # put the host's name back
            Path("/proc/sys/kernel/hostname").write_text(hostname)
        etc_written = Path("/etc", etc_name).exists()
        Path("/etc", etc_name).unlink(missing_ok=True)
    assert result.report["app_exit_code"] == 0, result.console
    facts = json.loads((result.run_dir / "storage" / "hostile.json").read_text())
    assert facts["cap_eff"] == facts["cap_prm"] == "0000000000000000"
    assert facts["no_new_privs"] == "1"
    assert facts["remount"] != 0 and facts["etc"] == 30 and not etc_written  # EROFS
    assert facts["secret"] == 2  # ENOENT: the host's home is an empty tmpfs
    # a private /tmp: empty but for the mount points of the interpreter's own folders when
    # they live under the host's /tmp (a checkout there: bound read-only at their paths)
    kept = {Path(p).relative_to("/tmp").parts[0] for p in sandbox.interpreter_paths(sys.executable)
            if Path(p).is_relative_to("/tmp") and p != "/tmp"}  # fmt: skip
    assert not facts["host_tmp_file"] and facts["tmp_before"] == sorted(kept)
    assert facts["cwd"] == "/"
    erofs = {p: 30 for p in ("/panorama/x", "/x", "/root/x", "/usr/x")}
    written = {p: "written" for p in
               ("/tmp/x", "/opt/aws/panorama/logs/x", "/opt/aws/panorama/storage/x")}  # fmt: skip
    assert facts["write"] == {**erofs, **written}
    assert not Path("/tmp/x").exists() or Path("/tmp/x").read_text() != "app was here"
    assert facts["shm"] == "written"  # its own /dev/shm (a private, capped tmpfs)
    assert facts["run"] == ["panorama-cli"]  # not the host's /run (its Docker socket)
    assert facts["sysctl"] == 30 and hostname_after == hostname  # /proc/sys is read-only
    assert facts["pids"][0] == 1 and len(facts["pids"]) <= 4, facts["pids"]
    assert not facts["sees_victim"] and facts["kill"] == "ProcessLookupError"
    assert victim_alive  # the host process survived
    assert daemons == []  # the setsid daemon died with the sandbox
    assert (result.run_dir / "storage" / "x").read_text() == "app was here"


def shutil_rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


READ_ONLY_WRITER = """
open("/panorama/results.txt", "w").write("x")
"""

RELATIVE_READER = """
open("model/labels.txt").read()
"""


@pytest.mark.parametrize(
    "app, why",
    [
        (READ_ONLY_WRITER, "the app wrote to /panorama/results.txt, which is read-only as on "
         "the appliance: write to /opt/aws/panorama/storage"),
        (RELATIVE_READER, "the app opened the relative path 'model/labels.txt', but its working "
         "directory is / as on the appliance: open /panorama/model/labels.txt"),
    ],
    ids=["EROFS", "relative-path"],
)  # fmt: skip
def test_filesystem_failure_says_why_on_the_last_line(tmp_path, app, why):
    from tests.support.cli_runner import run_cli_subprocess

    root = make_project(
        tmp_path, app, files={"model/labels.txt": "person\n"}, cameras=(), hdmi=False, params={}
    )
    result = run_cli_subprocess(["run", "--output-dir", str(tmp_path / "out")], cwd=root)
    assert result.exit_code == 1, result.describe()
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("why: " + why), result.stderr


def test_writable_app_keeps_the_old_writable_panorama(tmp_path):
    from tests.support.cli_runner import run_cli_subprocess

    app = (
        READ_ONLY_WRITER
        + 'open("/opt/aws/panorama/storage/cwd", "w").write(__import__("os").getcwd())\n'
    )
    root = make_project(tmp_path, app, cameras=(), hdmi=False, params={})
    out = tmp_path / "out"
    result = run_cli_subprocess(["run", "--writable-app", "--output-dir", str(out)], cwd=root)
    assert result.exit_code == 1 and "why:" not in result.stderr, result.describe()
    assert (out / "storage" / "cwd").read_text() == "/panorama"
    assert not (root / "packages" / f"{ACCOUNT}-{PACKAGE}-1.0" / "src" / "results.txt").exists()
    help_text = run_cli_subprocess(["run", "--help"], cwd=root).stdout
    assert "--writable-app" in help_text and "not what the appliance does" in help_text


def test_dockerfile_runtime_instructions_are_named_at_start(tmp_path):
    from tests.support.cli_runner import run_cli_subprocess

    app = (
        'import os; open("/opt/aws/panorama/storage/env", "w").write(os.environ.get("MODE", "-"))\n'
    )
    root = make_project(tmp_path, app, cameras=(), hdmi=False, params={})
    (root / "packages" / f"{ACCOUNT}-{PACKAGE}-1.0" / "Dockerfile").write_text(
        "FROM public.ecr.aws/panorama/panorama-application AS build\n"
        "WORKDIR /build\n"
        "FROM public.ecr.aws/panorama/panorama-application\n"
        "ENV MODE=fast \\\n"
        "    OTHER=1\n"
        "# a comment\n"
        "WORKDIR /panorama\n"
        "COPY src /panorama\n"
        "USER 1000\n"
        'CMD ["python3", "/panorama/app.py"]\n'
    )
    out = tmp_path / "out"
    result = run_cli_subprocess(["run", "--output-dir", str(out)], cwd=root)
    assert (
        "node code_node: the appliance ignores the Dockerfile's ENV (line 4), WORKDIR (line 7), "
        "USER (line 9), CMD (line 10)"
    ) in " ".join(result.stderr.split()), result.describe()
    assert (out / "storage" / "env").read_text() == "-"


def test_aws_profile_shows_only_the_runners_aws_files_read_only(tmp_path):
    from tests.support.cli_runner import run_cli_subprocess

    app = """
    import json, os
    path = os.environ["AWS_SHARED_CREDENTIALS_FILE"]
    try:
        open(path, "a").write("x")
        write = "written"
    except OSError as e:
        write = e.errno
    json.dump({"path": path, "text": open(path).read(), "write": write,
               "profile": os.environ.get("AWS_PROFILE"), "key": os.environ.get("AWS_ACCESS_KEY_ID")},
              open("/opt/aws/panorama/storage/aws.json", "w"))
    """
    root = make_project(tmp_path, app, cameras=(), hdmi=False, params={})
    credentials = tmp_path / "credentials"
    credentials.write_text("[dev]\naws_access_key_id = AKIAEXAMPLE\n")
    credentials.chmod(0o600)  # as ~/.aws/credentials is: the app still reads its copy
    out = tmp_path / "out"
    result = run_cli_subprocess(
        ["run", "--aws-profile", "dev", "--output-dir", str(out)],
        cwd=root,
        env={"AWS_SHARED_CREDENTIALS_FILE": str(credentials), "AWS_ACCESS_KEY_ID": "AKIAENV"},
    )
    assert result.exit_code == 1, result.describe()  # the app ended by itself
    seen = json.loads((out / "storage" / "aws.json").read_text())
    assert seen["path"] == "/opt/panorama-cli/aws/credentials"
    # read-only: a read-only mount (EROFS) of a file its user does not own (EACCES)
    assert seen["text"] == credentials.read_text() and seen["write"] in (13, 30)
    assert seen["profile"] == "dev" and seen["key"] is None  # the profile, not the env keys


LINGERER = """
import os, subprocess, time
import panoramasdk

subprocess.Popen(["setsid", "sleep", "300"], env={"MARK": open("/panorama/mark").read()})
panoramasdk.node()
open("/opt/aws/panorama/storage/running", "w").close()
while True:
    time.sleep(1)
"""


def test_a_sigkilled_runner_takes_the_sandbox_with_it(tmp_path, sandbox_mode):
    import os
    import subprocess
    import uuid

    from tests.localrun.helpers import processes_with
    from tests.support.paths import REPO

    marker = f"panorama-lingerer-{uuid.uuid4().hex}"
    root = make_project(
        tmp_path, LINGERER, files={"mark": marker}, cameras=(), hdmi=False, params={}
    )
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO), NO_COLOR="1")
    runner = subprocess.Popen(
        [sys.executable, "-m", "panorama_cli", "run", "--output-dir", str(out)],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (out / "storage" / "running").exists():
            assert runner.poll() is None and time.monotonic() < deadline, "the app never ran"
            time.sleep(0.1)
        assert processes_with(marker) and processes_with(str(out / ".bin"))
        runner.kill()  # SIGKILL: no clean-up in the runner at all
        runner.wait(10)
        deadline = time.monotonic() + 10
        while (processes_with(marker) or processes_with(str(out / ".bin"))) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert processes_with(marker) == [] and processes_with(str(out / ".bin")) == []
    finally:
        runner.kill()
        for pid in processes_with(marker) + processes_with(str(out / ".bin")):
            os.kill(pid, 9)
