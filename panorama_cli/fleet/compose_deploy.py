"""``deploy --target compose|swarm``: a compose bundle on this box's Docker engine.

* compose: ``docker compose`` (the v2 plugin) when the docker CLI has it, else
  ``docker-compose`` (1.29, Debian's), ``up -d --remove-orphans`` with the project named after
  the application; ``--down`` runs ``down`` (``--volumes`` also removes storage and logs).
* swarm: ``docker stack deploy --prune -c stack.yaml NAME`` (``compose.yaml`` in a bundle
  exported before ``stack.yaml`` existed) on a swarm manager (a rolling
  update when the bundle's images or configuration changed; named volumes, the nodes'
  storage, stay); ``--down`` runs ``docker stack rm``.

Both are argument lists (never a shell string) and honour ``DOCKER_HOST``; they run in the
bundle's folder with its absolute path (a relative ``--bundle`` works from any folder). A
failure shows the engine's own words (its error lines as they are, without the progress
lines). With ``--wait`` the deploy polls serve's ``/readyz`` on the published port until it
answers 200, and (compose) watches the project's containers through the Docker SDK
(:mod:`.compose_watch`): a container that exited or keeps restarting ends the wait at once
with its name, exit code and last log lines. Each step is recorded in an
:class:`~.applied.Applied` for the line a Ctrl-C prints.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from panorama_cli.errors import UserError
from panorama_cli.fleet.applied import Applied
from panorama_cli.fleet.compose import FILE_NAME, STACK_FILE_NAME
from panorama_cli.fleet.compose_watch import clean_line
from panorama_cli.fleet.model import SERVE_TOKEN_BUNDLE_FILE

log = logging.getLogger(__name__)


#: Error lines of the engine shown at most (the last ones), and characters of each.
ERROR_LINES = 8
#: Progress lines of docker compose / docker-compose / docker stack: not the error.
_PROGRESS = re.compile(
    r"^\s*(Creating|Starting|Recreating|Stopping|Removing|Pulling|Network|Volume|Container|"
    r"Updating service|Creating service|Creating network|Creating secret|Since --detach)\b"
    r"|\.\.\. (done|error)\s*$|^\s*\[[+]\] "
)

_FOR_CONTAINER = re.compile(r"^ERROR: for \S+\s+")


def _bundle_file(bundle: Path) -> Path:
    """The bundle's compose.yaml, as an absolute path (the engine runs in its folder)."""
    path = Path(bundle).resolve() / FILE_NAME
    if not path.is_file():
        raise UserError(
            f"no {FILE_NAME} in {bundle}",
            hint=f"make it: panorama-cli export --target compose --output-dir {bundle}",
        )
    return path


def compose_command() -> list[str]:
    """``["docker", "compose"]`` or ``["docker-compose"]``, whichever this machine has.

    Raises:
        UserError: neither is installed.
    """
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    raise UserError(
        "neither `docker compose` nor `docker-compose` is installed",
        hint="install Docker Compose (e.g. apt-get install docker-compose)",
    )


def _docker() -> str:
    found = shutil.which("docker")
    if not found:
        raise UserError("the docker CLI is not installed", hint="install docker.io")
    return found


def engine_error(output: str) -> str:
    """The engine's own error in ``output`` (a failed command's stderr): its lines as they are,
    without the progress lines (``Creating x ... error``) and repeats (docker-compose's
    ``ERROR: for <container>`` and ``ERROR: for <service>`` of one error), the last
    :data:`ERROR_LINES` of them, one per line; "" when there is none."""
    kept: list[str] = []
    seen: set[str] = set()
    for line in output.splitlines():
        text = clean_line(line).strip()
        same = _FOR_CONTAINER.sub("", text)  # docker-compose says it per container and service
        if text and not _PROGRESS.search(text) and same not in seen:
            seen.add(same)
            kept.append(text)
    return "\n".join(kept[-ERROR_LINES:])


def _run(argv: list[str], cwd: Path, what: str) -> str:
    log.debug("%s: %s (in %s)", what, argv, cwd)
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        said = engine_error(result.stderr or "") or engine_error(result.stdout or "")
        shown = said if "\n" not in said else "\n" + said
        raise UserError(
            f"{what} failed (exit {result.returncode}): {shown or 'no message'}",
            hint="check that the Docker engine answers (DOCKER_HOST) and the bundle's images "
            "are there or pullable",
        )
    return result.stdout


