"""Keep one business-logic node running: restart it when it exits, as the appliance did.

:class:`NodeKeeper` stands where ``run`` has a bare :class:`~..apps.supervisor.AppProcess`
(or a container app): it starts a fresh process from ``make`` at each (re)start and applies
the :class:`~.policy.RestartPolicy`. Its state is one of

* ``starting``: the process was started and has not connected to the control socket yet;
* ``running``: it connected (or has been up :data:`RUNNING_AFTER_S` seconds without the SDK);
* ``stalled``: running, but it has taken no frame for :data:`STALL_S` seconds while its
  cameras had frames for it (serve's loop decides, :meth:`NodeKeeper.mark_stalled`); it is
  ``running`` again at its next frame;
* ``backoff``: it exited; the next start is due at ``next_start`` (monotonic seconds);
* ``failed``: it crashed too often; retried every 5 minutes.

The keeper has no thread: :meth:`tick` is called by serve's loop (every 0.1 s), so a restart
happens at most 0.1 s after its backoff. Model nodes live in the runner and are not touched.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from panorama_cli.errors import UserError
from panorama_cli.localrun.serve.policy import RestartPolicy

log = logging.getLogger(__name__)

#: A node that never connects (no panoramasdk) counts as running after this many seconds up.
RUNNING_AFTER_S = 5.0
#: A running node that takes no frame for this many seconds while its cameras have frames
#: for it is ``stalled`` (a hang after a get, an init that never ends).
STALL_S = 10.0


def _status(code: int) -> int:
    """A Popen return code as a shell shows it (killed by signal N -> 128+N)."""
    return 128 - code if code < 0 else code


def _said(last_exit: int | str | None) -> str:
    """``status 1`` or the limit as it is (``memory limit 4 GiB``)."""
    return last_exit if isinstance(last_exit, str) else f"status {last_exit}"


class NodeKeeper:
    """One supervised node (see the module docstring).

    Args:
        node: the node's name.
        make: returns a new, unstarted app process (``start``, ``poll``, ``stop``, ``kill``,
            ``pid``, ``notes``).
        notify: ``notify(event, data)`` of the run (notes about exits and restarts).
        policy: the restart policy (defaults as the issue specifies).
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        node: str,
        make: Callable[[], Any],
        notify: Callable[[str, dict[str, Any]], None],
        policy: RestartPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node = node
        self.state = "starting"
        self.restarts = 0
        #: The last exit status, as a shell shows it, or the limit that ended it
        #: (``"memory limit 4 GiB"``, :mod:`..apps.limits`); None: it has not exited.
        self.last_exit: int | str | None = None
        self.next_start: float | None = None
        self.stop_requested = False
        self.stopped_by: str | None = None
        self._make = make
        self._notify = notify
        self._policy = policy or RestartPolicy()
        self._clock = clock
        self._app: Any = None
        self._started_at = 0.0
        self._lock = threading.Lock()
        self._past_notes: list[str] = []

    # -- the AppProcess interface the runtime uses ------------------------------------------
    @property
    def pid(self) -> int | None:
        return None if self._app is None or self.state in ("backoff", "failed") else self._app.pid

    @property
    def notes(self) -> list[str]:
        current = list(getattr(self._app, "notes", ())) if self._app is not None else []
        return self._past_notes + [n for n in current if n not in self._past_notes]

    def start(self) -> None:
        """Start the node's first process.

        Raises:
            UserError: it cannot start at all (the sandbox, the interpreter): bad input at
                start is one line and a non-zero exit, as with ``run``.
        """
        self._spawn(first=True)

    def poll(self) -> int | None:
        """None: serve's nodes never end the run by exiting (the keeper restarts them)."""
        return None

    def stop(self, grace_s: float = 2.0) -> int | None:
        """Stop for good (the run ladder: SIGINT, SIGTERM, SIGKILL ``grace_s`` apart)."""
        with self._lock:
            self.stop_requested = True
            app = self._app
        if app is None:
            return None
        code = app.stop(grace_s)
        self.stopped_by = getattr(app, "stopped_by", None)
        return code

    def kill(self) -> None:
        with self._lock:
            self.stop_requested = True
            app = self._app
        if app is not None:
            app.kill()

    # -- supervision -------------------------------------------------------------------------
    def connected(self) -> None:
        """The process said hello on the control socket: it is running."""
        if self.state == "starting":
            self.state = "running"

    @property
    def started_at(self) -> float:
        """When the current process was started (the keeper's clock, monotonic seconds)."""
        return self._started_at

    def mark_stalled(self, stalled: bool) -> None:
        """Serve's stall check: ``running`` <-> ``stalled`` (one line each way); other
        states are left as they are."""
        if stalled and self.state == "running":
            self.state = "stalled"
            text = f"node {self.node} stalled: no frame taken in the last {STALL_S:g} s"
        elif not stalled and self.state == "stalled":
            self.state = "running"
            text = f"node {self.node} is taking frames again"
        else:
            return
        log.info("%s", text)
        self._notify("note", {"text": text})

    def restart(self, why: str) -> None:
        """Stop the current process now and start a fresh one at once (SIGHUP: its inputs
        changed). Counts as a restart, not as a crash."""
        app = self._app
        if app is not None and app.poll() is None:
            app.stop()
        self._keep_notes(app)
        self.restarts += 1
        self._notify("note", {"text": f"node {self.node}: restarting ({why})"})
        self._spawn(first=False)

    def tick(self) -> None:
        """Apply the policy: notice an exit, start again when the backoff is over."""
        if self.stop_requested:
            return
        now = self._clock()
        if self.state in ("backoff", "failed"):
            if self.next_start is not None and now >= self.next_start:
                self.restarts += 1
                self._spawn(first=False)
            return
        app = self._app
        code = None if app is None else app.poll()
        if code is None:
            linked = getattr(app, "is_connected", None)  # a node an engine starts: its link
            up = now - self._started_at >= RUNNING_AFTER_S if linked is None else linked
            if self.state == "starting" and up:
                self.state = "running"
            return
        self._exited(_status(code), now)

    def _exited(self, code: int, now: float) -> None:
        app = self._app
        limit = getattr(app, "limit_hit", None)  # a node a limit ended: that limit
        self.last_exit = limit if isinstance(limit, str) else code
        if app is not None:
            app.kill()  # reap the sandbox and the log pump
        self._keep_notes(app)
        state, delay = self._policy.after_exit(now, now - self._started_at)
        self.state, self.next_start = state, now + delay
        if state == "failed":
            text = (
                f"node {self.node} failed: it crashed {self._policy.max_crashes} times within "
                f"{self._policy.window_s / 60:g} minutes (last: {_said(self.last_exit)}); "
                "serve keeps "
                f"running the rest and tries it again in {delay / 60:g} minutes"
            )
        else:
            text = f"node {self.node} exited ({_said(self.last_exit)}); restarting in {delay:g} s"
        log.info("%s", text)
        self._notify("note", {"text": text})

    def _spawn(self, *, first: bool) -> None:
        self.state = "starting"
        self.next_start = None
        with self._lock:
            if self.stop_requested:
                return
            self._app = self._make()
        self._started_at = self._clock()
        try:
            self._app.start()
        except UserError as exc:
            if first:
                raise
            log.info("node %s: cannot restart: %s", self.node, exc)
            self._exited(1, self._clock())

    def _keep_notes(self, app: Any) -> None:
        for note in getattr(app, "notes", ()) if app is not None else ():
            if note not in self._past_notes:
                self._past_notes.append(note)
        del self._past_notes[:-50]  # bounded however many restarts

    def entry(self) -> dict[str, Any]:
        """This node in /api/status: {pid, state, restarts, last_exit}."""
        return {
            "pid": self.pid,
            "state": self.state,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
        }
