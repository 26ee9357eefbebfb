"""serve's state folder, its log lines, console.log rotation and the systemd unit."""

from __future__ import annotations

import io
import json
import logging
import shlex

import pytest

from panorama_cli.errors import UserError
from panorama_cli.localrun.apps.console_log import ConsoleLog
from panorama_cli.localrun.serve import logs
from panorama_cli.localrun.serve.state_dir import open_state_dir
from panorama_cli.localrun.serve.systemd import unit_text


def test_state_dir_is_made_locked_and_cleans_a_killed_serves_run_folder(tmp_path):
    root = tmp_path / "state"
    state = open_state_dir(root)
    (state.run_dir / "ctl.sock").write_text("stale")
    assert state.storage("code_node") == root / "storage" / "code_node"
    assert state.logs("code_node") == root / "logs" / "code_node"
    with pytest.raises(UserError, match="in use by another panorama-cli serve"):
        open_state_dir(root)
    state.release()
    again = open_state_dir(root)
    assert not (again.run_dir / "ctl.sock").exists()
    again.release()


def test_a_state_dir_under_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="state folder"):
        open_state_dir(tmp_path / "file" / "state")


def test_console_log_rotates_at_its_size_and_keeps_the_newest_files(tmp_path):
    path = tmp_path / "console.log"
    console = ConsoleLog(path, "node", rotate=(100, 2))
    for i in range(40):
        console.feed(f"line {i:04d} ........\n".encode())  # 20 bytes
    console.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "console.log", "console.log.1", "console.log.2",
    ]  # fmt: skip
    assert all(p.stat().st_size <= 100 for p in tmp_path.iterdir())
    assert path.read_text().splitlines()[-1].startswith("line 0039")
    assert (tmp_path / "console.log.2").read_text().startswith("line 0025")
    assert not console.notes and not console.dropped
    restarted = ConsoleLog(path, "node", rotate=(100, 2))  # a restarted node appends ...
    assert restarted.written == path.stat().st_size  # ... and its file's size counts


def test_json_log_lines_carry_the_node_and_go_to_serve_log(tmp_path):
    stream = io.StringIO()
    handlers = logs.configure(tmp_path / "serve.log", "json", stream)
    try:
        logs.log.info("hello %s", "there", extra={"node": "code_node"})
        logs.log.warning("camera down")
    finally:
        logs.unconfigure(handlers)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["msg"] == "hello there" and first["node"] == "code_node"
    assert first["level"] == "info" and first["ts"].endswith("+00:00")
    assert second["level"] == "warning" and "node" not in second
    assert [json.loads(x)["msg"] for x in (tmp_path / "serve.log").read_text().splitlines()] == [
        "hello there", "camera down",
    ]  # fmt: skip


def test_text_log_lines_prefix_the_node(tmp_path):
    stream = io.StringIO()
    handlers = logs.configure(tmp_path / "serve.log", "text", stream)
    try:
        logs.log.info("frame 1", extra={"node": "code_node"})
    finally:
        logs.unconfigure(handlers)
    assert stream.getvalue().strip().endswith("Z code_node| frame 1")
    assert not set(handlers) & set(logging.getLogger(logs.LOGGER).handlers)


def test_systemd_unit_quotes_as_systemd_does_and_sets_the_stop_policy(tmp_path):
    argv = ["/usr/bin/panorama-cli", "serve", "--camera", "cam=/videos/my clip.mp4", "--param",
            "p=50%", "--camera", 'c2=rtsp://u:p"w@h/s']  # fmt: skip
    text = unit_text(argv, tmp_path / "my app", "panorama-cli serve app", 30)
    lines = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert lines["Restart"] == "on-failure" and lines["KillSignal"] == "SIGTERM"
    assert lines["TimeoutStopSec"] == "30" and lines["WantedBy"] == "multi-user.target"
    assert lines["WorkingDirectory"] == f'"{tmp_path / "my app"}"'
    exec_start = lines["ExecStart"]
    assert "p=50%%" in exec_start  # % is a specifier in unit files
    words = shlex.split(exec_start.replace("%%", "%"))  # systemd's quoting is shell-like here
    assert words[3] == "cam=/videos/my clip.mp4" and words[-1] == 'c2=rtsp://u:p"w@h/s'


def test_the_apps_own_log_files_are_rotated_by_copy_and_truncate(tmp_path):
    from panorama_cli.localrun.serve.state_dir import rotate_app_logs

    app_log = tmp_path / "app.log"
    writer = open(app_log, "a")  # the app keeps its file open, appending
    try:
        for turn in range(3):
            writer.write(f"turn {turn} " + "x" * 150 + "\n")
            writer.flush()
            assert rotate_app_logs(tmp_path, (100, 2)) == [app_log]
        writer.write("after\n")
        writer.flush()
    finally:
        writer.close()
    (tmp_path / "console.log").write_text("y" * 500)  # serve rotates this one itself
    assert rotate_app_logs(tmp_path, (100, 2)) == []
    assert app_log.read_text() == "after\n"  # truncated in place, the app wrote on at 0
    assert (tmp_path / "app.log.1").read_text().startswith("turn 2")
    assert (tmp_path / "app.log.2").read_text().startswith("turn 1")
    assert not (tmp_path / "app.log.3").exists()
