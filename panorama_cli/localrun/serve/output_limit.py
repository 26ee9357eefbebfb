"""How many of a node's console lines reach serve's own log (stderr and serve.log).

Every line an app prints goes to its console.log (capped and rotated there); only a bounded
share is also shown in serve's log, so an app that floods its stdout cannot flood the
journal, the terminal or the state folder's serve.log. :class:`LineLimiter` is a token
bucket per node, of lines and of bytes per second; the lines it holds back are counted, and
one line per :data:`REPORT_EVERY_S` seconds says how many (``node X: N lines not shown in
the last 5 s (see its console.log)``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

#: Lines per second of one node shown in serve's log (sustained), and the burst allowed.
LINES_PER_S, LINE_BURST = 20.0, 200.0
#: Bytes per second of one node shown in serve's log (sustained), and the burst allowed.
BYTES_PER_S, BYTE_BURST = 16 * 1024.0, 64 * 1024.0
#: Seconds between two "lines not shown" reports of one node.
REPORT_EVERY_S = 5.0


class LineLimiter:
    """One node's token bucket for the console lines shown in serve's log (thread-safe).

    Args:
        node: the node's name (in the report line).
        report: called with the report line (``node X: N lines not shown ...``).
        lines_per_s, line_burst: sustained lines per second and the bucket's size (lines).
        bytes_per_s, byte_burst: the same in bytes (UTF-8 length of the line).
        every_s: seconds between two reports.
        clock: monotonic seconds.

    Attributes:
        hidden: lines not shown since the start (all reports together).
    """

    def __init__(
        self,
        node: str,
        report: Callable[[str], None],
        *,
        lines_per_s: float = LINES_PER_S,
        line_burst: float = LINE_BURST,
        bytes_per_s: float = BYTES_PER_S,
        byte_burst: float = BYTE_BURST,
        every_s: float = REPORT_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node = node
        self.hidden = 0
        self._report = report
        self._rates = (lines_per_s, bytes_per_s)
        self._bursts = (line_burst, byte_burst)
        self._lines, self._bytes = line_burst, byte_burst
        self._every_s = every_s
        self._clock = clock
        self._lock = threading.Lock()
        self._t = clock()
        self._pending = 0  # lines hidden since the last report
        self._since: float | None = None  # when the first of them was hidden

    def allow(self, line: str) -> bool:
        """Whether ``line`` may be shown now (it takes its tokens); a hidden line is counted
        and may trigger the report."""
        size = len(line.encode("utf-8", "replace")) + 1
        with self._lock:
            now = self._clock()
            elapsed, self._t = max(0.0, now - self._t), now
            self._lines = min(self._bursts[0], self._lines + elapsed * self._rates[0])
            self._bytes = min(self._bursts[1], self._bytes + elapsed * self._rates[1])
            if self._lines >= 1 and self._bytes >= size:
                self._lines -= 1
                self._bytes -= size
                ok = True
            else:
                ok = False
                self.hidden += 1
                self._pending += 1
                if self._since is None:
                    self._since = now
            text = self._due(now)
        if text is not None:
            self._report(text)
        return ok

    def flush(self) -> None:
        """Report the hidden lines when the interval is over (serve's loop calls it, so the
        last of a flood is reported after it stops)."""
        with self._lock:
            text = self._due(self._clock())
        if text is not None:
            self._report(text)

    def _due(self, now: float) -> str | None:
        if not self._pending or self._since is None or now - self._since < self._every_s:
            return None
        count, span = self._pending, now - self._since
        self._pending, self._since = 0, None
        return (
            f"node {self.node}: {count} line{'s' if count != 1 else ''} not shown in the last "
            f"{span:.0f} s (see its console.log)"
        )
