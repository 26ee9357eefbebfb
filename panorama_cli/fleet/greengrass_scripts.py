"""The Greengrass component's lifecycle scripts (POSIX ``sh``) and their ``Setenv``: pure
functions of a :class:`~.model.FleetApp` for :mod:`.greengrass`'s recipe.

Recipe variables (``{work:path}``, ``{configuration:/...}``) appear only in ``Setenv``
(:func:`run_env`), never in a script: the nucleus substitutes them as raw text, so a script
reads them as ``"$PANORAMA_CLI_..."`` and no configured value can change what the shell
parses; every other value is quoted with :func:`shlex.quote`. What each step does is in
:mod:`.greengrass`'s docstring.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING

from panorama_cli.fleet import model
from panorama_cli.fleet.model import (
    LOG_FILES,
    Container,
    FleetApp,
    cpus_text,
    docker_size,
    log_file_bytes,
    published,
    tmp_bytes,
)

if TYPE_CHECKING:
    from panorama_cli.fleet.greengrass import ImageArchive

log = logging.getLogger(__name__)

#: Docker label naming the component on each of its containers.
LABEL_COMPONENT = "org.panorama-cli.greengrass-component"
#: Seconds ``docker stop`` waits before it kills a container.
STOP_GRACE_S = 20
#: Seconds Shutdown waits for the engine to finish removing the containers.
SHUTDOWN_WAIT_S = 30

ENV_ARTIFACTS = "PANORAMA_CLI_ARTIFACTS"
ENV_WORK = "PANORAMA_CLI_WORK"
ENV_CAMERA = "PANORAMA_CLI_CAMERA_"
ENV_PARAM = "PANORAMA_CLI_PARAM_"
#: The app's secret (its ARN, from the configuration's ``secret/arn``).
ENV_SECRET_ARN = "PANORAMA_CLI_SECRET_ID"
#: What the nucleus gives each lifecycle step: its IPC socket's path and the component's token.
ENV_IPC_SOCKET = "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"
ENV_SVCUID = "SVCUID"
#: Where the fetch container sees the IPC socket and the two secret folders (folders the
#: engine makes, 0755: not under the image's own control folder, which the fetch container's
#: user may not enter).
FETCH_SOCKET = "/run/greengrass/ipc.socket"
FETCH_OUT = "/run/greengrass/out"
FETCH_MODULE = "panorama_cli.fleet.greengrass_fetch"
#: The fetch container's limits: memory (also its swap), processes, its /tmp.
FETCH_MEMORY = "256m"
FETCH_PIDS = 64
FETCH_TMP = "16m"


def config_pointer(*keys: str) -> str:
    """A JSON pointer into the component's configuration (``~`` and ``/`` escaped, RFC 6901)."""
    return "/" + "/".join(k.replace("~", "~0").replace("/", "~1") for k in keys)


def node_token(node: Container) -> model.Secret | None:
    """The node container's own token secret (None: a container without one)."""
    return next((s for s in node.secrets if s.kind == "node-token"), None)


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


def run_env(app: FleetApp) -> dict[str, str]:
    """Run's ``Setenv``: the work folder, artifacts folder and every configured value."""
    env = {ENV_WORK: "{work:path}", ENV_ARTIFACTS: "{artifacts:path}"}
    for index, (node, camera) in enumerate(app.cameras.items()):
        if camera.kind != "secret":  # a secret camera's source is in the secret only
            env[_camera_env(index)] = "{configuration:" + config_pointer("cameras", node) + "}"
    for index, node in enumerate(app.params):
        env[_param_env(index)] = "{configuration:" + config_pointer("parameters", node) + "}"
    env[ENV_SECRET_ARN] = "{configuration:" + config_pointer("secret", "arn") + "}"
    return env


def fetch_outputs(app: FleetApp) -> list[str]:
    """The fetcher's ``PATH=POINTER`` arguments: each secret file of the app (under
    ``secrets/`` or ``tokens/``) and the JSON pointer of its value in the app's secret."""
    outputs = []
    for node, camera in app.cameras.items():
        if camera.kind == "secret" and camera.secret is not None:
            path = f"secrets/{_secret_file(camera.secret.target)}"
            outputs.append(f"{path}={config_pointer('cameras', node)}")
    if any(s.kind == "control-key" for s in app.secrets):
        outputs.append(f"secrets/control.key={config_pointer('control', 'key')}")
    if any(s.kind == "serve-token" for s in app.secrets):
        outputs.append(f"secrets/serve-token={config_pointer('control', 'serve')}")
    for container in app.nodes:
        if node_token(container):
            pointer = config_pointer("control", "tokens", container.node)
            outputs.append(f"tokens/{container.name}.token={pointer}")
    return outputs


def fetch_container_name(component_name: str) -> str:
    """``<component>-secrets``: the one-shot container that fetches the app's secret."""
    return f"{component_name}-secrets"


