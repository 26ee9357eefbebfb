"""ConsoleLog: console.log capped and full-disk proof; the runner's stop traceback stays off
the terminal, a real crash's does not."""

from __future__ import annotations

import errno

from panorama_cli.localrun.apps.console_log import ConsoleLog

STOP_TRACEBACK = """\
Traceback (most recent call last):
  File "/panorama/app.py", line 9, in <module>
    frame = node.inputs.video_in.get()
            ^^^^^^^^^^^^^^^^^^^^^^^^^^
KeyboardInterrupt
"""
CHILD_STOP = """\
Process Process-1:
Traceback (most recent call last):
  File "/usr/lib/python3.12/multiprocessing/process.py", line 314, in _bootstrap
    self.run()
KeyboardInterrupt
"""
CRASH_WHILE_STOPPING = """\
Traceback (most recent call last):
  File "/panorama/app.py", line 9, in <module>
    frame = node.inputs.video_in.get()
KeyboardInterrupt

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/panorama/app.py", line 11, in <module>
    save()
ZeroDivisionError: division by zero
"""


def shown_by(shown: list[str]):
    return lambda node, line: shown.append(line)


def feed(console: ConsoleLog, text: str) -> None:
    for line in text.splitlines(keepends=True):
        console.feed(line.encode())


def test_the_stop_traceback_goes_to_console_log_only(tmp_path):
    shown: list[str] = []
    stopping = [False]
    console = ConsoleLog(
        tmp_path / "console.log", "code_node", lambda n, line: shown.append(line),
        stopping=lambda: stopping[0],
    )  # fmt: skip
    feed(console, "frame 1\n")
    stopping[0] = True
    feed(console, "saving state\n" + STOP_TRACEBACK + CHILD_STOP)
    console.close()
    assert shown == ["frame 1", "saving state"]
    assert (tmp_path / "console.log").read_text() == (
        "frame 1\nsaving state\n" + STOP_TRACEBACK + CHILD_STOP
    )
    assert console.hidden == len((STOP_TRACEBACK + CHILD_STOP).splitlines())


def test_a_crash_keeps_its_traceback_on_the_terminal(tmp_path):
    for stopping in (False, True):
        shown: list[str] = []
        console = ConsoleLog(
            tmp_path / f"{stopping}.log", "n", shown_by(shown), stopping=lambda s=stopping: s
        )
        feed(console, CRASH_WHILE_STOPPING)
        console.close()
        assert shown == CRASH_WHILE_STOPPING.splitlines()
    shown = []
    console = ConsoleLog(tmp_path / "x.log", "n", lambda n, line: shown.append(line))
    feed(console, STOP_TRACEBACK)  # a KeyboardInterrupt the runner did not cause: shown
    assert shown == STOP_TRACEBACK.splitlines()


def test_a_full_disk_drops_lines_once_noted_and_keeps_reading(tmp_path, monkeypatch):
    shown: list[str] = []
    console = ConsoleLog(tmp_path / "console.log", "n", lambda n, line: shown.append(line))
    console.feed(b"before\n")
    real_open = open

    class Full:
        def __init__(self, *args, **kwargs):
            pass

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            raise OSError(errno.ENOSPC, "No space left on device")

    console._file.close()
    console._file = Full()
    for i in range(1000):
        console.feed(f"line {i}\n".encode())
    console.close()
    assert len(shown) == 1001  # the terminal got every line
    assert console.dropped == 1000
    assert console.notes == [
        "node n: console.log cannot be written (No space left on device); later lines are not "
        "kept (the app keeps running)",
        "node n: 1000 console lines not kept (console.log cannot be written (No space left on "
        "device))",
    ]
    assert real_open(tmp_path / "console.log").read() == "before\n"


def test_console_log_is_capped_with_one_line_saying_so(tmp_path):
    console = ConsoleLog(tmp_path / "console.log", "n", max_bytes=1000)
    for i in range(500):
        console.feed(f"line {i:04d}\n".encode())  # 10 bytes each
    console.close()
    text = (tmp_path / "console.log").read_text()
    assert text.startswith("line 0000\n") and "line 0099\n" in text and "line 0100" not in text
    assert text.endswith(
        "[panorama-cli] console.log reached its 1000 bytes cap; later lines are not kept\n"
    )
    assert console.dropped == 400


def test_a_terminal_that_is_gone_does_not_stop_the_log(tmp_path):
    def broken(node: str, line: str) -> None:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    console = ConsoleLog(tmp_path / "console.log", "n", broken)
    for i in range(10):
        console.feed(f"{i}\n".encode())
    console.close()
    assert (tmp_path / "console.log").read_text().splitlines() == [str(i) for i in range(10)]


