"""When to restart a business-logic node that exited: the appliance's supervision policy.

The Panorama Appliance restarted an application's container when it stopped; ``serve`` does the
same for each node, with a backoff so a node that crashes at once does not spin:

* after an exit the node waits ``initial_s`` (1 s), doubling at each further exit up to
  ``max_s`` (60 s); a node that stayed up ``reset_after_s`` (60 s) starts again at 1 s;
* ``max_crashes`` (5) exits within ``window_s`` (5 minutes) make it ``failed``: serve keeps the
  rest running and tries the node again every ``failed_retry_s`` (5 minutes); it stays
  ``failed`` until a retry stays up ``reset_after_s``.

:class:`RestartPolicy` is pure arithmetic over monotonic seconds (no clock, no threads), so it
is tested without sleeping; :class:`~.keeper.NodeKeeper` applies it to a process.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class RestartPolicy:
    """Backoff and give-up rules for one node (times in seconds; see the module docstring)."""

    initial_s: float = 1.0
    max_s: float = 60.0
    reset_after_s: float = 60.0
    max_crashes: int = 5
    window_s: float = 300.0
    failed_retry_s: float = 300.0
    _delay: float = field(default=0.0, init=False)
    _exits: deque[float] = field(default_factory=deque, init=False)
    _failed: bool = field(default=False, init=False)

    def after_exit(self, now: float, up_s: float) -> tuple[str, float]:
        """The node exited at ``now`` (monotonic seconds) after ``up_s`` seconds up.

        Returns:
            (state, delay): ``("backoff", seconds)`` to wait before the next start, or
            ``("failed", failed_retry_s)`` when it crashed ``max_crashes`` times within
            ``window_s``.
        """
        if up_s >= self.reset_after_s:
            self._delay = 0.0
            self._exits.clear()
            self._failed = False
        if self._failed:  # the every-5-minutes retry of a failed node failed too
            return "failed", self.failed_retry_s
        self._exits.append(now)
        while self._exits and now - self._exits[0] > self.window_s:
            self._exits.popleft()
        self._delay = self.initial_s if not self._delay else min(self._delay * 2, self.max_s)
        if len(self._exits) >= self.max_crashes:
            self._exits.clear()
            self._delay = 0.0
            self._failed = True
            return "failed", self.failed_retry_s
        return "backoff", self._delay
