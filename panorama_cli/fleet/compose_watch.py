"""What the Docker engine says about a Compose project's containers while ``deploy --wait``
waits: a container that exited, or that the engine restarts over and over.

Read through the Docker SDK (``DOCKER_HOST`` honoured): the project's containers (label
``com.docker.compose.project``, which ``docker compose`` and docker-compose 1.29 both set),
each one's ``State`` (``Status``, ``ExitCode``, ``Restarting``) and ``RestartCount``, its last
``die`` event's ``exitCode`` (a container the engine has just started again shows exit code 0
in its state: the engine's events keep the code of the run that ended), and the last lines of
its log.

When a restart counts: a node container cannot reach serve before serve has made its control
socket, so it may exit and be restarted a few times while serve starts. Node restarts count from
serve's ``nodes started`` log event on (serve's JSON log line ``{"event": "started", ...}``,
printed once the socket is bound); serve's own restarts count from the start. A container is in
trouble when it

* exited and is not being restarted (``restart: unless-stopped`` restarts every exit, so an
  exited container was stopped or the engine gave up), or
* has been restarted :data:`RESTARTS` times in all and at least :data:`RESTARTS_AFTER_START`
  times since serve's socket was up (serve: :data:`RESTARTS` times).

Log lines are the app's own output: hostile text. They are shown cut to
:data:`LINE_CHARS` characters, without control characters (no terminal escape reaches the
user's screen), at most :data:`LOG_LINES` of them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

#: A container restarted this many times (in all) restarts repeatedly.
RESTARTS = 3
#: ... of which at least this many after serve's control socket was up (node containers).
RESTARTS_AFTER_START = 2
#: Log lines shown of a container in trouble, and the characters kept of each.
LOG_LINES = 5
LINE_CHARS = 300
#: Bytes of a container's log read at most (the tail) to find its last lines.
LOG_TAIL = 50
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
ROLE_LABEL = "org.panorama-cli.role"


@dataclass(frozen=True)
class Trouble:
    """A container the engine cannot keep running.

    Attributes:
        container: the container's name (``fleet-app_code-node_1``).
        service: its Compose service (``code-node``).
        role: ``serve`` or ``node`` (the bundle's label), "" when unknown.
        exit_code: its last exit code.
        restarts: how many times the engine restarted it.
        exited: it exited and is not being restarted.
        last_lines: its log's last lines (cleaned: see the module docstring).
    """

    container: str
    service: str
    role: str
    exit_code: int
    restarts: int
    exited: bool
    last_lines: tuple[str, ...] = ()

    def describe(self) -> str:
        """One paragraph: ``container X (service S) exited with code 1 / keeps restarting
        (3 restarts, last exit code 1); its last log lines:`` and the lines, indented."""
        what = (
            f"exited with code {self.exit_code}"
            if self.exited
            else f"keeps restarting ({self.restarts} restarts, last exit code {self.exit_code})"
        )
        text = f"container {self.container} (service {self.service}) {what}"
        if not self.last_lines:
            return text + "; its log is empty"
        return text + "; its last log lines:\n" + "\n".join(f"  {x}" for x in self.last_lines)


def clean_line(text: str) -> str:
    """``text`` without control characters (tabs become spaces), cut to :data:`LINE_CHARS`."""
    kept = "".join(c if c.isprintable() else " " if c == "\t" else "" for c in text)
    return kept[:LINE_CHARS] + ("..." if len(kept) > LINE_CHARS else "")


def last_lines(container: Any, count: int = LOG_LINES) -> tuple[str, ...]:
    """The last ``count`` non-empty lines of ``container``'s log (stdout and stderr), cleaned."""
    try:
        raw = container.logs(stdout=True, stderr=True, tail=LOG_TAIL)
    except Exception as exc:  # noqa: BLE001 - the SDK's and the engine's errors alike
        log.debug("logs of %s: %s", getattr(container, "name", "?"), exc)
        return ()
    lines = [clean_line(x) for x in raw.decode("utf-8", "replace").splitlines()]
    return tuple(x for x in lines if x.strip())[-count:]


def last_exit_code(client: Any, container: Any) -> int | None:
    """The exit code of ``container``'s last ``die`` event (within its lifetime), or None."""
    import time

    created = _started_at({"State": {"StartedAt": container.attrs.get("Created")}})
    try:
        events = client.events(
            since=created or int(time.time()) - 3600, until=int(time.time()) + 1, decode=True,
            filters={"container": container.id, "event": "die"},
        )  # fmt: skip
        codes = [e.get("Actor", {}).get("Attributes", {}).get("exitCode") for e in events]
    except Exception as exc:  # noqa: BLE001 - no events: the state's code stands
        log.debug("events of %s: %s", getattr(container, "name", "?"), exc)
        return None
    found = [c for c in codes if isinstance(c, str) and c.lstrip("-").isdigit()]
    return int(found[-1]) if found else None


def _serve_started(container: Any, since: int) -> bool:
    """serve's log (this run of the container: from ``since``, Unix seconds) has its ``nodes
    started`` event: a JSON line of serve's own (a node's output is a string inside one)."""
    try:
        raw = container.logs(stdout=True, stderr=True, since=since)
    except Exception as exc:  # noqa: BLE001
        log.debug("logs of %s: %s", getattr(container, "name", "?"), exc)
        return False
    for line in raw.decode("utf-8", "replace").splitlines():
        if '"started"' not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == "started" and "node" not in record:
            return True
    return False


def _started_at(attrs: dict[str, Any]) -> int:
    """The container's ``State.StartedAt`` as Unix seconds (0 when unknown)."""
    from datetime import datetime

    text = str(attrs.get("State", {}).get("StartedAt") or "")[:19]
    try:
        return int(datetime.fromisoformat(text + "+00:00").timestamp())
    except ValueError:
        return 0


@dataclass
class ProjectWatch:
    """Watches one Compose project's containers (:meth:`check` once per poll).

    Args:
        client: a ``docker.DockerClient``.
        project: the Compose project's name.
    """

    client: Any
    project: str
    #: serve's run (its StartedAt) whose socket is up, and each node's RestartCount then.
    _serve_run: int = 0
    _baseline: dict[str, int] = field(default_factory=dict)

    def containers(self) -> list[Any]:
        """The project's containers, stopped ones too."""
        found: list[Any] = self.client.containers.list(
            all=True, filters={"label": f"{PROJECT_LABEL}={self.project}"}
        )
        return found

    def check(self) -> Trouble | None:
        """The first container in trouble (serve first), or None.

        Raises:
            docker.errors.DockerException: the engine does not answer.
        """
        containers = sorted(self.containers(), key=lambda c: c.labels.get(ROLE_LABEL) != "serve")
        serve = next((c for c in containers if c.labels.get(ROLE_LABEL) == "serve"), None)
        if serve is not None:
            started = _started_at(serve.attrs)
            if started != self._serve_run and _serve_started(serve, started):
                self._serve_run = started
                self._baseline = {c.id: int(c.attrs.get("RestartCount") or 0) for c in containers}
                log.debug("serve's nodes started (run %d): %s", started, self._baseline)
        for container in containers:
            trouble = self._trouble(container)
            if trouble is not None:
                return trouble
        return None

    def _trouble(self, container: Any) -> Trouble | None:
        attrs = container.attrs
        state = attrs.get("State", {})
        restarts = int(attrs.get("RestartCount") or 0)
        role = container.labels.get(ROLE_LABEL, "")
        exited = state.get("Status") in ("exited", "dead") and not state.get("Restarting")
        if not exited:
            if restarts < RESTARTS:
                return None
            if role != "serve":
                if container.id not in self._baseline:  # serve's socket is not up yet
                    return None
                if restarts - self._baseline[container.id] < RESTARTS_AFTER_START:
                    return None
        code = int(state.get("ExitCode") or 0)
        if not exited and not state.get("Restarting"):  # running again: its state says 0
            found = last_exit_code(self.client, container)
            code = found if found is not None else code
        return Trouble(
            container=container.name,
            service=container.labels.get(SERVICE_LABEL, container.name),
            role=role,
            exit_code=code,
            restarts=restarts,
            exited=exited,
            last_lines=last_lines(container),
        )
