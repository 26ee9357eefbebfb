"""``panorama-cli serve --systemd-unit``: a systemd service unit for these very options.

The unit restarts serve if it fails (``Restart=on-failure``), stops it with SIGTERM (serve's
stop ladder, exit 0) and waits :data:`~panorama_cli.localrun.serve.STOP_TIMEOUT_S` seconds for
it; SIGHUP (``systemctl reload``) re-reads the graph. ExecStart quoting follows systemd.service(5)
("Command lines"): arguments with spaces or quotes are double-quoted with C-style escapes, and
``%`` (a specifier) is doubled, ``$`` written ``$$``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

_PLAIN = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


def _quote(arg: str) -> str:
    """One ExecStart word (see the module docstring)."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if _PLAIN.match(arg):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def unit_text(
    argv: Sequence[str], working_directory: Path, description: str, stop_timeout_s: int
) -> str:
    """The unit file's text.

    Args:
        argv: the full serve command line, absolute program path first (no --systemd-unit).
        working_directory: the project folder (serve finds the project from there).
        description: the unit's Description.
        stop_timeout_s: TimeoutStopSec (seconds).
    """
    exec_start = " ".join(_quote(a) for a in argv)
    return f"""[Unit]
Description={description}
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
WorkingDirectory={_quote(str(working_directory))}
ExecStart={exec_start}
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=5
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec={stop_timeout_s}

[Install]
WantedBy=multi-user.target
"""
