"""The one user-facing error type of panorama-cli.

Library modules raise :class:`UserError` (or a subclass) for anything the user can fix;
``panorama_cli.cli`` turns it into one line on stderr and the exit code. Any other
exception is a bug and is shown with a traceback only under ``--debug``.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class UserError(Exception):
    """An error the user can act on.

    Args:
        message: one line saying what is wrong (name the file and JSON pointer or line when
            there is one).
        hint: optional one line saying what to do about it.
        exit_code: process exit code (default 1; 2 is reserved for usage errors by Click,
            130 for an interrupt).
    """

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(UserError):
    """A command line that cannot work as given (a malformed or unknown option value): exit 2,
    as Click's own usage errors. Raised by library modules, which know nothing of Click."""

    exit_code = 2
