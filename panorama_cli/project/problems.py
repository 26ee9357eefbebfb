"""A validation finding: which file, where in it (JSON pointer), what is wrong, how to fix it."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from panorama_cli.project.project import Project

log = logging.getLogger(__name__)

ERROR = "error"
WARNING = "warning"
NOTE = "note"  # e.g. a file skipped on purpose; never fails validate


@dataclass(frozen=True)
class Problem:
    """One finding of ``validate``.

    Attributes:
        file: path of the manifest (relative to the project root when reported).
        pointer: RFC 6901 JSON pointer into that file ("" for the whole file).
        message: what is wrong.
        hint: what to do about it ("" when obvious).
        severity: "error" (fails validate, exit 1), "warning" or "note".
    """

    file: str
    pointer: str
    message: str
    hint: str = ""
    severity: str = ERROR

    def line(self) -> str:
        """One-line rendering: ``file#/pointer: error: message (hint)``."""
        where = f"{self.file}#{self.pointer}" if self.pointer else self.file
        text = f"{where}: {self.severity}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text

    def as_dict(self) -> dict[str, str]:
        """JSON-ready form for ``validate --json``."""
        return asdict(self)


def located(
    project: Project, file: Path, ptr: str, message: str, hint: str = "", severity: str = ERROR
) -> Problem:
    """A :class:`Problem` of ``file`` (reported relative to the project root) at ``ptr``."""
    return Problem(project.rel(file), ptr, message, hint, severity)


def relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when inside it, else as given."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
