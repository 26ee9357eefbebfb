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