def published_address(bundle: Path) -> tuple[str, int]:
    """(host, port) serve's HTTP is published on, read from the bundle's compose file: the
    short form ``[HOST:]PORT:8765`` (``127.0.0.1`` when on every address) or the long one.

    Raises:
        UserError: no compose file, or serve publishes no HTTP port.
    """
    import yaml  # type: ignore[import-untyped]

    from panorama_cli.fleet.model import HTTP_PORT

    document = yaml.safe_load(_bundle_file(bundle).read_text())
    for port in document["services"]["serve"].get("ports", []):
        if isinstance(port, dict) and int(port.get("target", 0)) == HTTP_PORT:
            return "127.0.0.1", int(port["published"])
        if isinstance(port, str):
            host, _, rest = port.rpartition(":")  # [HOST:]PUBLISHED:TARGET
            target = rest.split("/", 1)[0]
            host, _, published = host.rpartition(":")
            if target.isdigit() and int(target) == HTTP_PORT and published.isdigit():
                return host.strip("[]") or "127.0.0.1", int(published)
    raise UserError(f"{bundle}/{FILE_NAME}: serve publishes no HTTP port")


def published_port(bundle: Path) -> int:
    """The host port serve's HTTP is published on (:func:`published_address`)."""
    return published_address(bundle)[1]


def wait_ready(
    port: int,
    timeout_s: float,
    notify: Callable[[str], None],
    host: str = "127.0.0.1",
    *,
    watch: Callable[[], None] | None = None,
    logs_hint: Callable[[str], str] | None = None,
) -> float:
    """Poll ``http://HOST:PORT/readyz`` until 200 (it needs no token); returns the seconds it
    took.

    Args:
        watch: called before each poll (once a second); raises :class:`UserError` to end the
            wait (a container that crashed: :func:`_watch_project`).
        logs_hint: serve's last reason -> the hint naming the log to read (default: serve's).

    Raises:
        UserError: not ready within ``timeout_s`` (with serve's last reason), or ``watch``'s.
    """
    from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

    t0 = time.monotonic()
    last = {"why": "no answer"}
    shown = f"[{host}]" if ":" in host else host

    def probe() -> bool:
        if watch is not None:
            watch()
        try:
            with urllib.request.urlopen(f"http://{shown}:{port}/readyz", timeout=3) as reply:
                return bool(reply.status == 200)
        except urllib.error.HTTPError as exc:
            why = exc.read(4096).decode(errors="replace").strip()
            last["why"] = clean_line(why.splitlines()[0] if why else "") or str(exc)
        except OSError as exc:
            last["why"] = str(exc)
        return False

    retrying = Retrying(
        stop=stop_after_delay(timeout_s),
        wait=wait_fixed(1.0),
        retry=retry_if_result(lambda ok: not ok),
    )
    try:
        retrying(probe)
    except RetryError:
        raise UserError(
            f"serve on port {port} is not ready after {timeout_s:g} s: {last['why']}",
            hint=logs_hint(last["why"])
            if logs_hint is not None
            else "see its log: docker compose logs serve (or docker service logs)",
        ) from None
    notify(f"ready on http://{shown}:{port}/ after {time.monotonic() - t0:.1f} s")
    return time.monotonic() - t0


def _logs_command(compose: list[str], path: Path, project: str, service: str) -> str:
    """The command line that shows ``service``'s log of the project (for a hint)."""
    words = [Path(compose[0]).name, *compose[1:], "-f", str(path), "-p", project, "logs", service]
    return " ".join(words)


def _service_of(why: str) -> str:
    """The Compose service serve's /readyz reason names (``node code_node is starting`` ->
    ``code-node``), else ``serve``."""
    from panorama_cli.fleet.model import dns_label

    words = why.split()
    return dns_label(words[1]) if len(words) > 1 and words[0] == "node" else "serve"


def _watch_project(project: str, logs: Callable[[str], str]) -> Callable[[], None]:
    """A ``watch`` for :func:`wait_ready`: raises :class:`UserError` naming the project's
    container that exited or keeps restarting (:mod:`.compose_watch`).

    Raises:
        UserError: the Docker engine cannot be reached (``DOCKER_HOST``).
    """
    from panorama_cli.build.docker_client import connect
    from panorama_cli.fleet.compose_watch import ProjectWatch

    watcher = ProjectWatch(connect(timeout_s=30.0), project)

    def watch() -> None:
        try:
            trouble = watcher.check()
        except Exception as exc:  # noqa: BLE001 - an engine hiccup: /readyz goes on
            log.debug("watching %s: %s", project, exc)
            return
        if trouble is not None:
            raise UserError(
                f"{project} does not start: {trouble.describe()}",
                hint=f"the whole log: {logs(trouble.service)}; fix it, then export and deploy "
                "again (the containers are left as they are: deploy --down takes them down)",
            )

    return watch