def _fetch_words(app: FleetApp, component_name: str) -> list[str]:
    """``docker run`` of the fetcher (see :mod:`.greengrass`): the serve image's Python, as
    the component's own user (the one the nucleus lets use its IPC socket), no network."""
    from panorama_cli.fleet.runtime_image import PYTHON

    words = ["docker", "run", "--rm", "--name", _q(fetch_container_name(component_name))]
    for key, value in (
        (model.LABEL_APP, app.name),
        (model.LABEL_VERSION, app.version),
        (model.LABEL_ROLE, "secrets"),
        (LABEL_COMPONENT, component_name),
    ):
        words += ["--label", _q(f"{key}={value}")]
    words += ["--user", '"$(id -u):$(id -g)"', "--network", "none", "--read-only"]
    words += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
    words += ["--memory", FETCH_MEMORY, "--memory-swap", FETCH_MEMORY]
    words += ["--pids-limit", str(FETCH_PIDS), "--tmpfs", f"/tmp:size={FETCH_TMP}"]
    words += ["-e", ENV_SVCUID, "-e", f"{ENV_IPC_SOCKET}={FETCH_SOCKET}"]
    words += ["-v", f'"${ENV_IPC_SOCKET}":{FETCH_SOCKET}:ro']
    words += ["-v", f'"$secrets":{FETCH_OUT}/secrets', "-v", f'"$tokens":{FETCH_OUT}/tokens']
    words += ["--entrypoint", _q(PYTHON), _q(app.serve.image), "-m", FETCH_MODULE]
    words += ["--secret-id", f'"${ENV_SECRET_ARN}"', "--out", FETCH_OUT]
    words += [_q(output) for output in fetch_outputs(app)]
    return words


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
    """Options every container gets: name, labels, security (a user that is not root, no
    capabilities, no new privileges, Docker's default seccomp profile: the engine's own for a
    container that asks for no other), limits, volumes, working directory."""
    words = ["--name", _q(container_name(component_name, container))]
    words += _labels(app, component_name, container)
    if container.user is not None:
        words += ["--user", f"{container.user[0]}:{container.user[1]}"]
    words += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
    if container.read_only:
        words.append("--read-only")
    limits = container.limits
    for path in container.tmpfs:
        size = f":size={tmp_bytes(limits)}" if limits is not None else ""
        words += ["--tmpfs", _q(path + size)]
    if limits is not None:
        memory = docker_size(limits.memory)
        words += ["--memory", memory, "--memory-swap", memory]
        words += ["--pids-limit", str(limits.pids), "--log-driver", "json-file"]
        words += ["--log-opt", f"max-size={docker_size(log_file_bytes(limits))}"]
        words += ["--log-opt", f"max-file={LOG_FILES}"]
    if container.cpus:
        words += ["--cpus", cpus_text(container.cpus)]
    words += ["-w", _q(container.working_dir or "/")]
    for mount in container.mounts:
        spec = f"{volume_name(component_name, mount.volume)}:{mount.target}"
        words += ["-v", _q(spec + (":ro" if mount.read_only else ""))]
    return words


def run_script(app: FleetApp, component_name: str) -> str:
    """Run: volumes, secret files, the node containers (detached), then serve (foreground)."""
    names = [container_name(component_name, c) for c in app.containers]
    names.append(fetch_container_name(component_name))
    lines = [
        "set -eu",
        f"docker rm -f {' '.join(_q(n) for n in names)} >/dev/null 2>&1 || true",
    ]
    for volume in app.volumes:
        lines.append(f"docker volume create {_q(volume_name(component_name, volume))} >/dev/null")
    lines += [
        f'if [ -z "${ENV_SECRET_ARN}" ]; then',
        "  echo 'no secret in the configuration: deploy with panorama-cli deploy "
        "--target greengrass' >&2",
        "  exit 1",
        "fi",
        f'if [ -z "${{{ENV_IPC_SOCKET}:-}}" ] || [ -z "${{{ENV_SVCUID}:-}}" ]; then',
        "  echo 'no Greengrass IPC socket or SVCUID: Run must be started by the Greengrass "
        "nucleus' >&2",
        "  exit 1",
        "fi",
        f'secrets="${ENV_WORK}/secrets"',
        f'tokens="${ENV_WORK}/tokens"',
        'mkdir -p "$secrets" "$tokens"',
        'chmod 700 "$secrets" "$tokens"',
        # the fetcher writes each file 0644 in the 0700 folders: each is mounted on its own
        # into the one container that reads it, whose user owns no file of the box
        _words(_fetch_words(app, component_name)),
    ]
    for node in app.nodes:
        words = ["docker", "run", "-d", *_common(app, component_name, node)]
        words += ["--restart", "unless-stopped"]
        token = node_token(node)
        if token:
            words += ["-v", f'"$tokens"/{_q(node.name + ".token")}:{_q(token.target + ":ro")}']
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
        words += ["-p", _q(published(app.listen_host, host_port, container_port))]
    if serve.gpu:  # serve runs model nodes (a node that gets the GPU has its own --gpus)
        words += ["--gpus", "all"]
    for secret in serve.secrets:  # each file on its own: the 0700 folder is not the user's
        name = _secret_file(secret.target)
        words += ["-v", f'"${ENV_WORK}/secrets"/{_q(name)}:{_q(secret.target + ":ro")}']
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
