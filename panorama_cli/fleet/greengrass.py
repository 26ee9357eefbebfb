"""The AWS IoT Greengrass v2 target: one component whose lifecycle runs the app's containers.

:func:`render` (a pure function of a :class:`~.model.FleetApp`) writes the component's recipe,
``recipes/<ComponentName>-<semver>.json``, in the JSON form of the *AWS IoT Greengrass
component recipe reference* (Greengrass v2 developer guide, ``RecipeFormatVersion``
``2020-01-25``), and, when the app has secret cameras, ``secrets/cameras.json`` (mode 0600):
``{camera node: URL}``, merged into the component's configuration at deployment by
:mod:`.greengrass_deploy`. The recipe never holds a secret value.

The recipe:

* depends on ``aws.greengrass.DockerApplicationManager`` (HARD, ``>=2.0.0``), which pulls the
  ``docker:`` artifacts and needs Docker on the core device; the system user that runs the
  component must be allowed to use Docker (the developer guide's "Run a Docker container":
  in the ``docker`` group).
* ``ComponentConfiguration.DefaultConfiguration``: ``cameras`` ``{node: source}`` (a secret
  camera's source is ``""``: the deployment merges the real one) and ``parameters``
  ``{node: value}``, so each deployment (a site) can merge its own.
* one manifest, ``{"os": "linux", "architecture": "amd64" | "aarch64"}``, with the artifacts:
  ``docker:<image>`` per image when the images are in a registry (``archives`` is None), else
  ``s3://PANORAMA_CLI_BUCKET/artifacts/<ComponentName>/<semver>/<image>.tar`` per image
  (:data:`BUCKET_PLACEHOLDER`, replaced by deploy with the real bucket), plus every camera
  file of the bundle at ``.../<semver>/<bundle path>``. S3 artifacts carry ``Digest`` (base64
  of the SHA-256 bytes), ``Algorithm`` ``SHA-256``, ``Unarchive`` ``NONE`` and
  ``Permission.Read`` ``OWNER``. The nucleus downloads each to ``{artifacts:path}/<file name>``.
* the lifecycle, POSIX ``sh`` scripts. Recipe variables (``{artifacts:path}``, ``{work:path}``,
  ``{configuration:/cameras/<node>}``, ``{configuration:/parameters/<node>}``) appear only in
  the steps' ``Setenv`` maps, never in the script text: the nucleus substitutes them as raw
  text, so the scripts read them as ``"$PANORAMA_CLI_..."`` and no configured value can change
  what the shell parses. Every other value in a script is quoted with :func:`shlex.quote`.

  - ``Install`` (archives only): ``docker image inspect REF || docker load -i FILE.tar`` per
    image.
  - ``Run``: removes leftovers of a previous run, creates the volumes (``<component>-<volume>``;
    ``shm`` as a tmpfs of :data:`~.model.SHM_SIZE_BYTES`), writes each secret camera's source
    into ``{work:path}/secrets/<secret name>`` (0600, never on a docker command line), starts
    each node container detached (``--restart unless-stopped``, read-only root, no
    capabilities), then runs serve in the foreground (``exec docker run --rm``) so that the
    nucleus sees serve's life as the component's.
  - ``Shutdown``: ``docker stop`` and ``docker rm`` of every container of the component; the
    volumes (state, storage, logs) stay.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from panorama_cli.fleet import model
from panorama_cli.fleet.model import Container, FleetApp, OutFile

log = logging.getLogger(__name__)

#: Stands for the S3 bucket in the exported recipe's artifact URIs; deploy replaces it.
BUCKET_PLACEHOLDER = "PANORAMA_CLI_BUCKET"
RECIPE_FORMAT_VERSION = "2020-01-25"
PUBLISHER = "panorama-cli"
DOCKER_MANAGER = "aws.greengrass.DockerApplicationManager"
DOCKER_MANAGER_VERSION = ">=2.0.0"
#: The bundle's secret camera sources, ``{camera node: URL}`` (mode 0600).
SECRETS_FILE = "secrets/cameras.json"
RECIPES_DIR = "recipes"
ARTIFACTS_DIR = "artifacts"
#: Docker label naming the component on each of its containers.
LABEL_COMPONENT = "org.panorama-cli.greengrass-component"
#: Greengrass architecture names (the recipe's ``Platform.architecture``) by Docker platform.
ARCHITECTURES = {"linux/amd64": "amd64", "linux/arm64": "aarch64"}
#: Longest component name the service takes (ComponentNameString: 1..128).
MAX_NAME = 128
#: Seconds the Install step may take (docker load of large images), and Shutdown.
INSTALL_TIMEOUT_S = 1800
SHUTDOWN_TIMEOUT_S = 120
#: Seconds ``docker stop`` waits before it kills a container.
STOP_GRACE_S = 20
#: Seconds Shutdown waits for the engine to finish removing the containers.
SHUTDOWN_WAIT_S = 30

ENV_ARTIFACTS = "PANORAMA_CLI_ARTIFACTS"
ENV_WORK = "PANORAMA_CLI_WORK"
ENV_CAMERA = "PANORAMA_CLI_CAMERA_"
ENV_PARAM = "PANORAMA_CLI_PARAM_"

_NAME_PART = re.compile(r"[^A-Za-z0-9_-]+")
#: A component name panorama-cli uses: also a valid Docker container / volume name prefix
#: (the ARN pattern ``components:[^:]+`` forbids ``:``).
COMPONENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class ImageArchive:
    """An image saved with ``docker save`` into the bundle (no ``--registry``).

    Attributes:
        image: the image reference the archive holds (``repo:tag``), as the containers use it.
        path: path inside the bundle (``/``-separated), also the S3 key:
            ``artifacts/<ComponentName>/<semver>/<file>.tar`` (:func:`archive_path`).
        sha256: SHA-256 of the file, 64 lower-case hex digits.
        size: the file's size, bytes.
    """

    image: str
    path: str
    sha256: str
    size: int

    @property
    def filename(self) -> str:
        """The file's name: where the nucleus puts it, ``{artifacts:path}/<filename>``."""
        return self.path.rsplit("/", 1)[-1]


