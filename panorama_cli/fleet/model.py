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

The containers share two volumes: :data:`CONTROL_VOLUME` (the control socket) and
:data:`SHM_VOLUME` (a tmpfs at ``/dev/shm``: the frame rings and call arenas are POSIX shared
memory there), as a Pod's containers or a Compose project's services can; the node's storage
and logs are their own volumes, kept across restarts and updates.

Credentials never appear in a manifest: a camera source with a user or password in it is a
:class:`Secret`, read by serve from a file (``--camera NAME=@FILE``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from panorama_cli.localrun.apps.appliance import LOGS, SOCKET_TARGET, STORAGE

log = logging.getLogger(__name__)

#: Where serve keeps its state in the serve container (a volume).
STATE_DIR = "/var/lib/panorama-serve"
#: The control socket's folder, shared by serve and the node containers.
CONTROL_DIR = str(Path(SOCKET_TARGET).parent)
#: Where the bundle's camera files are mounted in the serve container (read-only).
CAMERAS_DIR = "/opt/panorama-cli/cameras"
#: Where secrets appear as files in the serve container (Compose's and Swarm's own place).
SECRETS_DIR = "/run/secrets"
#: Where parameter values appear as files (Kubernetes ConfigMap) when a target uses files.
PARAMS_DIR = "/etc/panorama-cli/params"
#: The project inside the appliance image (graph, overrides, descriptors, model assets).
PROJECT_DIR = "/opt/panorama-cli/project"
#: serve's HTTP port in the container and RTSP out.
HTTP_PORT = 8765
RTSP_PORT = 8554
CONTROL_VOLUME = "control"
SHM_VOLUME = "shm"
STATE_VOLUME = "state"
#: Size of the shared /dev/shm tmpfs (frame rings of every camera and HDMI stream).
SHM_SIZE_BYTES = 1 << 30
LABEL_APP = "org.panorama-cli.application"
LABEL_VERSION = "org.panorama-cli.version"
LABEL_ROLE = "org.panorama-cli.role"

_DNS = re.compile(r"[^a-z0-9-]+")


def dns_label(text: str, limit: int = 63) -> str:
    """``text`` as an RFC 1123 label (lower case, digits, ``-``; Kubernetes' and Compose's
    names): ``People_Counter`` -> ``people-counter``."""
    label = _DNS.sub("-", text.lower()).strip("-")[:limit].strip("-")
    return label or "app"


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
        target: the file serve reads it from (``/run/secrets/<name>``).
    """

    name: str
    key: str
    value: str
    target: str


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
        gpu: needs every GPU of the box (``--device cuda``; serve runs the models).
        working_dir: the working directory (``/`` for nodes, as on the appliance).
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
        volumes: every named volume the containers mount (state, control, shm, storage-*,
            logs-*), sorted.
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
    """A node container's volumes: its storage and logs, the control socket, shared memory."""
    return (
        Mount(f"storage-{node_label}", STORAGE),
        Mount(f"logs-{node_label}", LOGS),
        Mount(CONTROL_VOLUME, CONTROL_DIR),
        Mount(SHM_VOLUME, "/dev/shm"),
    )


def serve_mounts() -> tuple[Mount, ...]:
    """serve's volumes: its state folder, the control socket, shared memory."""
    return (
        Mount(STATE_VOLUME, STATE_DIR),
        Mount(CONTROL_VOLUME, CONTROL_DIR),
        Mount(SHM_VOLUME, "/dev/shm"),
    )


@dataclass(frozen=True)
class OutFile:
    """One file an exporter writes into the bundle folder.

    Attributes:
        path: relative to the bundle folder (``/``-separated), e.g. ``compose.yaml``.
        content: the bytes.
        private: a secret: written with mode 0600 (never into a manifest).
    """

    path: str
    content: bytes
    private: bool = False
