"""Terminal output: messages and progress on stderr, data (--json) on stdout.

rich honours NO_COLOR and plain (non-terminal) output by itself; nothing here prints colour
codes into pipes or CI logs.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

log = logging.getLogger(__name__)


@cache
def err() -> Console:
    """The stderr console (messages, progress, logs)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


#: The logger whose records (its modules' loggers included) ``--debug`` shows.
LOGGERS = ("panorama_cli",)


def configure_logging(debug: bool) -> None:
    """Route the records of :data:`LOGGERS` to stderr, one plain line each
    (``HH:MM:SS.mmm DEBUG panorama_cli.project.validation: ...``, tracebacks included): every record
    under ``--debug``, else warnings and errors only. Called once per run; the handler of an
    earlier call is replaced."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
        )
    )
    handler.set_name("panorama-cli")
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == "panorama-cli"]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG if debug else logging.WARNING)


def info(message: str) -> None:
    """A normal message on stderr."""
    err().print(message, markup=False)


def success(message: str, next_step: str | None = None) -> None:
    """A success line, plus the next command to run when there is one."""
    err().print(f"[green]✓[/green] {_escape(message)}")
    if next_step:
        err().print(f"  Next: {_escape(next_step)}")


def warning(message: str) -> None:
    """A warning on stderr (the command goes on)."""
    err().print(f"[yellow]warning:[/yellow] {_escape(message)}")


def error(message: str) -> None:
    """The one-line error of a failed command."""
    err().print(f"[red]Error:[/red] {_escape(message)}")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def log_line(line: str) -> None:
    """One line of a streamed log (docker build), dimmed."""
    err().print(f"[dim]{_escape(line.rstrip())}[/dim]")


def emit_json(data: Any) -> None:
    """Data for scripts: JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def emit_table(columns: list[str], rows: list[list[str]], title: str | None = None) -> None:
    """A table of results on stdout (plain text when stdout is not a terminal).

    Cells never wrap: a pipe or a log file gets each row on one line (up to 200 columns).
    """
    from rich.console import Console
    from rich.table import Column, Table

    table = Table(*(Column(c, no_wrap=True) for c in columns), title=title, title_justify="left")
    for row in rows:
        table.add_row(*row)
    width = None if sys.stdout.isatty() else 200
    Console(highlight=False, soft_wrap=False, width=width).print(table)


def emit_text(text: str) -> None:
    """Plain data on stdout."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _byte_progress() -> Progress:
    """A rich Progress on stderr with byte columns (size, speed, time left).

    A task without a total (an image export: its size is known only at the end) shows the
    bytes so far (``291.7 MB``), never a made-up total (rich's DownloadColumn: ``291.7/? MB``).
    """
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        FileSizeColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    class BytesColumn(DownloadColumn):
        def render(self, task):  # type: ignore[no-untyped-def]
            if task.total is None:
                return FileSizeColumn().render(task)
            return super().render(task)

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        BytesColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err(),
        transient=False,
    )


@contextmanager
def transfer(description: str) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """A byte-progress bar on stderr; yields ``(advance(bytes), set_total(bytes))``.

    The bar appears with the first bytes, so a step that fails before transferring anything
    (a failed build, a refused input) leaves no empty bar behind.
    """
    progress = _byte_progress()
    task = progress.add_task(description, total=None)
    state = {"started": False}

    def start() -> None:
        if not state["started"]:
            state["started"] = True
            progress.start()

    def advance(n: int) -> None:
        start()
        progress.advance(task, n)

    def set_total(total: int) -> None:
        progress.update(task, total=total)

    try:
        yield advance, set_total
    finally:
        if state["started"]:
            progress.stop()


@contextmanager
def transfers(total_description: str) -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """Byte-progress bars on stderr: one per file plus a total.

    Yields ``add(description, size_bytes) -> advance(bytes)``; each ``add`` creates a bar and
    grows the total bar's size. ``advance`` may be called from worker threads (rich's
    Progress is thread-safe). Nothing is drawn until the first ``add``.
    """
    progress = _byte_progress()
    state: dict[str, Any] = {"total": None, "size": 0}

    def add(description: str, size: int) -> Callable[[int], None]:
        if state["total"] is None:
            state["total"] = progress.add_task(total_description, total=0)
            progress.start()
        total = state["total"]
        state["size"] += size
        progress.update(total, total=state["size"])
        task = progress.add_task(description, total=size)

        def advance(n: int) -> None:
            progress.advance(task, n)
            progress.advance(total, n)

        return advance

    try:
        yield add
    finally:
        if state["total"] is not None:
            progress.stop()
