"""Ctrl-C and SIGTERM: one clean-up path for both, and short sections they cannot split.

* :func:`handle_sigterm` makes SIGTERM (a timeout, a CI cancel, ``docker stop``) raise
  :class:`Terminated`, a ``KeyboardInterrupt``: every ``except BaseException`` / ``finally``
  clean-up written for Ctrl-C (temporary files, staging folders, export containers, the
  manifest rollback) then runs for SIGTERM too.
* :func:`deferred_signals` holds SIGINT/SIGTERM back during a commit or a rollback, so that
  the few renames that make a change land (or undo it) are never cut in half; the signal is
  delivered right after the section.
* :func:`note_saved` / :func:`saved` record that a command's changes were committed, so that
  an interrupt arriving afterwards is not reported as "nothing was changed".

Python runs signal handlers in the main thread only; outside it both helpers do nothing.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

log = logging.getLogger(__name__)

_HELD = (signal.SIGINT, signal.SIGTERM)
_saved: list[Path] = []


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; raised where Ctrl-C would raise ``KeyboardInterrupt``."""


#: Set by SIGTERM's handler before it raises: an exception raised in a signal handler can be
#: swallowed (it may land in a weakref callback or a ``__del__``, where Python only prints
#: "Exception ignored"), so long-running loops also check :func:`terminate_requested`.
_terminate = threading.Event()


def terminate_requested() -> bool:
    """Whether SIGTERM arrived under :func:`handle_sigterm` in this process (even if the
    :class:`Terminated` it raised was swallowed)."""
    return _terminate.is_set()


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    _terminate.set()
    raise Terminated()


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def handle_sigterm() -> Iterator[None]:
    """Within the block SIGTERM raises :class:`Terminated`; the old handler comes back after."""
    if not _in_main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old if old is not None else signal.SIG_DFL)


@contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back during the block; deliver them (once each) after it.

    Keep the block short (a few renames): a user pressing Ctrl-C waits for it.
    """
    if not _in_main_thread():
        yield
        return
    old = {signum: signal.getsignal(signum) for signum in _HELD}
    if any(handler is None for handler in old.values()):  # installed outside Python
        yield
        return
    pending: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        if signum not in pending:
            pending.append(signum)

    for signum in _HELD:
        signal.signal(signum, hold)
    try:
        yield
    finally:
        for signum, handler in old.items():
            signal.signal(signum, handler)
        for held in pending:
            signal.raise_signal(held)


def reset() -> None:
    """Forget earlier commits and SIGTERMs (a new command starts)."""
    _saved.clear()
    _terminate.clear()


def note_saved(paths: list[Path]) -> None:
    """Record that changes to ``paths`` were committed by the running command."""
    _saved.extend(paths)


def saved() -> list[Path]:
    """Files the running command has committed so far (empty: nothing changed yet)."""
    return list(_saved)


@contextmanager
def hangup_stops() -> Iterator[None]:
    """Within the block SIGHUP (the terminal closed) stops the run as SIGTERM does: it raises
    :class:`Terminated`, the apps are stopped, report.json written."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(
        signal.SIGHUP
    ) in (signal.SIG_IGN, None):  # nohup: hang-ups stay ignored
        yield
        return

    def terminated(signum: int, frame: FrameType | None) -> None:
        raise Terminated()

    old = signal.signal(signal.SIGHUP, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, old if old is not None else signal.SIG_DFL)


@contextmanager
def hangup_calls(callback: Callable[[], None]) -> Iterator[None]:
    """Within the block SIGHUP calls ``callback`` (serve: reload the graph), as daemons do.

    Unlike :func:`hangup_stops`, an ignored SIGHUP (``nohup``) is taken over too: serve is
    asked to reload by ``systemctl reload`` / ``kill -HUP``, not by a terminal.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def call(signum: int, frame: FrameType | None) -> None:
        callback()

    old = signal.signal(signal.SIGHUP, call)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, old if old is not None else signal.SIG_DFL)
