"""``deploy --target compose|swarm``: a compose bundle on this box's Docker engine.

* compose: ``docker compose`` (the v2 plugin) when the docker CLI has it, else
  ``docker-compose`` (1.29, Debian's), ``up -d --remove-orphans`` with the project named after
  the application; ``--down`` runs ``down`` (``--volumes`` also removes storage and logs).
* swarm: ``docker stack deploy --prune -c compose.yaml NAME`` on a swarm manager (a rolling
  update when the bundle's images or configuration changed; named volumes, the nodes'
  storage, stay); ``--down`` runs ``docker stack rm``.

Both are argument lists (never a shell string) and honour ``DOCKER_HOST``. With ``--wait``
the deploy polls serve's ``/readyz`` on the published port until it answers 200.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from panorama_cli.errors import UserError
from panorama_cli.fleet.compose import FILE_NAME

log = logging.getLogger(__name__)


def _bundle_file(bundle: Path) -> Path:
    path = Path(bundle) / FILE_NAME
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


def _run(argv: list[str], cwd: Path, what: str) -> str:
    log.debug("%s: %s (in %s)", what, argv, cwd)
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        raise UserError(
            f"{what} failed: {lines[-1] if lines else 'exit ' + str(result.returncode)}",
            hint="check that the Docker engine answers (DOCKER_HOST) and the bundle's images "
            "are there or pullable",
        )
    return result.stdout


def published_port(bundle: Path) -> int:
    """The host port serve's HTTP is published on, read from the bundle's compose file."""
    import yaml  # type: ignore[import-untyped]

    document = yaml.safe_load(_bundle_file(bundle).read_text())
    for port in document["services"]["serve"].get("ports", []):
        if isinstance(port, dict) and int(port.get("target", 0)) == 8765:
            return int(port["published"])
    raise UserError(f"{bundle}/{FILE_NAME}: serve publishes no HTTP port")


def wait_ready(port: int, timeout_s: float, notify: Callable[[str], None]) -> float:
    """Poll ``http://127.0.0.1:PORT/readyz`` until 200; returns the seconds it took.

    Raises:
        UserError: not ready within ``timeout_s`` (with serve's last reason).
    """
    from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

    t0 = time.monotonic()
    last = {"why": "no answer"}

    def probe() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as reply:
                return bool(reply.status == 200)
        except urllib.error.HTTPError as exc:
            last["why"] = exc.read().decode(errors="replace").strip()[:200] or str(exc)
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
            hint="see its log: docker compose logs serve (or docker service logs)",
        ) from None
    notify(f"ready on http://127.0.0.1:{port}/ after {time.monotonic() - t0:.1f} s")
    return time.monotonic() - t0


def deploy_compose(
    bundle: Path,
    project_name: str,
    *,
    down: bool = False,
    volumes: bool = False,
    wait: bool = False,
    timeout_s: float = 300.0,
    notify: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """``up -d`` (or ``down``) of the bundle as Compose project ``project_name``."""
    path = _bundle_file(bundle)
    base = [*compose_command(), "-f", str(path), "-p", project_name]
    if down:
        argv = [*base, "down", "--remove-orphans", *(["--volumes"] if volumes else [])]
        _run(argv, path.parent, "docker compose down")
        return {"target": "compose", "project": project_name, "down": True}
    _run([*base, "up", "-d", "--remove-orphans"], path.parent, "docker compose up")
    report: dict[str, Any] = {
        "target": "compose",
        "project": project_name,
        "port": published_port(bundle),
    }
    if wait:
        report["ready_s"] = wait_ready(report["port"], timeout_s, notify)
    return report


def deploy_swarm(
    bundle: Path,
    stack: str,
    *,
    down: bool = False,
    wait: bool = False,
    timeout_s: float = 300.0,
    notify: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """``docker stack deploy`` (or ``stack rm``) of the bundle as stack ``stack``.

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
    if down:
        _run([docker, "stack", "rm", stack], path.parent, "docker stack rm")
        return {"target": "swarm", "stack": stack, "down": True}
    argv = [docker, "stack", "deploy", "--prune", "-c", str(path), stack]
    _run(argv, path.parent, "docker stack deploy")
    report: dict[str, Any] = {"target": "swarm", "stack": stack, "port": published_port(bundle)}
    if wait:
        report["ready_s"] = wait_ready(report["port"], timeout_s, notify)
    return report
