"""The fleet's one model of an exported application: the services every target runs.

Every target (Docker Compose / Swarm, Kubernetes, AWS IoT Greengrass v2) runs the same set of
containers, described here once and rendered by each exporter (:mod:`.compose`,
:mod:`.kubernetes`, :mod:`.greengrass`, pure functions of a :class:`FleetApp`):

* ``serve``: the appliance image (:mod:`.images`): panorama-cli's runtime with the graph,
  overrides and model assets inside, running ``panorama-cli serve --external-nodes``: the
  cameras, the model nodes, the HDMI outputs, HTTP (health, readiness, metrics, live view) and
  RTSP out. It owns the control socket (:data:`CONTROL_DIR`).
* one container per business-logic node: the node's own image from build-container with the
  simulated SDK added (:func:`.images.node_image`), started as the appliance starts it (the
  descriptor's entry through ``env -i`` with the appliance's environment, working directory
  ``/``, read-only root, only logs and storage writable). It connects to serve's control
  socket.

The containers share one volume, :data:`CONTROL_VOLUME` (the control socket; read-only in
the node containers, so that no node can replace the socket with its own and listen to the
others), as a Pod's containers or a Compose project's services can; the frame rings and call
arenas travel over the socket as descriptors (``memfd``), so no ``/dev/shm`` is shared. The
node's storage and logs are their own volumes, kept across restarts and updates.

Credentials never appear in a manifest: a camera source with a user or password in it is a
:class:`Secret`, read by serve from a file (``--camera NAME=@FILE``). So is the app's control
key (:data:`CONTROL_KEY_FILE`, serve's ``--control-key``) and each node's own token
(:data:`NODE_TOKEN_FILE`, ``identity.node_token(key, node)``): a node container gets only its
own token, never the key or another node's token, so it can only say it is that node.

Node containers run under the same limits as ``run`` and ``serve`` give a node
(:class:`~panorama_cli.localrun.apps.limits.NodeLimits`: memory, processes, storage), serve
under its own; each exporter renders them in its engine's terms, with CPU limits. No container
runs as root: serve as :data:`SERVE_UID`, node ``i`` as ``NODE_UID_BASE + i``, all in group
:data:`APP_GID` (the control socket's), with read-only roots and no capabilities. serve's login
token (HTTP and RTSP out) is a secret of serve only (:data:`SERVE_TOKEN_FILE`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from panorama_cli.localrun.apps.appliance import LOGS, SOCKET_TARGET, STORAGE
from panorama_cli.localrun.apps.limits import NodeLimits

log = logging.getLogger(__name__)

#: Where serve keeps its state in the serve container (a volume).
STATE_DIR = "/var/lib/panorama-serve"
#: The control socket's folder, shared by serve and the node containers.
CONTROL_DIR = str(Path(SOCKET_TARGET).parent)
#: Where the bundle's camera files are mounted in the serve container (read-only).
CAMERAS_DIR = "/opt/panorama-cli/cameras"
#: Where secrets appear as files in the serve container (Compose's and Swarm's own place).
SECRETS_DIR = "/run/secrets"
#: The control key in the serve container (serve's ``--control-key``).
CONTROL_KEY_FILE = f"{SECRETS_DIR}/control.key"
#: A node's own token in its container (``PANORAMA_LOCALRUN_TOKEN_FILE``).
NODE_TOKEN_FILE = f"{SECRETS_DIR}/node.token"
#: The bundle file that keeps the control key across exports (0600).
CONTROL_KEY_BUNDLE_FILE = "secrets/control.key"
#: serve's HTTP and RTSP login token in the serve container (``--auth-token-file``).
SERVE_TOKEN_FILE = f"{SECRETS_DIR}/serve-token"
#: The bundle file that keeps serve's login token across exports (where export says it is).
SERVE_TOKEN_BUNDLE_FILE = "secrets/serve-token"
#: The user serve runs as and the group every container of the app shares (the runtime image
#: makes them and gives them serve's state and control folders; the control socket is
#: ``srwxrwx---`` of this group, so each node container, in it, may connect).
SERVE_UID = 10001
APP_GID = 10001
#: Node container ``i`` (graph order) runs as user ``NODE_UID_BASE + i``, group :data:`APP_GID`:
#: its own uid, so the control socket's per-uid bound on waiting connections holds per node.
NODE_UID_BASE = 10100
#: Where parameter values appear as files (Kubernetes ConfigMap) when a target uses files.
PARAMS_DIR = "/etc/panorama-cli/params"
#: The project inside the appliance image (graph, overrides, descriptors, model assets).
PROJECT_DIR = "/opt/panorama-cli/project"
#: serve's HTTP port in the container and RTSP out.
HTTP_PORT = 8765
RTSP_PORT = 8554
CONTROL_VOLUME = "control"
STATE_VOLUME = "state"
LABEL_APP = "org.panorama-cli.application"
LABEL_VERSION = "org.panorama-cli.version"
LABEL_ROLE = "org.panorama-cli.role"

_DNS = re.compile(r"[^a-z0-9-]+")


def dns_label(text: str, limit: int = 63) -> str:
    """``text`` as an RFC 1123 label (lower case, digits, ``-``; Kubernetes' and Compose's
    names): ``People_Counter`` -> ``people-counter``."""
    label = _DNS.sub("-", text.lower()).strip("-")[:limit].strip("-")
    return label or "app"


#: The engine's log of a node container is kept in this many files (json-file ``max-file``).
LOG_FILES = 2


def log_file_bytes(limits: NodeLimits) -> int:
    """Bytes of each of the engine's :data:`LOG_FILES` log files of a node container: together
    a sixteenth of its storage limit (at least 1 MiB each)."""
    return max(1 << 20, limits.storage // 16 // LOG_FILES)


def tmp_bytes(limits: NodeLimits) -> int:
    """Size of a node container's private ``/tmp`` tmpfs: an eighth of its storage limit, at
    most its memory limit (tmpfs pages are the container's memory), at least 1 MiB."""
    return max(1 << 20, min(limits.storage // 8, limits.memory))


#: Host addresses that mean "every address of the box".
ANY_HOST = frozenset({"0.0.0.0", "::", ""})


def published(host: str, port: int, target: int) -> str:
    """Docker's ``-p`` / Compose's short port syntax publishing container port ``target`` on
    ``host:port`` only (every address for :data:`ANY_HOST`): ``127.0.0.1:8765:8765``,
    ``[::1]:8765:8765``, ``8765:8765``."""
    if host in ANY_HOST:
        return f"{port}:{target}"
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}:{target}"


def cpus_text(cpus: float) -> str:
    """A CPU count as Docker's ``--cpus`` and Compose's ``cpus`` take it: ``1.5`` -> ``"1.5"``,
    ``2.0`` -> ``"2"``."""
    return f"{cpus:g}"


def docker_size(n_bytes: int) -> str:
    """Bytes as Docker's ``--memory`` and Compose's ``mem_limit`` take them, exactly:
    ``4294967296`` -> ``"4g"``, ``1536`` -> ``"1536b"``."""
    for suffix, unit in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if n_bytes % unit == 0:
            return f"{n_bytes // unit}{suffix}"
    return f"{n_bytes}b"


@dataclass(frozen=True)
class Mount:
    """A volume in a container.

    Attributes:
        volume: the volume's name in the application (``state``, ``storage-<node>``, ...).
        target: the path in the container.
        read_only: mounted read-only.
    """

    volume: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class BundleFile:
    """A file of the export bundle mounted into the serve container (a ``--camera`` video).

    Attributes:
        path: path inside the bundle folder, e.g. ``cameras/front_door.avi``.
        source: the file it was copied from (this machine).
        target: where serve sees it, e.g. ``/opt/panorama-cli/cameras/front_door.avi``.
    """

    path: str
    source: Path
    target: str


@dataclass(frozen=True)
class Secret:
    """A value that must not appear in a manifest (an RTSP URL with credentials).

    Attributes:
        name: the secret's name (a DNS label), e.g. ``camera-front-door``.
        key: the item inside it (Kubernetes Secret key, Greengrass configuration key).
        value: the value itself (written only to a secret: a 0600 file, a Secret object).
        target: the file the container reads it from (``/run/secrets/<name>``).
        kind: ``"camera"`` (a camera URL, serve's), ``"control-key"`` (serve's
            ``--control-key``), ``"serve-token"`` (serve's login token, ``--auth-token-file``)
            or ``"node-token"`` (one node's own token).
        node: the node a ``"node-token"`` belongs to, else "".
    """

    name: str
    key: str
    value: str
    target: str
    kind: str = "camera"
    node: str = ""


@dataclass(frozen=True)
class Camera:
    """One camera node's source as serve gets it.

    Attributes:
        node: the camera node's name.
        kind: ``"file"`` (a bundle file), ``"url"`` (rtsp/http/gst/v4l2 without credentials)
            or ``"secret"`` (a URL with credentials).
        value: the container path (file), the URL (url) or the secret's file (secret).
        secret: the secret (kind ``"secret"``), else None.
    """

    node: str
    kind: str
    value: str
    secret: Secret | None = None

    def serve_arg(self) -> str:
        """``NODE=SOURCE`` for serve's ``--camera`` (``NODE=@FILE`` for a secret)."""
        return (
            f"{self.node}=@{self.value}" if self.kind == "secret" else f"{self.node}={self.value}"
        )


@dataclass(frozen=True)
class Container:
    """One container of the application (serve or a business-logic node).

    Attributes:
        name: service / container name (a DNS label): ``serve`` or the node's name as a label.
        role: ``"serve"`` or ``"node"``.
        node: the business-logic node's name in the graph ("" for serve).
        image: the image reference the engine pulls or finds (``--registry`` prefix applied).
        command: the whole argv the container starts (entrypoint replaced), or () for the
            image's own ENTRYPOINT (serve).
        args: arguments after the image's ENTRYPOINT (serve's options).
        mounts: volumes (:class:`Mount`).
        read_only: the root filesystem is read-only (the appliance's).
        tmpfs: paths of private tmpfs mounts (``/tmp``).
        ports: (container port, host port) published on the host (TCP).
        health_path: HTTP path of the liveness check (serve: ``/healthz``), "" for none.
        ready_path: HTTP path of the readiness check (serve: ``/readyz``), "" for none.
        gpu: gets every GPU of the box (``--device cuda``: serve when it runs model nodes, a
            node when the plan gives it the GPU; see :mod:`.app`).
        working_dir: the working directory (``/`` for nodes, as on the appliance).
        secrets: the secrets mounted into this container (and no other secret).
        limits: the container's memory, processes and storage (its engine log and ``/tmp``
            sizes); None: the engine's defaults.
        user: (uid, gid) the container runs as (None: the image's user).
        cpus: CPUs the container may use (0: no limit).
    """

    name: str
    role: str
    node: str
    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    mounts: tuple[Mount, ...] = ()
    read_only: bool = False
    tmpfs: tuple[str, ...] = ()
    ports: tuple[tuple[int, int], ...] = ()
    health_path: str = ""
    ready_path: str = ""
    gpu: bool = False
    working_dir: str = "/"
    secrets: tuple[Secret, ...] = ()
    limits: NodeLimits | None = None
    user: tuple[int, int] | None = None
    cpus: float = 0.0


@dataclass(frozen=True)
class FleetApp:
    """An application as every fleet target deploys it.

    Attributes:
        name: the application's name as a DNS label (Compose project, Kubernetes app label,
            part of the Greengrass component name).
        version: the content version (12 hex digits of a sha256 over the images and the
            configuration): an unchanged project gives the same version.
        semver: ``1.0.<n>`` form of the version for targets that need semantic versions
            (Greengrass): ``1.0.<first 8 hex digits as an integer>``.
        serve: the serve container.
        nodes: one container per business-logic node, graph order.
        cameras: camera node -> :class:`Camera`.
        params: parameter node -> value as serve's ``--param`` takes it (text).
        files: bundle files (camera videos).
        secrets: every secret.
        volumes: every named volume the containers mount (state, control, storage-*,
            logs-*), sorted.
        listen_host: the host address serve's HTTP and RTSP out are published on
            (``0.0.0.0``: every address of the box).
        listen_port: the host port serve's HTTP is published on.
        rtsp_port: the host port of RTSP out (0: off).
        device: ``"cpu"`` or ``"cuda"``.
        platform: ``linux/amd64`` or ``linux/arm64``.
        images: every image reference the application uses (serve's first).
    """

    name: str
    version: str
    serve: Container
    nodes: tuple[Container, ...]
    cameras: dict[str, Camera]
    params: dict[str, str]
    files: tuple[BundleFile, ...] = ()
    secrets: tuple[Secret, ...] = ()
    listen_port: int = HTTP_PORT
    rtsp_port: int = RTSP_PORT
    device: str = "cpu"
    platform: str = "linux/amd64"
    volumes: tuple[str, ...] = field(default=())
    listen_host: str = "0.0.0.0"

    @property
    def semver(self) -> str:
        return f"1.0.{int(self.version[:8], 16)}"

    @property
    def containers(self) -> tuple[Container, ...]:
        return (self.serve, *self.nodes)

    @property
    def images(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for container in self.containers:
            seen.setdefault(container.image, None)
        return tuple(seen)

    def serve_args(self, *, camera_arg: object = None, param_arg: object = None) -> tuple[str, ...]:
        """serve's arguments with the cameras and parameters in the form a target wants.

        Args:
            camera_arg: ``f(camera) -> "NODE=SOURCE"`` (default :meth:`Camera.serve_arg`).
            param_arg: ``f(node, value) -> "NODE=VALUE"`` (default: the value inline).
        """
        args = list(self.serve.args)
        for camera in self.cameras.values():
            arg = camera_arg(camera) if callable(camera_arg) else camera.serve_arg()
            args += ["--camera", arg]
        for node, value in self.params.items():
            arg = param_arg(node, value) if callable(param_arg) else f"{node}={value}"
            args += ["--param", arg]
        return tuple(args)


def node_mounts(node_label: str) -> tuple[Mount, ...]:
    """A node container's volumes: its storage and logs, the control socket's folder
    (read-only: a node connects to the socket, it cannot replace it)."""
    return (
        Mount(f"storage-{node_label}", STORAGE),
        Mount(f"logs-{node_label}", LOGS),
        Mount(CONTROL_VOLUME, CONTROL_DIR, read_only=True),
    )


def serve_mounts() -> tuple[Mount, ...]:
    """serve's volumes: its state folder, the control socket's folder."""
    return (
        Mount(STATE_VOLUME, STATE_DIR),
        Mount(CONTROL_VOLUME, CONTROL_DIR),
    )


@dataclass(frozen=True)
class OutFile:
    """One file an exporter writes into the bundle folder.

    Attributes:
        path: relative to the bundle folder (``/``-separated), e.g. ``compose.yaml``.
        content: the bytes.
        private: a secret: written with mode 0600 (never into a manifest), in a folder of
            mode 0700.
        mode: the file's mode when it is not the default (0644, or 0600 when private): a node
            token a container's root without capabilities must read is 0644 in the 0700
            ``secrets/`` folder.
    """

    path: str
    content: bytes
    private: bool = False
    mode: int | None = None
