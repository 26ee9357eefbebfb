"""serve's own log lines: to stderr and ``<state-dir>/logs/serve.log`` (rotated), as text or
JSON (``--log-format json``: one object per line, for journald / Loki / CloudWatch agents).

Every line is a :mod:`logging` record of the ``panorama_cli.serve`` logger; the app's console
lines are records too, with ``node`` set (they are also in the node's console.log). A JSON
line is ``{"ts": ISO-8601 UTC, "level", "logger", "msg", "node"?, "event"?}``.

A line a handler cannot write (a full disk, a closed terminal) is counted in
:data:`LOST` (``panorama_serve_log_lines_lost_total``), never a traceback: at most one line per
:data:`REPORT_EVERY_S` seconds on stderr says how many were lost and why; closing a handler
whose file cannot be flushed never raises either.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from panorama_cli.localrun.serve.state_dir import ROTATE

LOGGER = "panorama_cli.serve"
log = logging.getLogger(LOGGER)

#: Seconds between two lines on stderr about log lines lost.
REPORT_EVERY_S = 60.0


class LostLines:
    """Counts log lines a handler could not write; says so on ``stream`` at most once per
    ``every_s`` seconds (the first loss at once).

    Args:
        stream: where the report goes (None: ``sys.stderr`` at report time).
        every_s: seconds between two reports.
        clock: monotonic seconds.

    Attributes:
        total: lines lost since serve started (thread-safe reads).
    """

    def __init__(
        self,
        stream: IO[str] | None = None,
        every_s: float = REPORT_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = 0
        self._stream = stream
        self._every_s = every_s
        self._clock = clock
        self._lock = threading.Lock()
        self._unreported = 0
        self._last_report: float | None = None
        self._last_why = ""

    def lost(self, where: str, exc: BaseException | None) -> None:
        """One line lost by the handler ``where`` (``serve.log``, ``stderr``) because of
        ``exc``; never raises."""
        why = _why(exc)
        with self._lock:
            self.total += 1
            self._unreported += 1
            self._last_why = f"{where}: {why}"
            now = self._clock()
            if self._last_report is not None and now - self._last_report < self._every_s:
                return
            count, self._unreported, self._last_report = self._unreported, 0, now
            text = (
                f"warning: {count} log line{'s' if count != 1 else ''} not written "
                f"({self._last_why}); serve keeps running "
                f"(next report in {self._every_s:g} s at most)\n"
            )
        try:
            stream = self._stream or sys.stderr
            stream.write(text)
            stream.flush()
        except Exception:  # noqa: BLE001 - stderr is gone too: the count stays
            pass


def _why(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, OSError) and exc.strerror:
        return f"[Errno {exc.errno}] {exc.strerror}"
    return f"{type(exc).__name__}: {exc}"


#: serve's losses (read by /metrics and /api/status).
LOST = LostLines()


class _Guarded:
    """handleError and close of a handler that count a failure instead of printing it."""

    where = "log"
    lost: LostLines = LOST

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        self.lost.lost(self.where, sys.exc_info()[1])

    def close(self) -> None:
        try:
            super().close()  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - a file a full disk cannot flush
            self.lost.lost(self.where, exc)


class SafeStreamHandler(_Guarded, logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler (stderr) whose errors are counted (:class:`LostLines`)."""

    where = "stderr"


class SafeRotatingFileHandler(_Guarded, logging.handlers.RotatingFileHandler):
    """serve.log's handler: rotated, errors counted (:class:`LostLines`)."""

    where = "serve.log"


#: Characters an app could forge a terminal or a log line with: C0 controls but tab, DEL, C1
#: controls and the bidirectional overrides/isolates (Unicode TR9).
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with every character that could move the cursor, recolour a terminal or
    forge a log line (ESC, CR, NUL, backspace, bidi overrides, ...) shown as ``\\xNN`` /
    ``\\uNNNN``: an app's line stays one visible line of its own."""

    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _UNSAFE.sub(escape, text)


def _message(record: logging.LogRecord) -> str:
    """The record's message; an app's console line (``node`` set) made :func:`printable`."""
    message = record.getMessage()
    return printable(message) if getattr(record, "node", None) else message


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _message(record),
        }
        for key in ("node", "event", "camera"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``2026-12-02T10:00:00Z node| message`` (UTC), ``node|`` for app lines."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        node = getattr(record, "node", None)
        head = f"{node}| " if node else ("" if record.levelno < logging.WARNING else "warning: ")
        return f"{stamp} {printable(head)}{_message(record)}"


def configure(
    serve_log: Path, fmt: str, stream: Any = None, lost: LostLines = LOST
) -> list[logging.Handler]:
    """Send the ``panorama_cli.serve`` logger to ``stream`` (stderr) and ``serve_log``.

    Args:
        serve_log: the log file (rotated by :data:`~.state_dir.ROTATE`).
        fmt: ``"text"`` or ``"json"``.
        stream: the terminal stream (default: stderr).
        lost: where write errors are counted and reported (default :data:`LOST`).

    Returns:
        The handlers added (:func:`unconfigure` removes them).
    """
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    console = SafeStreamHandler(stream or sys.stderr)
    size, keep = ROTATE
    file = SafeRotatingFileHandler(
        serve_log, maxBytes=size, backupCount=keep, encoding="utf-8", delay=True
    )
    handlers: list[logging.Handler] = [console, file]
    for handler in handlers:
        handler.lost = lost  # type: ignore[attr-defined]
        handler.setFormatter(formatter)
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    # the runtime's own warnings (a refused hello, a bad message) reach serve.log too; its
    # stderr copy comes from the CLI's handler (console.configure_logging)
    file.addFilter(_serve_or_warning)
    logging.getLogger(RUNTIME_LOGGER).addHandler(file)
    return handlers


#: The runtime's loggers (the control socket, apps, cameras): their warnings go to serve.log.
RUNTIME_LOGGER = "panorama_cli.localrun"


def _serve_or_warning(record: logging.LogRecord) -> bool:
    return record.name.startswith(LOGGER) or record.levelno >= logging.WARNING


def unconfigure(handlers: list[logging.Handler]) -> None:
    """Remove and close ``handlers`` (a close that fails is counted, never raised)."""
    for handler in handlers:
        log.removeHandler(handler)
        logging.getLogger(RUNTIME_LOGGER).removeHandler(handler)
        handler.close()