def component_name_for(account_id: str, app_name: str) -> str:
    """``com.panorama-cli.<account>.<app>``: a component name unique per account and app.

    Characters other than letters, digits, ``_`` and ``-`` in either part become ``-``; the
    result has at most :data:`MAX_NAME` characters and matches :data:`COMPONENT_NAME`.
    """
    account = _NAME_PART.sub("-", account_id).strip("-") or "account"
    app = _NAME_PART.sub("-", app_name).strip("-") or "app"
    return f"com.panorama-cli.{account}.{app}"[:MAX_NAME].rstrip(".-")


def artifact_prefix(component_name: str, semver: str) -> str:
    """``artifacts/<ComponentName>/<semver>``: the bundle folder and S3 prefix of a version."""
    return f"{ARTIFACTS_DIR}/{component_name}/{semver}"


def archive_path(component_name: str, semver: str, image: str) -> str:
    """Where the archive of ``image`` goes in the bundle (and S3): ``<prefix>/<image>.tar``
    with ``/`` and ``:`` of the reference as ``_``."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", image).strip("_.") or "image"
    return f"{artifact_prefix(component_name, semver)}/{stem}.tar"


def recipe_path(component_name: str, semver: str) -> str:
    """``recipes/<ComponentName>-<semver>.json``."""
    return f"{RECIPES_DIR}/{component_name}-{semver}.json"


def s3_uri(key: str) -> str:
    """An artifact URI with the bucket left as :data:`BUCKET_PLACEHOLDER`."""
    return f"s3://{BUCKET_PLACEHOLDER}/{key}"


def digest_b64(sha256_hex: str) -> str:
    """A recipe artifact's ``Digest``: base64 of the SHA-256 bytes (not of the hex text)."""
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")


def config_pointer(*keys: str) -> str:
    """A JSON pointer into the component's configuration (``~`` and ``/`` escaped, RFC 6901)."""
    return "/" + "/".join(k.replace("~", "~0").replace("/", "~1") for k in keys)


