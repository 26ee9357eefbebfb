"""``panorama-cli run`` as a user runs it: a real process, real signals, its exit status."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.localrun.helpers import make_project, processes_with, video
from tests.localrun.test_run_apps import CRASH, PASS_THROUGH
from tests.support.cli_runner import run_cli_subprocess
from tests.support.paths import REPO
from tests.support.signals import popen_interruptible


def test_json_prints_only_the_report_on_stdout(tmp_path):
    root = make_project(tmp_path, PASS_THROUGH)
    out = tmp_path / "out"
    result = run_cli_subprocess(
        ["run", "--camera", f"front_camera={video()}", "--frames", "3", "--fast", "--json",
         "--param", "threshold=75", "--output-dir", str(out), "--snapshot-every", "2"],
        cwd=root,
    )  # fmt: skip
    assert result.exit_code == 0, result.describe()
    report = result.json()
    assert report == json.loads((out / "report.json").read_text())
    assert report["exit_reason"] == "frames"
    assert report["hdmi"]["front_camera"]["path"] == "hdmi/front_camera.mp4"
    assert (out / "hdmi" / "front_camera.mp4").is_file()
    assert sorted(p.suffix for p in (out / "hdmi").iterdir()).count(".png") == 2
    state = json.loads((out / "storage" / "state.json").read_text())
    assert state["threshold"] == 75.0
    assert (out / "logs" / "console.log").is_file()


def test_crash_exits_non_zero_with_the_apps_traceback(tmp_path):
    root = make_project(tmp_path, CRASH, params={})
    result = run_cli_subprocess(
        ["run", "--camera", f"front_camera={video()}", "--frames", "20", "--fast"], cwd=root
    )
    assert result.exit_code == 1, result.describe()
    assert "ZeroDivisionError: division by zero" in result.stderr
    assert 'File "/panorama/app.py"' in result.stderr
    assert "the app failed (status 1)" in result.stderr
    assert "panorama_cli/localrun" not in result.stderr


def test_bad_bindings_are_one_line_before_anything_runs(tmp_path):
    root = make_project(tmp_path, PASS_THROUGH)
    missing = run_cli_subprocess(["run", "--frames", "1"], cwd=root)
    assert missing.exit_code == 2
    assert "front_camera" in missing.stderr and "--camera front_camera=" in missing.stderr
    assert "Traceback" not in missing.stderr
    typed = run_cli_subprocess(
        ["run", "--camera", f"front_camera={video()}", "--param", "threshold=high"], cwd=root
    )
    assert typed.exit_code == 2 and "'high' is not a float32 value" in typed.stderr
    unknown = run_cli_subprocess(["run", "--camera", "nope=x.avi"], cwd=root)
    assert unknown.exit_code == 2, unknown.describe()
    assert "unknown camera node 'nope'" in unknown.stderr
    assert "camera nodes: front_camera" in unknown.stderr
    assert not (root / ".panorama-run").exists() or not any((root / ".panorama-run").iterdir())


def test_usage_errors_exit_2_and_name_the_valid_nodes(tmp_path):
    """Issue 15 item 7: a binding without NODE=, an unknown node, a node twice: exit 2, one line
    that names the graph's nodes of that kind, nothing run."""
    root = make_project(tmp_path, PASS_THROUGH)
    cases = {
        ("--camera", "../vtest.avi"): [
            "--camera ../vtest.avi: give NODE=SOURCE",
            "camera nodes: front_camera",
            "e.g. --camera front_camera=../vtest.avi",
        ],
        ("--param", "75"): ["--param 75: give NODE=VALUE", "parameter nodes: threshold"],
        ("--param", "=75"): ["--param =75: give NODE=VALUE", "e.g. --param threshold=75"],
        ("--model", "model.onnx"): ["--model model.onnx: give NODE=PATH", "model nodes: none"],
        ("--model", "detector=m.onnx"): ["unknown model node 'detector'", "model nodes: none"],
        ("--param", "nope=1"): ["unknown parameter node 'nope'", "parameter nodes: threshold"],
    }
    for (flag, value), expected in cases.items():
        args = ["run", flag, value]
        if flag != "--camera":
            args += ["--camera", f"front_camera={video()}"]
        result = run_cli_subprocess(args, cwd=root)
        assert result.exit_code == 2, result.describe()
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(errors) == 1, result.describe()
        for text in expected:
            assert text in result.stderr, result.describe()
    twice = run_cli_subprocess(
        ["run", "--camera", f"front_camera={video()}", "--camera", "front_camera=b.avi"], cwd=root
    )
    assert twice.exit_code == 2 and "--camera front_camera=... given twice" in twice.stderr
    image = run_cli_subprocess(
        ["run", "--camera", f"front_camera={video()}", "--image", "x"], cwd=root
    )
    assert image.exit_code == 2 and "--image applies to --in-container runs" in image.stderr
    assert not (root / ".panorama-run").exists() or not any((root / ".panorama-run").iterdir())


STUBBORN = """
import multiprocessing, signal, time
import panoramasdk


def helper():
    while True:
        try:
            time.sleep(0.05)
        except BaseException:
            pass


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL will do
    multiprocessing.Process(target=helper).start()
    node = panoramasdk.node()
    while True:
        try:
            node.outputs.video_out.put(node.inputs.video_in.get())
            open("/opt/aws/panorama/storage/running", "w").close()
        except:
            pass
"""


