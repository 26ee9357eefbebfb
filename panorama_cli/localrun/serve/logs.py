"""serve's own log lines: to stderr and ``<state-dir>/logs/serve.log`` (rotated), as text or
JSON (``--log-format json``: one object per line, for journald / Loki / CloudWatch agents).

Every line is a :mod:`logging` record of the ``panorama_cli.serve`` logger; the app's console
lines are records too, with ``node`` set (they are also in the node's console.log). A JSON
line is ``{"ts": ISO-8601 UTC, "level", "logger", "msg", "node"?, "event"?}``.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from panorama_cli.localrun.serve.state_dir import ROTATE

LOGGER = "panorama_cli.serve"
log = logging.getLogger(LOGGER)


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
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
        return f"{stamp} {head}{record.getMessage()}"


def configure(serve_log: Path, fmt: str, stream: Any = None) -> list[logging.Handler]:
    """Send the ``panorama_cli.serve`` logger to ``stream`` (stderr) and ``serve_log``.

    Returns:
        The handlers added (:func:`unconfigure` removes them).
    """
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    console = logging.StreamHandler(stream or sys.stderr)
    size, keep = ROTATE
    file = logging.handlers.RotatingFileHandler(
        serve_log, maxBytes=size, backupCount=keep, encoding="utf-8", delay=True
    )
    handlers: list[logging.Handler] = [console, file]
    for handler in handlers:
        handler.setFormatter(formatter)
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    return handlers


def unconfigure(handlers: list[logging.Handler]) -> None:
    for handler in handlers:
        log.removeHandler(handler)
        handler.close()