def deploy_compose(
    bundle: Path,
    project_name: str,
    *,
    down: bool = False,
    volumes: bool = False,
    wait: bool = False,
    timeout_s: float = 300.0,
    notify: Callable[[str], None] = lambda line: None,
    applied: Applied | None = None,
) -> dict[str, Any]:
    """``up -d`` (or ``down``) of the bundle as Compose project ``project_name``.

    Args:
        wait: wait until serve is ready, watching the containers (see the module docstring).
        applied: where the steps are recorded (for the line a Ctrl-C prints).

    Raises:
        UserError: no compose.yaml, no Compose, the engine's error (its own words), a
            container that exited or keeps restarting, not ready within ``timeout_s``.
    """
    steps = applied if applied is not None else Applied()
    path = _bundle_file(bundle)
    compose = compose_command()
    base = [*compose, "-f", str(path), "-p", project_name]
    again = f"panorama-cli deploy --target compose --bundle {bundle} --down"
    if down:
        argv = [*base, "down", "--remove-orphans", *(["--volumes"] if volumes else [])]
        steps.begin(f"docker compose down of project {project_name}")
        steps.undo = f"finish it: {again}{' --volumes' if volumes else ''}"
        _run(argv, path.parent, "docker compose down")
        steps.finish()
        return {"target": "compose", "project": project_name, "down": True}
    steps.begin(f"docker compose up of project {project_name}")
    steps.undo = again
    _run([*base, "up", "-d", "--remove-orphans"], path.parent, "docker compose up")
    steps.finish(f"project {project_name} (docker compose up -d)")
    steps.goes_on = "its containers go on running"
    notify(f"project {project_name} is up (docker compose up -d)")
    host, port = published_address(bundle)
    report: dict[str, Any] = {"target": "compose", "project": project_name, "port": port}
    if wait:

        def logs(service: str) -> str:
            return _logs_command(compose, path, project_name, service)

        watch = _watch_project(project_name, logs)
        report["ready_s"] = wait_ready(
            port, timeout_s, notify, host, watch=watch,
            logs_hint=lambda why: f"see its log: {logs(_service_of(why))}",
        )  # fmt: skip
        notify(f"log in with the token in {Path(bundle) / SERVE_TOKEN_BUNDLE_FILE}")
    return report


def deploy_swarm(
    bundle: Path,
    stack: str,
    *,
    down: bool = False,
    wait: bool = False,
    timeout_s: float = 300.0,
    notify: Callable[[str], None] = lambda line: None,
    applied: Applied | None = None,
) -> dict[str, Any]:
    """``docker stack deploy`` (or ``stack rm``) of the bundle as stack ``stack``.

    Args:
        applied: where the steps are recorded (for the line a Ctrl-C prints).

    Raises:
        UserError: the engine is not a swarm manager (``docker swarm init``), the deploy
            fails, not ready in time.
    """
    path = _bundle_file(bundle)
    docker = _docker()
    swarm = "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}"
    state = _run([docker, "info", "--format", swarm], path.parent, "docker info").split()
    if not state or state[0] != "active" or state[-1] != "true":
        raise UserError(
            "this Docker engine is not a swarm manager",
            hint="run `docker swarm init` (a single-node swarm) or deploy on a manager",
        )
    steps = applied if applied is not None else Applied()
    again = f"panorama-cli deploy --target swarm --bundle {bundle} --down"
    if down:
        steps.begin(f"docker stack rm {stack}")
        steps.undo = f"finish it: {again}"
        _run([docker, "stack", "rm", stack], path.parent, "docker stack rm")
        steps.finish()
        return {"target": "swarm", "stack": stack, "down": True}
    stack_file = path.with_name(STACK_FILE_NAME)
    if stack_file.is_file():  # the nodes' limits in docker/cli's terms
        path = stack_file
    argv = [docker, "stack", "deploy", "--prune", "-c", str(path), stack]
    steps.begin(f"docker stack deploy of stack {stack}")
    steps.undo = again
    _run(argv, path.parent, "docker stack deploy")
    steps.finish(f"stack {stack} (docker stack deploy)")
    steps.goes_on = "Swarm goes on starting its services"
    report: dict[str, Any] = {"target": "swarm", "stack": stack, "port": published_port(bundle)}
    if wait:
        report["ready_s"] = wait_ready(report["port"], timeout_s, notify)
    return report
