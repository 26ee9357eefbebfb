"""Children that take SIGINT as a user's Ctrl-C does, whatever disposition this test inherited.

A shell starts a background job (``bash -c 'pytest ... &'``, ``nohup``, a CI script's ``cmd &``)
with SIGINT ignored, and an ignored signal stays ignored across fork and exec (POSIX
``execve``). A Python started with SIGINT ignored installs no KeyboardInterrupt handler, so a
test that sends SIGINT to a ``python -m panorama_cli`` child would wait for an exit that never
comes. ``subprocess``'s ``restore_signals`` resets only SIGPIPE, SIGXFZ and SIGXFSZ; these
helpers reset SIGINT to SIG_DFL in the child, between fork and exec, so the child's Python
installs its handler as it does under an interactive shell.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence
from typing import Any


def default_sigint() -> None:
    """``preexec_fn``: SIGINT's default disposition in the child (runs after fork, before exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def popen_interruptible(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen:
    """``subprocess.Popen(argv, **kwargs)`` whose child starts with SIGINT at its default.

    Use it for every child a test sends SIGINT to. ``kwargs`` are Popen's (no ``preexec_fn``).
    """
    return subprocess.Popen(list(argv), preexec_fn=default_sigint, **kwargs)