def render(
    app: FleetApp,
    *,
    component_name: str,
    archives: Mapping[str, ImageArchive] | None = None,
    file_digests: Mapping[str, str] | None = None,
) -> list[OutFile]:
    """The Greengrass v2 files of ``app``: its recipe, and its secret file if it has secrets.

    Args:
        app: the application.
        component_name: from :func:`component_name_for` (must match :data:`COMPONENT_NAME`).
        archives: image reference -> :class:`ImageArchive` for every image of the app when the
            images travel in the bundle; None when they are in a registry (``docker:`` URIs).
        file_digests: bundle path of a camera file (:attr:`~.model.BundleFile.path`) -> its
            SHA-256 (hex). A file without one gets no ``Digest`` here; deploy adds it.

    Returns:
        ``recipes/<ComponentName>-<semver>.json`` and, when ``app.secrets``,
        ``secrets/cameras.json`` (private).

    Raises:
        ValueError: an invalid component name, an unknown platform, or an image without an
            archive.
    """
    if not COMPONENT_NAME.match(component_name):
        raise ValueError(f"invalid Greengrass component name {component_name!r}")
    if app.platform not in ARCHITECTURES:
        raise ValueError(f"no Greengrass architecture for platform {app.platform!r}")
    if archives is not None:
        missing = [image for image in app.images if image not in archives]
        if missing:
            raise ValueError(f"no image archive for {', '.join(missing)}")
    recipe = recipe_of(
        app, component_name=component_name, archives=archives, file_digests=file_digests or {}
    )
    text = json.dumps(recipe, indent=2, sort_keys=True) + "\n"
    files = [OutFile(recipe_path(component_name, app.semver), text.encode("utf-8"))]
    secrets = {
        node: camera.secret.value
        for node, camera in app.cameras.items()
        if camera.kind == "secret" and camera.secret is not None
    }
    if secrets:
        body = json.dumps(secrets, indent=2, sort_keys=True) + "\n"
        files.append(OutFile(SECRETS_FILE, body.encode("utf-8"), private=True))
    log.debug("greengrass: %s %s, %d file(s)", component_name, app.semver, len(files))
    return files


def recipe_of(
    app: FleetApp,
    *,
    component_name: str,
    archives: Mapping[str, ImageArchive] | None,
    file_digests: Mapping[str, str],
) -> dict[str, Any]:
    """The recipe as a JSON-ready dict (see :func:`render`)."""
    cameras = {
        node: ("" if camera.kind == "secret" else camera.value)
        for node, camera in app.cameras.items()
    }
    artifacts: list[dict[str, Any]] = []
    if archives is None:
        artifacts += [{"Uri": f"docker:{image}"} for image in app.images]
    else:
        for image in app.images:
            archive = archives[image]
            artifacts.append(_s3_artifact(archive.path, archive.sha256))
    prefix = artifact_prefix(component_name, app.semver)
    for bundle_file in app.files:
        artifacts.append(
            _s3_artifact(f"{prefix}/{bundle_file.path}", file_digests.get(bundle_file.path))
        )
    lifecycle: dict[str, Any] = {
        "Run": {"Script": run_script(app, component_name), "Setenv": _run_env(app)},
        "Shutdown": {
            "Script": shutdown_script(app, component_name),
            "Timeout": SHUTDOWN_TIMEOUT_S,
        },
    }
    if archives is not None:
        lifecycle["Install"] = {
            "Script": install_script(app, archives),
            "Setenv": {ENV_ARTIFACTS: "{artifacts:path}"},
            "Timeout": INSTALL_TIMEOUT_S,
        }
    return {
        "RecipeFormatVersion": RECIPE_FORMAT_VERSION,
        "ComponentName": component_name,
        "ComponentVersion": app.semver,
        "ComponentDescription": (
            f"panorama-cli application {app.name} (content version {app.version})"
        ),
        "ComponentPublisher": PUBLISHER,
        "ComponentDependencies": {
            DOCKER_MANAGER: {"VersionRequirement": DOCKER_MANAGER_VERSION, "DependencyType": "HARD"}
        },
        "ComponentConfiguration": {
            "DefaultConfiguration": {"cameras": cameras, "parameters": dict(app.params)}
        },
        "Manifests": [
            {
                "Platform": {"os": "linux", "architecture": ARCHITECTURES[app.platform]},
                "Artifacts": artifacts,
                "Lifecycle": lifecycle,
            }
        ],
    }


def _s3_artifact(key: str, sha256_hex: str | None) -> dict[str, Any]:
    artifact: dict[str, Any] = {
        "Uri": s3_uri(key),
        "Unarchive": "NONE",
        "Permission": {"Read": "OWNER"},
    }
    if sha256_hex:
        artifact["Digest"] = digest_b64(sha256_hex)
        artifact["Algorithm"] = "SHA-256"
    return artifact


