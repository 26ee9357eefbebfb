"""What a fleet deploy has applied so far, for the one line a Ctrl-C (or SIGTERM) prints.

Each engine's deploy records its steps in an :class:`Applied` as it goes (a step under way,
the steps done, how to take them back); ``deploy`` prints :meth:`Applied.note` when it is
interrupted, instead of a guess.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

#: Steps named in the note at most (the rest are counted).
SHOWN = 6


@dataclass
class Applied:
    """Steps of a deploy: done, under way, how to undo them.

    Attributes:
        done: what was applied, in order, e.g. ``["Secret/pc-secrets", "Deployment/pc-edge-1"]``.
        under_way: a step sent to the engine and not known to have finished ("" when none).
        goes_on: what goes on without this command (e.g. ``its containers go on running``).
        undo: how to take back what was applied, e.g. ``panorama-cli deploy --target compose
            --bundle fleet --down``.
    """

    done: list[str] = field(default_factory=list)
    under_way: str = ""
    goes_on: str = ""
    undo: str = ""

    def begin(self, step: str) -> None:
        """``step`` was sent to the engine."""
        self.under_way = step

    def finish(self, step: str | None = None) -> None:
        """The step under way (or ``step``) is done."""
        self.done.append(step or self.under_way)
        self.under_way = ""

    def note(self) -> str:
        """One line: what was applied, what was under way, what goes on and how to undo it;
        ``nothing was applied`` before the first step."""
        if not self.done and not self.under_way:
            return "nothing was applied"
        parts = []
        if self.done:
            shown = ", ".join(self.done[:SHOWN])
            more = len(self.done) - SHOWN
            parts.append(f"applied: {shown}" + (f" and {more} more" if more > 0 else ""))
        if self.under_way:
            parts.append(f"{self.under_way} was under way and may be partly applied")
        if self.goes_on:
            parts.append(self.goes_on)
        if self.undo:
            parts.append(f"to take it back: {self.undo}")
        return "; ".join(parts)