def test_a_console_log_link_planted_by_the_app_is_never_written_through(tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    target = host / "passwd"
    target.write_text("root:x:0:0\n")
    logs = tmp_path / "logs"  # the node's /opt/aws/panorama/logs
    logs.mkdir()
    (logs / "console.log").symlink_to(target)
    for rotate in (None, (10, 2)):  # run (capped) and serve (rotated)
        console = ConsoleLog(logs / "console.log", "code_node", rotate=rotate)
        feed(console, "pwned::0:0\n")
        console.close()
        assert target.read_text() == "root:x:0:0\n"
        assert (logs / "console.log").is_file() and not (logs / "console.log").is_symlink()
        assert "pwned::0:0\n" in (logs / "console.log").read_text()
        assert (logs / "console.log.not-followed").is_symlink()
        assert any("was a symbolic link" in note for note in console.notes), console.notes
        (logs / "console.log").unlink()
        (logs / "console.log.not-followed").rename(logs / "console.log")


def test_a_fifo_or_folder_in_place_of_console_log_neither_hangs_nor_is_written(tmp_path):
    import os

    os.mkfifo(tmp_path / "console.log")  # no reader: a plain open for writing would block
    console = ConsoleLog(tmp_path / "console.log", "n")
    feed(console, "line\n")
    console.close()
    assert (tmp_path / "console.log").read_text() == "line\n"
    assert "FIFO" in console.notes[0]
    both = tmp_path / "both"
    (both / "console.log").mkdir(parents=True)
    (both / "console.log.not-followed" / "x").mkdir(parents=True)  # not moved: refused
    console = ConsoleLog(both / "console.log", "n")
    feed(console, "line\n")
    console.close()
    assert console.dropped == 1 and "is a folder" in console.notes[0], console.notes


def test_rotation_moves_only_regular_files(tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    (host / "a").write_text("host a\n")
    (host / "b").write_text("host b\n")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "console.log.1").symlink_to(host / "a")
    (logs / "console.log.2").symlink_to(host / "b")
    console = ConsoleLog(logs / "console.log", "n", rotate=(20, 2))
    for i in range(12):
        feed(console, f"line {i:04d}\n")  # 10 bytes each: rotates every 2 lines
    console.close()
    assert (host / "a").read_text() == "host a\n" and (host / "b").read_text() == "host b\n"
    for name in ("console.log", "console.log.1", "console.log.2"):
        assert (logs / name).is_file() and not (logs / name).is_symlink(), name
    assert (logs / "console.log").read_text() == "line 0010\nline 0011\n"
    assert (logs / "console.log.2").read_text() == "line 0006\nline 0007\n"
    (logs / "console.log.1").unlink()
    (logs / "console.log.1").mkdir()  # a folder in the way: console.log is still capped
    console = ConsoleLog(logs / "console.log", "n", rotate=(20, 2))
    for i in range(6):
        feed(console, f"line {i:04d}\n")
    console.close()
    assert (logs / "console.log").stat().st_size <= 20


PLANT = """
import os
LOGS = "/opt/aws/panorama/logs"
for name in ("console.log", "evil.log"):
    try:
        os.unlink(os.path.join(LOGS, name))
    except FileNotFoundError:
        pass
    os.symlink(HOST, os.path.join(LOGS, name))
print("written through the link?", flush=True)
"""


def test_a_real_app_in_the_sandbox_cannot_write_a_host_file_through_console_log(tmp_path):
    from panorama_cli.localrun import run_project
    from tests.localrun.helpers import make_project, require_sandbox

    require_sandbox()
    host = tmp_path / "host" / "passwd"  # outside the project and the run folder
    host.parent.mkdir()
    host.write_text("root:x:0:0\n")
    app = f"HOST = {str(host)!r}\n" + PLANT
    root = make_project(tmp_path, app, cameras=(), hdmi=False, params={})
    result = run_project(root, grace_s=1.0)
    assert result.report["exit_reason"] == "app-exited", result.console
    assert host.read_text() == "root:x:0:0\n"
    logs = result.run_dir / "logs"
    assert (logs / "console.log.not-followed").is_symlink()  # the app's link, moved aside
    assert not (logs / "console.log").is_symlink()
    assert "written through the link?" in result.console
    assert any("console.log was a symbolic link" in n for n in result.report["notes"]), (
        result.report["notes"]
    )