def _q(value: object) -> str:
    return shlex.quote(str(value))


def _words(words: list[str]) -> str:
    """A command line of already-quoted words: an option and its value on one line, each on
    a continuation line (the layout only; the words are the same)."""
    lines: list[str] = []
    for word in words:
        if lines and lines[-1].startswith("-") and " " not in lines[-1] and word[:1] != "-":
            lines[-1] += " " + word
        elif (
            lines and not lines[-1].startswith("-") and not word.startswith("-") and len(lines) < 3
        ):
            lines[-1] += " " + word
        else:
            lines.append(word)
    return " \\\n  ".join(lines)


def _camera_env(index: int) -> str:
    return f"{ENV_CAMERA}{index}"


def _param_env(index: int) -> str:
    return f"{ENV_PARAM}{index}"


def _run_env(app: FleetApp) -> dict[str, str]:
    """Run's ``Setenv``: the work folder, artifacts folder and every configured value."""
    env = {ENV_WORK: "{work:path}", ENV_ARTIFACTS: "{artifacts:path}"}
    for index, node in enumerate(app.cameras):
        env[_camera_env(index)] = "{configuration:" + config_pointer("cameras", node) + "}"
    for index, node in enumerate(app.params):
        env[_param_env(index)] = "{configuration:" + config_pointer("parameters", node) + "}"
    return env


def container_name(component_name: str, container: Container) -> str:
    """``<component>-<container name>`` (``...-serve``, ``...-<node label>``)."""
    return f"{component_name}-{container.name}"


def volume_name(component_name: str, volume: str) -> str:
    """``<component>-<volume>``: the app's volumes are the component's."""
    return f"{component_name}-{volume}"


def install_script(app: FleetApp, archives: Mapping[str, ImageArchive]) -> str:
    """Install: load each image archive unless the engine already has the image."""
    lines = ["set -eu"]
    for image in app.images:
        archive = archives[image]
        lines.append(
            f"docker image inspect {_q(image)} >/dev/null 2>&1 || "
            f'docker load -i "${ENV_ARTIFACTS}"/{_q(archive.filename)}'
        )
    return "\n".join(lines) + "\n"


def _labels(app: FleetApp, component_name: str, container: Container) -> list[str]:
    words = []
    for key, value in (
        (model.LABEL_APP, app.name),
        (model.LABEL_VERSION, app.version),
        (model.LABEL_ROLE, container.role),
        (LABEL_COMPONENT, component_name),
    ):
        words += ["--label", _q(f"{key}={value}")]
    return words


def _common(app: FleetApp, component_name: str, container: Container) -> list[str]:
    """Options every container gets: name, labels, security, volumes, working directory."""
    words = ["--name", _q(container_name(component_name, container))]
    words += _labels(app, component_name, container)
    if container.read_only:
        words.append("--read-only")
    for path in container.tmpfs:
        words += ["--tmpfs", _q(path)]
    words += ["-w", _q(container.working_dir or "/")]
    for mount in container.mounts:
        spec = f"{volume_name(component_name, mount.volume)}:{mount.target}"
        words += ["-v", _q(spec + (":ro" if mount.read_only else ""))]
    return words


