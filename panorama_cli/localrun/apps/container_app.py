"""``run --in-container``: a business-logic node's descriptor entry in its image, as on the
device, through the Docker SDK.

The container gets, as on the appliance (which runs the image's exported filesystem, not a
container of it: :mod:`.appliance`):

* the image's filesystem read-only (``read_only``), a private tmpfs ``/tmp``, working directory
  ``/``, user root with no capabilities (plus DAC_OVERRIDE when the runner is not root, so that
  root in the container can write the runner's logs/storage and reach its socket) and
  ``no-new-privileges``;
* none of the image's runtime configuration: ENTRYPOINT and CMD are replaced by the
  descriptor's entry, WORKDIR by ``/``, USER by root, and its ENV is not seen: the engine merges
  the image's Env into every container's (the create API has no way to leave it out), so the
  entry starts through ``/usr/bin/env -i`` with exactly the appliance's environment
  (:func:`.appliance.app_environment`), nothing of the image's or the runner's;
* ``/panorama`` from the image itself (what build-container put there, not src/);
* ``/opt/aws/panorama/logs`` and ``/opt/aws/panorama/storage`` bind-mounted from the run
  folder's ``logs/`` and ``storage/``;
* the simulated ``panoramasdk`` (``panorama_cli/localrun/apps/sdk``) mounted read-only at
  :data:`SDK_TARGET` and first on ``PYTHONPATH`` (it imports on Python >= 3.7 with numpy);
* the runner's control socket bind-mounted at :data:`SOCKET_TARGET` (a Unix socket, no TCP
  port); frame rings and call arenas are anonymous memory whose descriptors come over that
  socket (:mod:`panorama_cli.localrun.frames.memfd`), so the container keeps its own IPC
  namespace and ``/dev/shm``;
* the node's limits (:mod:`.limits`): ``--memory`` = ``--memory-swap``, ``--pids-limit``,
  ``--ulimit fsize``, and the same storage watch as host mode (an OOM kill: Docker's
  ``OOMKilled``);
* ``AppGraph_Uid``, the node name and the node's own control token (never the run's key:
  :mod:`panorama_cli.localrun.frames.identity`) in its environment (``--writable-app``:
  writable root and working directory /panorama, not what the appliance does), ``docker-init``
  as PID 1 so that SIGINT/SIGTERM reach the entry, the routing rules' ports, and with
  ``--device cuda`` every GPU (Docker device requests, ``--gpus all``) when the node gets the
  GPU (:mod:`panorama_cli.project.accelerators`: its package asks for one, or the graph has no
  model node to run its models).

Every container carries panorama-cli's labels (owner pid and host): the runner removes it at
the end whatever happened (end of input, app crash, Ctrl-C, SIGTERM), and the next run (or
any panorama-cli command that makes containers) removes those of a runner that was killed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from panorama_cli.errors import UserError
from panorama_cli.localrun.apps import appliance
from panorama_cli.localrun.apps.appliance import (
    APP_ROOT,
    AWS_TARGET,
    LOGS,
    SDK_DIR,
    SDK_TARGET,
    SOCKET_TARGET,
    STORAGE,
)
from panorama_cli.localrun.apps.console_log import ConsoleLog

if TYPE_CHECKING:
    from panorama_cli.localrun.apps.supervisor import AppSpec

log = logging.getLogger(__name__)

ROLE = "run-app"
#: Starts the entry with exactly the given environment (coreutils/busybox, in every base image).
ENV_PROGRAM = "/usr/bin/env"
TMPFS = {"/tmp": "rw,exec,nosuid,nodev,mode=1777"}
#: Labels naming the node and the run folder (docker ps --filter label=panorama-cli.run=DIR).
NODE_LABEL = "panorama-cli.node"
RUN_LABEL = "panorama-cli.run"
#: Seconds long-lived streams (logs, wait) may stay silent.
STREAM_TIMEOUT_S = 7 * 24 * 3600.0


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "explanation", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def container_environment(spec: AppSpec) -> dict[str, str]:
    """The entry's whole environment in the container: the appliance's allow-list with the
    container's paths (socket, SDK on PYTHONPATH), no AWS credentials unless
    ``spec.aws_profile`` (then the runner's AWS files, read-only, and that profile). Not the
    image's ENV (see the module docstring)."""
    return appliance.app_environment(
        spec.env, shims=False, aws_profile=spec.aws_profile, endpoint_url=spec.aws_endpoint_url
    )


def entry_argv(spec: AppSpec) -> list[str]:
    """The container's entrypoint: ``env -i NAME=VALUE... <entry.path> <entry.name>``."""
    env = [f"{k}={v}" for k, v in sorted(container_environment(spec).items())]
    return [ENV_PROGRAM, "-i", *env, spec.interpreter, spec.entry]


def container_mounts(spec: AppSpec, socket_path: Path) -> list[Any]:
    """Bind mounts: logs, storage (read-write), the SDK (read-only), the control socket,
    and the runner's AWS credentials/config files read-only when a profile is passed."""
    from docker.types import Mount

    mounts = [
        Mount(LOGS, str(spec.logs), type="bind"),
        Mount(STORAGE, str(spec.storage), type="bind"),
        Mount(SDK_TARGET, str(SDK_DIR), type="bind", read_only=True),
        Mount(SOCKET_TARGET, str(socket_path), type="bind"),
    ]
    if spec.aws_profile is not None:
        for name, path in appliance.aws_files().items():
            mounts.append(Mount(f"{AWS_TARGET}/{name}", str(path), type="bind", read_only=True))
    return mounts


@dataclass
class NodeImage:
    """Where one business-logic node runs in ``--in-container`` mode.

    Attributes:
        node: the node's name.
        image: the image reference as found or given (``panorama-cli/app:code``).
        image_id: the image's id (``sha256:...``); the container is made from it.
        platform: ``linux/amd64`` or ``linux/arm64``, the image's.
        ports: containerPort -> hostPort (TCP) from ``networkRoutingRules``.
        python_path: the image's own ``PYTHONPATH`` ("" when unset).
        note: one line for the user about the choice ("" when none), e.g. a tag standing in
            for the image the asset was exported from.
    """

    node: str
    image: str
    image_id: str
    platform: str
    ports: dict[int, int] = field(default_factory=dict)
    python_path: str = ""
    note: str = ""


class ContainerRuntime:
    """The Docker side of one ``--in-container`` run: the clients and each node's image.

    Args:
        client: a connected ``docker.DockerClient`` (API calls).
        images: node name -> :class:`~.container_images.NodeImage`.
        run_dir: the run folder (label :data:`RUN_LABEL` of every container).
        gpu_nodes: the nodes whose containers get every GPU (``--device cuda``: the plan's
            :attr:`~panorama_cli.localrun.plan.RunPlan.gpu_nodes`).
    """

    def __init__(
        self,
        client: Any,
        images: dict[str, NodeImage],
        *,
        run_dir: Path,
        gpu_nodes: set[str] | frozenset[str] = frozenset(),
    ):
        from panorama_cli.build import docker_client

        self.client = client
        self.run_dir = run_dir
        self.images = images
        self.gpu_nodes = frozenset(gpu_nodes)
        self.streams = docker_client.connect(timeout_s=STREAM_TIMEOUT_S)

    def app(
        self, spec: AppSpec, console_log: Path, on_output: Callable[[str, str], None] | None = None
    ) -> ContainerApp:
        """A :class:`ContainerApp` for ``spec`` (the supervisor's AppProcess signature)."""
        return ContainerApp(self, self.images[spec.node], spec, console_log, on_output)

    def close(self) -> None:
        for client in (self.client, self.streams):
            try:
                client.close()
            except Exception as exc:  # noqa: BLE001 - closing is best effort
                log.debug("closing a Docker client: %s", exc)


class ContainerApp:
    """One business-logic node running in its container (see the module docstring); the
    same methods as :class:`~.supervisor.AppProcess`: start, poll, wait, stop, kill.

    Attributes:
        started_at: ``time.monotonic()`` when the container was started.
        startup_s: seconds from asking for the container to it running (create + start).
    """

    def __init__(
        self,
        runtime: ContainerRuntime,
        target: NodeImage,
        spec: AppSpec,
        console_log: Path,
        on_output: Callable[[str, str], None] | None,
    ):
        self.runtime = runtime
        self.target = target
        self.spec = spec
        self.console_log = console_log
        self._on_output = on_output
        self.container: Any = None
        self.started_at: float | None = None
        self.startup_s: float | None = None
        self.stop_requested = False
        #: The signal of the stop ladder that ended the app ("SIGINT", ...; None: not stopped).
        self.stopped_by: str | None = None
        self._console = ConsoleLog(
            console_log,
            spec.node,
            on_output,
            stopping=lambda: self.stop_requested,
            rotate=spec.console_rotate,
        )
        self._exit: int | None = None
        self._exited = threading.Event()
        self._threads: list[threading.Thread] = []
        self._stop_lock = threading.Lock()
        self._removed = False
        self._watch: Any = None
        self._oom_killed = False
        #: The limit that ended the node (``"memory limit 4 GiB"``), or None.
        self.limit_hit: str | None = None

    @property
    def pid(self) -> int | None:
        return None

    def _command(self) -> list[str]:
        return [self.spec.interpreter, self.spec.entry]

    def start(self) -> None:
        """Create and start the container; its output goes to the console log.

        Raises:
            UserError: the container cannot be created or started (an engine error, a
                hostPort in use, no GPU runtime for ``--device cuda``, the entry's program
                missing in the image): one line.
        """
        import docker

        from panorama_cli.build import docker_engine

        spec, target = self.spec, self.target
        for folder in (spec.logs, spec.storage):
            folder.mkdir(parents=True, exist_ok=True)
        socket_path = Path(spec.env["PANORAMA_LOCALRUN_SOCKET"])
        options: dict[str, Any] = {
            "entrypoint": entry_argv(spec),
            "environment": container_environment(spec),  # docker inspect; env -i is what counts
            "mounts": container_mounts(spec, socket_path),
            "read_only": not spec.writable_app,
            "tmpfs": dict(TMPFS),
            "user": "0:0",
            "cap_drop": ["ALL"],
            "cap_add": [] if os.geteuid() == 0 else ["DAC_OVERRIDE"],
            "security_opt": ["no-new-privileges"],
            "init": True,
            "working_dir": APP_ROOT if spec.writable_app else "/",
            "ports": {f"{c}/tcp": ("127.0.0.1", h) for c, h in target.ports.items()},
            "labels": {
                docker_engine.CONTAINER_LABEL: ROLE,
                docker_engine.OWNER_PID_LABEL: str(os.getpid()),
                docker_engine.HOST_LABEL: socket.gethostname(),
                NODE_LABEL: spec.node,
                RUN_LABEL: str(self.runtime.run_dir),
            },
            "name": f"panorama-cli-run-{_safe(spec.node)}-{uuid.uuid4().hex[:8]}",
        }
        limits = spec.limits
        if limits is not None:  # as host mode's (:mod:`.limits`): the engine's cgroup holds them
            from docker.types import Ulimit

            options["mem_limit"] = limits.memory
            options["memswap_limit"] = limits.memory  # no swap past it
            options["pids_limit"] = limits.pids
            options["ulimits"] = [Ulimit(name="fsize", soft=limits.storage, hard=limits.storage)]
        if spec.aws_endpoint_url is not None:  # http://host.docker.internal:PORT: this machine
            options["extra_hosts"] = {appliance.DOCKER_HOST_NAME: "host-gateway"}
        if spec.node in self.runtime.gpu_nodes:
            from panorama_cli.localrun.models.devices import docker_gpu_request

            options["device_requests"] = docker_gpu_request()
        asked = time.monotonic()
        log.debug("node %s: container of %s: %s", spec.node, target.image, self._command())
        try:
            self.container = self.runtime.client.containers.create(
                target.image_id, None, platform=target.platform, **options
            )
        except docker.errors.APIError as exc:
            raise UserError(
                f"node {spec.node}: cannot create a container of {target.image}: "
                f"{_first_line(exc)}",
                hint=f"check the image (docker image inspect {target.image})",
            ) from None
        try:
            self.container.start()
        except docker.errors.APIError as exc:
            self._remove()
            self.container = None  # never ran: nothing to stop
            raise _start_error(spec.node, target, self._command(), exc) from None
        self.started_at = time.monotonic()
        self.startup_s = self.started_at - asked
        log.debug(
            "node %s: container %s running after %.3f s", spec.node, self.name, self.startup_s
        )
        for work in (self._pump, self._wait_exit):
            thread = threading.Thread(target=work, name=f"app-{spec.node}", daemon=True)
            thread.start()
            self._threads.append(thread)
        if limits is not None:
            from panorama_cli.localrun.apps.limits import LimitWatch

            self._watch = LimitWatch(
                spec.node, limits, (spec.logs, spec.storage), None, lambda: self._signal("SIGKILL")
            )
            self._watch.start()

    @property
    def name(self) -> str:
        return str(getattr(self.container, "name", "") or "")

    def _pump(self) -> None:
        """Copy the container's stdout+stderr, line by line, into its :class:`ConsoleLog`
        (capped, full-disk proof, the runner's stop traceback kept off the terminal)."""
        pending = b""
        try:
            stream = self.runtime.streams.api.logs(
                self.container.id, stdout=True, stderr=True, stream=True, follow=True
            )
            for chunk in stream:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    self._console.feed(raw + b"\n")
        except Exception as exc:  # noqa: BLE001 - the engine went away; the wait says so
            log.debug("node %s: log stream ended: %s", self.spec.node, exc)
        finally:
            if pending:
                self._console.feed(pending + b"\n")
            self._console.close()

    @property
    def notes(self) -> list[str]:
        """What was lost of the app's console output (cap reached, full disk) and the limit
        that stopped it, one line each."""
        return list(self._console.notes) + (list(self._watch.notes) if self._watch else [])

    def _wait_exit(self) -> None:
        try:
            result = self.runtime.streams.api.wait(self.container.id)
            self._exit = int(result.get("StatusCode", 125))
            state = self.runtime.client.api.inspect_container(self.container.id)["State"]
            self._oom_killed = bool(state.get("OOMKilled"))
        except Exception as exc:  # noqa: BLE001 - removed under us, or the engine stopped
            log.debug("node %s: waiting for the container: %s", self.spec.node, exc)
            self._exit = 125 if self._exit is None else self._exit
        watch = self._watch
        if watch is not None:
            watch.close()
            if not self.stop_requested:
                if self._oom_killed:
                    watch.record(watch.limits.text("memory"))
                self.limit_hit = watch.exited(self._exit)
        self._exited.set()

    def poll(self) -> int | None:
        """The entry's exit status (128+N: ended by signal N), or None while it runs."""
        return self._exit if self._exited.is_set() else None

    def wait(self, timeout: float | None = None) -> int | None:
        if self.container is None:
            return None
        self._exited.wait(timeout)
        return self.poll()

    def _signal(self, sig: str) -> None:
        try:
            self.container.kill(signal=sig)
        except Exception as exc:  # noqa: BLE001 - it exited in between: nothing to signal
            log.debug("node %s: %s: %s", self.spec.node, sig, exc)

    def stop(self, grace_s: float = 2.0) -> int | None:
        """SIGINT, SIGTERM (``grace_s`` apart), SIGKILL, then remove the container.

        Returns:
            The entry's exit status.
        """
        self.stop_requested = True
        if self.container is None:
            return None
        with self._stop_lock:  # one ladder at a time: a second stop waits for the first
            for sig in ("SIGINT", "SIGTERM"):
                if self._exited.is_set():
                    break
                log.debug("node %s: %s to container %s", self.spec.node, sig, self.name)
                self._signal(sig)
                if self._exited.wait(grace_s):
                    self.stopped_by = sig
                    break
            else:
                if not self._exited.is_set():
                    self.stopped_by = "SIGKILL"
            self.kill()
        return self.poll()

    def kill(self) -> None:
        """SIGKILL the container (everything in it) and remove it."""
        if self.container is None:
            return
        if not self._exited.is_set():
            self._signal("SIGKILL")
            self._exited.wait(10)
        for thread in self._threads:  # the log stream ends with the container's last line
            thread.join(timeout=5)
        self._remove()

    def _remove(self) -> None:
        if self._removed:
            return
        try:
            self.runtime.client.api.remove_container(self.container.id, force=True)
        except Exception as exc:  # noqa: BLE001 - gone already; leftovers go next run
            if "No such container" not in str(exc):
                log.warning("could not remove container %s: %s", self.name, _first_line(exc))
        self._removed = True


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_.-" else "-" for c in name)[:40] or "node"


def _start_error(node: str, target: NodeImage, command: list[str], exc: Exception) -> UserError:
    message = _first_line(exc)
    if "could not select device driver" in message or "nvidia" in message.lower():
        return UserError(
            f"node {node}: --device cuda: the Docker engine cannot pass a GPU to containers "
            f"({message})",
            hint="install the NVIDIA Container Toolkit and restart Docker, or leave out "
            "--device cuda",
        )
    if "port is already allocated" in message or "address already in use" in message:
        return UserError(
            f"node {node}: a hostPort of its networkRoutingRules is in use ({message})",
            hint="stop what listens there or change hostPort (an override file)",
        )
    if ENV_PROGRAM in message:
        return UserError(
            f"node {node}: image {target.image} has no {ENV_PROGRAM}, which starts the entry "
            f"with the appliance's environment ({message})",
            hint="build FROM an image with coreutils or busybox (every Panorama base image has it)",
        )
    if "executable file not found" in message or "no such file or directory" in message:
        return UserError(
            f"node {node}: {command[0]} (the descriptor's entry.path) is not in image "
            f"{target.image} ({message})",
            hint="install it in the Dockerfile or fix descriptor.json runtimeDescriptor.entry",
        )
    return UserError(f"node {node}: cannot start a container of {target.image}: {message}")
