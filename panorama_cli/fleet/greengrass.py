"""The AWS IoT Greengrass v2 target: one component whose lifecycle runs the app's containers.

:func:`render` (a pure function of a :class:`~.model.FleetApp`) writes the component's recipe,
``recipes/<ComponentName>-<semver>.json``, in the JSON form of the *AWS IoT Greengrass
component recipe reference* (Greengrass v2 developer guide, ``RecipeFormatVersion``
``2020-01-25``), when the app has secret cameras ``secrets/cameras.json`` (mode 0600):
``{camera node: URL}``, and ``secrets/control.json`` (mode 0600): ``{"key": control key,
"tokens": {node: its token}, "serve": serve's login token}``. At deployment
:mod:`.greengrass_deploy` puts both into an AWS Secrets Manager secret, one per component and
deployment target (:mod:`.greengrass_secret`), which the ``aws.greengrass.SecretManager``
component brings to the core devices; neither the recipe nor a deployment's configuration ever
holds a credential.

The recipe:

* depends on ``aws.greengrass.DockerApplicationManager`` (HARD, ``>=2.0.0``), which pulls the
  ``docker:`` artifacts and needs Docker on the core device; the system user that runs the
  component must be allowed to use Docker (the developer guide's "Run a Docker container":
  in the ``docker`` group); and on ``aws.greengrass.SecretManager`` (HARD, ``>=2.0.0 <3.0.0``),
  which keeps the app's secret on the device (encrypted) and answers IPC ``GetSecretValue``.
* ``ComponentConfiguration.DefaultConfiguration``: ``cameras`` ``{node: source}`` of the
  cameras without credentials and ``parameters`` ``{node: value}``, so each deployment (a
  site) can merge its own; ``secret`` ``{"arn": ARN}`` (the app's secret) and
  ``accessControl`` allowing ``aws.greengrass#GetSecretValue`` on that ARN only (policy
  ``<ComponentName>:secrets:1`` of the IPC service ``aws.greengrass.SecretManager``). Both
  ARNs are :data:`SECRET_ARN_PLACEHOLDER` in the exported recipe; deploy fills them with the
  secret of the target it creates the version for (:func:`fill_secret`), and each deployment
  merges the two entries naming its own target's secret (:func:`secret_configuration`).
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
  - ``Run``: removes leftovers of a previous run, creates the volumes
    (``<component>-<volume>``), then fetches the app's secret: a one-shot container of the
    serve image (``<component>-secrets``: the component's own user, so that it may use the
    nucleus' IPC socket, bind-mounted read-only with ``SVCUID`` passed by name; no network,
    read-only root, no capabilities) runs :mod:`.greengrass_fetch`, which asks the nucleus
    for the secret and writes each secret camera's source into
    ``{work:path}/secrets/<secret name>``, the control key into
    ``{work:path}/secrets/control.key`` and serve's login token into
    ``{work:path}/secrets/serve-token`` (never on a docker command line; each file mounted on
    its own into serve's ``/run/secrets``), each node's token into
    ``{work:path}/tokens/<node>.token`` mounted into that node's container only as
    ``/run/secrets/node.token``. The files are 0644 in folders of mode 0700: the containers
    run as users that are not root and own no file of the box, so a 0600 file would be
    unreadable to them, and no other user of the box can enter the folders. It starts each
    node container detached (``--restart unless-stopped``), then runs serve in the foreground
    (``exec docker run --rm``) so that the nucleus sees serve's life as the component's;
    every container as a user that is not root (:data:`~.model.SERVE_UID`, node ``i``
    ``NODE_UID_BASE + i``), read-only root, no capabilities, no new privileges, its limits
    (``--memory`` and ``--memory-swap``: no swap beyond it, ``--pids-limit``, ``--cpus``, the
    engine's log in ``json-file`` files of bounded size, a ``/tmp`` tmpfs of bounded size);
    serve's ports published on the ``--listen`` host only (``-p HOST:PORT:8765``). Without a
    secret ARN in the configuration (not deployed by ``panorama-cli deploy``), or without
    the nucleus' IPC socket, Run stops with a message; so does a fetch that fails (the
    fetcher's one line is in the component's log).
  - ``Shutdown``: ``docker stop`` and ``docker rm`` of every container of the component; the
    volumes (state, storage, logs) stay.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from panorama_cli.fleet.greengrass_scripts import (
    ENV_ARTIFACTS,
    ENV_CAMERA,
    ENV_PARAM,
    ENV_SECRET_ARN,
    ENV_WORK,
    LABEL_COMPONENT,
    SHUTDOWN_WAIT_S,
    STOP_GRACE_S,
    config_pointer,
    container_name,
    install_script,
    run_env,
    run_script,
    shutdown_script,
    volume_name,
)
from panorama_cli.fleet.model import FleetApp, OutFile

log = logging.getLogger(__name__)

#: Stands for the S3 bucket in the exported recipe's artifact URIs; deploy replaces it.
BUCKET_PLACEHOLDER = "PANORAMA_CLI_BUCKET"
RECIPE_FORMAT_VERSION = "2020-01-25"
PUBLISHER = "panorama-cli"
DOCKER_MANAGER = "aws.greengrass.DockerApplicationManager"
DOCKER_MANAGER_VERSION = ">=2.0.0"
SECRET_MANAGER = "aws.greengrass.SecretManager"
SECRET_MANAGER_VERSION = ">=2.0.0 <3.0.0"
#: The IPC operation the component may call on its own secret.
GET_SECRET_VALUE = "aws.greengrass#GetSecretValue"
#: Stands for the secret's ARN in the exported recipe; deploy fills it (:func:`fill_secret`).
SECRET_ARN_PLACEHOLDER = "PANORAMA_CLI_SECRET_ARN"
#: The bundle's secret camera sources, ``{camera node: URL}`` (mode 0600).
SECRETS_FILE = "secrets/cameras.json"
#: The bundle's control key and node tokens, ``{"key": hex, "tokens": {node: token}}`` (0600).
CONTROL_FILE = "secrets/control.json"
RECIPES_DIR = "recipes"
ARTIFACTS_DIR = "artifacts"
#: Greengrass architecture names (the recipe's ``Platform.architecture``) by Docker platform.
ARCHITECTURES = {"linux/amd64": "amd64", "linux/arm64": "aarch64"}
#: Longest component name the service takes (ComponentNameString: 1..128).
MAX_NAME = 128
#: Seconds the Install step may take (docker load of large images), and Shutdown.
INSTALL_TIMEOUT_S = 1800
SHUTDOWN_TIMEOUT_S = 120


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
        ``recipes/<ComponentName>-<semver>.json``, ``secrets/control.json`` (private) and, with
        secret cameras, ``secrets/cameras.json`` (private).

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
    control = control_configuration(app)
    if control["key"]:
        body = json.dumps(control, indent=2, sort_keys=True) + "\n"
        files.append(OutFile(CONTROL_FILE, body.encode("utf-8"), private=True))
    log.debug("greengrass: %s %s, %d file(s)", component_name, app.semver, len(files))
    return files


def control_configuration(app: FleetApp) -> dict[str, Any]:
    """``{"key": the control key's hex, "tokens": {node: its token}, "serve": serve's login
    token}`` ("" when the app has no control key or token: the recipe's default)."""
    key = next((s.value for s in app.secrets if s.kind == "control-key"), "")
    tokens = {s.node: s.value for node in app.nodes for s in node.secrets if s.kind == "node-token"}
    serve = next((s.value for s in app.secrets if s.kind == "serve-token"), "")
    return {"key": key, "tokens": tokens, "serve": serve}


def recipe_of(
    app: FleetApp,
    *,
    component_name: str,
    archives: Mapping[str, ImageArchive] | None,
    file_digests: Mapping[str, str],
) -> dict[str, Any]:
    """The recipe as a JSON-ready dict (see :func:`render`)."""
    cameras = {
        node: camera.value for node, camera in app.cameras.items() if camera.kind != "secret"
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
        "Run": {"Script": run_script(app, component_name), "Setenv": run_env(app)},
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
            DOCKER_MANAGER: {
                "VersionRequirement": DOCKER_MANAGER_VERSION,
                "DependencyType": "HARD",
            },
            SECRET_MANAGER: {
                "VersionRequirement": SECRET_MANAGER_VERSION,
                "DependencyType": "HARD",
            },
        },
        "ComponentConfiguration": {
            "DefaultConfiguration": {
                "cameras": cameras,
                "parameters": dict(app.params),
                **secret_configuration(component_name, SECRET_ARN_PLACEHOLDER),
            }
        },
        "Manifests": [
            {
                "Platform": {"os": "linux", "architecture": ARCHITECTURES[app.platform]},
                "Artifacts": artifacts,
                "Lifecycle": lifecycle,
            }
        ],
    }