def test_real_sigint_to_the_cli_leaves_no_process_behind(tmp_path):
    root = make_project(tmp_path, STUBBORN, params={})
    out = tmp_path / "out"
    marker = str(out / ".bin")  # bound into every app process's sandbox
    env = dict(os.environ, PYTHONPATH=str(REPO), NO_COLOR="1")
    proc = popen_interruptible(
        [sys.executable, "-m", "panorama_cli", "run", "--camera", f"front_camera={video()}",
         "--loop", "--output-dir", str(out)],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (out / "storage" / "running").exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        assert len(processes_with(marker)) >= 2, "the app and its child are not running"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    report = json.loads((out / "report.json").read_text())
    assert report["exit_reason"] == "interrupted"
    assert report["cameras"]["front_camera"]["frames"] >= 1
    assert processes_with(marker) == []


def test_missing_entry_file_is_one_line(tmp_path):
    root = make_project(tmp_path, PASS_THROUGH)
    (root / "packages" / "123456789012-APP-1.0" / "src" / "app.py").unlink()
    result = run_cli_subprocess(["run", "--camera", f"front_camera={video()}"], cwd=root)
    assert result.exit_code == 1
    assert "entry /panorama/app.py is not in packages/123456789012-APP-1.0/src/" in result.stderr


def test_routing_rules_note_and_aws_profile_passthrough(tmp_path):
    app = """
    import json, os, panoramasdk
    panoramasdk.node()
    keys = ("AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_EC2_METADATA_DISABLED")
    json.dump({k: os.environ.get(k) for k in keys}, open("/opt/aws/panorama/storage/env.json", "w"))
    """
    root = make_project(tmp_path, app, cameras=(), hdmi=False, params={})
    graph_path = root / "graphs" / "app" / "graph.json"
    graph = json.loads(graph_path.read_text())
    graph["nodeGraph"]["networkRoutingRules"] = [
        {"node": "code_node", "containerPort": 8080, "hostPort": 80,
         "decorator": {"title": "web", "description": "dashboard"}}
    ]  # fmt: skip
    graph_path.write_text(json.dumps(graph))
    out = tmp_path / "out"
    result = run_cli_subprocess(
        ["run", "--aws-profile", "dev", "--output-dir", str(out)],
        cwd=root,
        env={"AWS_SHARED_CREDENTIALS_FILE": "", "AWS_PROFILE": ""},
    )
    assert "node code_node binds its containerPort 8080 directly" in result.stderr
    assert result.exit_code == 1  # the app ended by itself
    env = json.loads((out / "storage" / "env.json").read_text())
    assert env["AWS_PROFILE"] == "dev" and env["AWS_SHARED_CREDENTIALS_FILE"] != "/dev/null"
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"


def test_unopenable_camera_fails_before_the_run_folder(tmp_path):
    root = make_project(tmp_path, PASS_THROUGH)
    result = run_cli_subprocess(
        ["run", "--camera", f"front_camera={tmp_path / 'missing.avi'}"], cwd=root
    )
    assert result.exit_code == 1 and "missing.avi" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (root / ".panorama-run").exists()


def test_without_json_the_apps_output_a_timings_table_and_the_next_step(tmp_path):
    app = PASS_THROUGH.replace(
        "    app = Application()", "    print('app says hi')\n    app = Application()"
    )
    root = make_project(tmp_path, app)
    result = run_cli_subprocess(
        ["run", "--camera", f"front_camera={video()}", "--frames", "2", "--fast"], cwd=root
    )
    assert result.exit_code == 0, result.describe()
    assert "app says hi" in result.stderr and "app says hi" not in result.stdout
    assert "timings" in result.stdout and "code_node get()" in result.stdout
    assert "camera front_camera" in result.stdout and "2 frames" in result.stdout
    assert "run ended (frames)" in result.stderr and "report.json" in result.stderr


def test_python3_x_entry_runs_the_chosen_interpreter_with_a_note(tmp_path):
    app = """
    import sys
    open("/opt/aws/panorama/storage/version", "w").write("%d.%d" % sys.version_info[:2])
    """
    root = make_project(
        tmp_path, app, entry=("python3.8", "/panorama/app.py"), cameras=(), hdmi=False, params={}
    )
    out = tmp_path / "out"
    result = run_cli_subprocess(["run", "--output-dir", str(out)], cwd=root)
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert (out / "storage" / "version").read_text() == running, result.describe()
    assert f"its entry asks for python3.8; running Python {running}" in result.stderr


def test_graph_flag_runs_another_graph_file(tmp_path):
    root = make_project(tmp_path, PASS_THROUGH)
    graph = json.loads((root / "graphs" / "app" / "graph.json").read_text())
    for node in graph["nodeGraph"]["nodes"]:
        if node["name"] == "threshold":
            node["value"] = 12.5
    other = tmp_path / "other-graph.json"
    other.write_text(json.dumps(graph))
    out = tmp_path / "out"
    result = run_cli_subprocess(
        ["run", "--graph", str(other), "--camera", f"front_camera={video()}", "--frames", "1",
         "--fast", "--output-dir", str(out)],
        cwd=root / "packages",  # from a sub-folder of the project
    )  # fmt: skip
    assert result.exit_code == 0, result.describe()
    assert json.loads((out / "storage" / "state.json").read_text())["threshold"] == 12.5