def run_script(app: FleetApp, component_name: str) -> str:
    """Run: volumes, secret files, the node containers (detached), then serve (foreground)."""
    names = [container_name(component_name, c) for c in app.containers]
    lines = [
        "set -eu",
        f"docker rm -f {' '.join(_q(n) for n in names)} >/dev/null 2>&1 || true",
    ]
    for volume in app.volumes:
        name = _q(volume_name(component_name, volume))
        if volume == model.SHM_VOLUME:
            lines.append(
                "docker volume create --driver local --opt type=tmpfs --opt device=tmpfs "
                f"--opt o=size={int(model.SHM_SIZE_BYTES)} {name} >/dev/null"
            )
        else:
            lines.append(f"docker volume create {name} >/dev/null")
    secret_cameras = [
        (index, camera)
        for index, camera in enumerate(app.cameras.values())
        if camera.kind == "secret" and camera.secret is not None
    ]
    lines += [
        f'secrets="${ENV_WORK}/secrets"',
        'mkdir -p "$secrets"',
        'chmod 700 "$secrets"',
    ]
    for index, camera in secret_cameras:
        assert camera.secret is not None
        target = f'"$secrets"/{_q(_secret_file(camera.secret.target))}'
        lines += [
            f"(umask 077 && printf '%s' \"${_camera_env(index)}\" > {target})",
            f"chmod 600 {target}",
        ]
    for node in app.nodes:
        words = ["docker", "run", "-d", *_common(app, component_name, node)]
        words += ["--restart", "unless-stopped", "--cap-drop", "ALL"]
        words += ["--security-opt", "no-new-privileges"]
        if node.gpu:
            words += ["--gpus", "all"]
        command = list(node.command)
        if command:
            words += ["--entrypoint", _q(command[0]), _q(node.image)]
            words += [_q(arg) for arg in command[1:]]
        else:
            words += [_q(node.image), *(_q(arg) for arg in node.args)]
        lines.append(_words(words) + " >/dev/null")
    lines.append(_words(_serve_words(app, component_name)))
    return "\n".join(lines) + "\n"


def _secret_file(target: str) -> str:
    """The secret's file name under ``{work:path}/secrets`` (its name in SECRETS_DIR)."""
    return target.rsplit("/", 1)[-1]


def _serve_words(app: FleetApp, component_name: str) -> list[str]:
    serve = app.serve
    words = ["exec", "docker", "run", "--rm", *_common(app, component_name, serve)]
    for container_port, host_port in serve.ports:
        words += ["-p", _q(f"{host_port}:{container_port}")]
    if app.device == "cuda" or serve.gpu:
        words += ["--gpus", "all"]
    if any(c.kind == "secret" for c in app.cameras.values()):
        words += ["-v", f'"${ENV_WORK}/secrets":{_q(model.SECRETS_DIR + ":ro")}']
    for bundle_file in app.files:
        name = _q(bundle_file.path.rsplit("/", 1)[-1])
        words += ["-v", f'"${ENV_ARTIFACTS}"/{name}:{_q(bundle_file.target + ":ro")}']
    if serve.command:
        words += ["--entrypoint", _q(serve.command[0])]
    words.append(_q(serve.image))
    words += [_q(arg) for arg in serve.command[1:]]

    # serve_args with tokens standing for the values that come from the configuration
    tokens: dict[str, str] = {}
    camera_index = {node: i for i, node in enumerate(app.cameras)}
    param_index = {node: i for i, node in enumerate(app.params)}

    def camera_arg(camera: model.Camera) -> str:
        token = f"\0camera{camera_index[camera.node]}"
        if camera.kind == "secret":
            tokens[token] = _q(camera.serve_arg())
        else:
            tokens[token] = _q(f"{camera.node}=") + f'"${_camera_env(camera_index[camera.node])}"'
        return token

    def param_arg(node: str, value: str) -> str:
        token = f"\0param{param_index[node]}"
        tokens[token] = _q(f"{node}=") + f'"${_param_env(param_index[node])}"'
        return token

    for arg in app.serve_args(camera_arg=camera_arg, param_arg=param_arg):
        words.append(tokens[arg] if arg in tokens else _q(arg))
    return words


def shutdown_script(app: FleetApp, component_name: str) -> str:
    """Shutdown: stop and remove every container of the component (volumes stay)."""
    names = " ".join(_q(container_name(component_name, c)) for c in app.containers)
    label = _q(f"label={LABEL_COMPONENT}={component_name}")
    # serve's `--rm` removal runs in the engine after the stop: wait until every container
    # with the component's label is gone (at most SHUTDOWN_WAIT_S seconds)
    return (
        f"docker stop -t {STOP_GRACE_S} {names} >/dev/null 2>&1 || true\n"
        f"docker rm -f {names} >/dev/null 2>&1 || true\n"
        "i=0\n"
        f'while left="$(docker ps -aq --filter {label})" && [ -n "$left" ] '
        f"&& [ $i -lt {SHUTDOWN_WAIT_S} ]; do\n"
        "  docker rm -f $left >/dev/null 2>&1 || true\n"
        "  sleep 1\n"
        "  i=$((i + 1))\n"
        "done\n"
    )