def secret_configuration(component_name: str, arn: str) -> dict[str, Any]:
    """``{"secret": {"arn": arn}, "accessControl": ...}``: where the component finds its secret
    and its permission to read that secret (and no other) over IPC."""
    policy = {
        "policyDescription": "Lets the component read its own secret (camera URLs, keys).",
        "operations": [GET_SECRET_VALUE],
        "resources": [arn],
    }
    return {
        "secret": {"arn": arn},
        "accessControl": {SECRET_MANAGER: {f"{component_name}:secrets:1": policy}},
    }


def fill_secret(recipe: dict[str, Any], arn: str) -> dict[str, Any]:
    """``recipe`` (a copy) with its secret entries naming ``arn``.

    Raises:
        ValueError: the recipe has no ``secret`` entry (exported by an older panorama-cli).
    """
    import copy

    filled = copy.deepcopy(recipe)
    default = (filled.get("ComponentConfiguration") or {}).get("DefaultConfiguration") or {}
    if not isinstance(default.get("secret"), dict):
        raise ValueError(f"recipe of {recipe.get('ComponentName')} has no secret entry")
    default.update(secret_configuration(str(filled["ComponentName"]), arn))
    return filled


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


__all__ = [
    "ENV_ARTIFACTS",
    "ENV_CAMERA",
    "ENV_PARAM",
    "ENV_SECRET_ARN",
    "ENV_WORK",
    "LABEL_COMPONENT",
    "SHUTDOWN_WAIT_S",
    "STOP_GRACE_S",
    "ImageArchive",
    "config_pointer",
    "container_name",
    "install_script",
    "run_script",
    "shutdown_script",
    "volume_name",
]
