"""serve's log handlers on a device that is always full (``/dev/full``: every write fails
with ENOSPC): the lost lines are counted and said at most once a minute, never a traceback,
and closing the handlers never raises."""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
from pathlib import Path

import pytest

from panorama_cli.localrun.serve import logs


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def full_disk_log(tmp_path: Path) -> Path:
    """A serve.log path that is a link to /dev/full (a write fails with ENOSPC)."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    path = tmp_path / "serve.log"
    path.symlink_to("/dev/full")
    return path


def test_a_full_disk_is_counted_and_said_once_a_minute_never_a_traceback(full_disk_log, capsys):
    clock = Clock()
    report = io.StringIO()
    lost = logs.LostLines(report, every_s=60.0, clock=clock)
    terminal = io.StringIO()
    handlers = logs.configure(full_disk_log, "text", stream=terminal, lost=lost)
    try:
        for i in range(500):
            logs.log.info("line %d", i)
            clock.now += 0.1  # 50 s in all
        clock.now += 11  # past the minute
        logs.log.info("one more")
    finally:
        logs.unconfigure(handlers)  # closing a file that cannot be flushed does not raise
    assert lost.total >= 501
    lines = report.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("warning: 1 log line not written (serve.log: [Errno 28]")
    assert "serve keeps running" in lines[0]
    assert lines[1].startswith("warning: 500 log lines not written")
    assert terminal.getvalue().count("line ") == 500  # the terminal still gets every line
    assert "Logging error" not in capsys.readouterr().err


def test_a_plain_rotating_handler_prints_a_traceback_per_line_on_a_full_disk(full_disk_log, capsys):
    """What serve did before: the reason for the handlers above."""
    handler = logging.handlers.RotatingFileHandler(full_disk_log, maxBytes=10**6, backupCount=1)
    logger = logging.getLogger("tests.full-disk")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for i in range(3):
            logger.warning("line %d", i)
    finally:
        logger.removeHandler(handler)
        with pytest.raises(OSError):
            handler.close()
    assert capsys.readouterr().err.count("--- Logging error ---") == 3


def test_lost_lines_report_survives_a_closed_stream():
    stream = io.StringIO()
    stream.close()
    lost = logs.LostLines(stream)
    lost.lost("stderr", BrokenPipeError(32, "Broken pipe"))  # does not raise
    assert lost.total == 1


def test_an_app_line_cannot_forge_a_terminal_or_a_log_line():
    import logging

    from panorama_cli.localrun.serve.logs import JsonFormatter, TextFormatter

    line = (
        "\x1b]0;pwned\x07\x1b[31mRED\x1b[0m\rXXXX 2026-12-08T00:00:00Z serve stopped\x00\x08\u202e"
    )
    record = logging.LogRecord("panorama_cli.serve", logging.INFO, __file__, 1, line, None, None)
    record.node = "code_node"
    for formatter in (TextFormatter(), JsonFormatter()):
        text = formatter.format(record)
        assert not any(ch in text for ch in "\x1b\x07\r\x00\x08\u202e\n"), repr(text)
        assert "\\x1b" in text and "serve stopped" in text
