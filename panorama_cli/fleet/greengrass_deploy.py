"""Deploy an exported Greengrass v2 bundle: S3 artifacts, a component version, a deployment.

The bundle is what :func:`panorama_cli.fleet.greengrass.render` and export wrote::

    recipes/<ComponentName>-<semver>.json     the recipe (artifact URIs on s3://PANORAMA_CLI_BUCKET)
    artifacts/<ComponentName>/<semver>/*.tar  image archives (no --registry)
    cameras/<file>                            camera files (or under artifacts/.../<semver>/)
    secrets/cameras.json                      {camera node: URL}, mode 0600 (secret cameras)
    secrets/control.json                      {"key": hex, "tokens": {node: token},
                                              "serve": token}, mode 0600 (required)

:func:`deploy`, per recipe:

1. each ``s3://PANORAMA_CLI_BUCKET/<key>`` artifact of the recipe is the bundle file ``<key>``
   (or, for ``<key>`` = ``artifacts/<name>/<semver>/<rest>``, the bundle file ``<rest>``); its
   SHA-256 is computed and the artifact gets ``Digest``/``Algorithm`` when it lacks them. It
   is uploaded to ``s3://<bucket>/<key>`` (boto3's managed transfer, multipart for big files)
   with the SHA-256 in the object's metadata (``x-amz-meta-sha256``), unless HeadObject shows
   an object with that SHA-256 there already (or, without the metadata, a single-part ETag
   equal to the file's MD5).
2. both secret files become the secret of the component and target in AWS Secrets Manager,
   ``panorama-cli/<ComponentName>/<thing|thinggroup>/<name>`` (:mod:`.greengrass_secret`; each
   site its own cameras): created, or given a new version when its value changed (the same
   secret and ARN; the session's region, which must be the core devices').
3. the bucket placeholder is replaced by ``bucket`` and the secret placeholders by the
   secret's ARN (:func:`~.greengrass.fill_secret`: the recipe's default names the secret of
   the target the version was first deployed to; every deployment merges its own target's);
   DescribeComponent on the version's ARN
   (``arn:<partition>:greengrass:<region>:<account>:components:<name>:versions:<version>``,
   partition, region and account taken from ``target_arn``): absent -> CreateComponentVersion
   with the recipe as ``inlineRecipe`` (a ConflictException means it appeared meanwhile).
   A version in state FAILED is an error.
4. CreateDeployment on ``target_arn`` (an IoT thing or thing group) with every component at
   its version, ``configurationUpdate.merge`` ``{"secret": {"arn": ARN}, "accessControl":
   ...}`` (:func:`~.greengrass.secret_configuration`: a secret made again since the version
   was created still works) and ``reset`` of ``/control`` and the secret cameras'
   ``/cameras/<node>`` (where older versions merged credentials: the device's configuration
   loses them), plus ``aws.greengrass.SecretManager`` at its newest version with
   ``cloudSecrets`` ``[{"arn": ARN}]``. No credential is in the recipe or the deployment
   (GetDeployment shows only the ARN); the core devices' role needs
   ``secretsmanager:GetSecretValue`` on the secret (deploy says so).
5. with ``wait``: GetDeployment and, for each core device of the target (the thing, or
   ListCoreDevices of the group), ListEffectiveDeployments, with exponential backoff
   (:func:`panorama_cli.cloud.polling.poll`), until every device's
   ``coreDeviceExecutionStatus`` is SUCCEEDED or COMPLETED (success) or one is FAILED,
   CANCELED, TIMED_OUT or REJECTED (a :class:`UserError` with its ``reason`` and
   ``statusDetails``).

Operation and member names are the AWS IoT Greengrass V2 API's (2020-11-30), as in botocore's
``greengrassv2`` model.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from panorama_cli.cloud.aws.session import make_client, translate_client_error
from panorama_cli.cloud.polling import poll
from panorama_cli.errors import UserError
from panorama_cli.fleet import greengrass, greengrass_secret
from panorama_cli.fleet.greengrass_artifacts import (
    Artifact,
    check_bucket,
    hashed,
    unchanged,
    upload,
)
from panorama_cli.fleet.greengrass_watch import Notify, call, wait_deployment

log = logging.getLogger(__name__)

#: Seconds to wait for a new component version to become DEPLOYABLE.
COMPONENT_TIMEOUT_S = 300.0


@dataclass
class _Component:
    name: str
    version: str
    recipe_file: Path
    recipe: dict[str, Any]
    artifacts: list[Artifact] = field(default_factory=list)


def deploy(
    bundle_dir: Path,
    session: Any,
    *,
    bucket: str,
    target_arn: str,
    wait: bool = False,
    poll_s: float = 5.0,
    timeout_s: float = 1800.0,
    notify: Notify | None = None,
) -> dict[str, Any]:
    """Upload the bundle's artifacts, create its component version(s), deploy to the target.

    Args:
        bundle_dir: the export folder (``recipes/``, ``artifacts/``, ``secrets/``).
        session: a ``boto3.Session`` (:func:`~panorama_cli.cloud.aws.session.make_session`).
        bucket: the S3 bucket for the artifacts (same region as the core devices' access).
        target_arn: ``arn:aws:iot:<region>:<account>:thing/<name>`` or ``...:thinggroup/<name>``.
        wait: poll until the deployment ended on every core device of the target.
        poll_s: first wait between polls, seconds (doubling up to 30 s).
        timeout_s: longest wait, seconds.
        notify: called with one line per step (progress), or None.

    Returns:
        ``{"deploymentId", "targetArn", "components": [{"name", "version", "arn",
        "created", "secret": {"arn", "name", "action"}}], "secretManagerVersion",
        "uploaded": [keys], "skipped": [keys], "uploadedBytes", "status", "devices": {thing
        name: coreDeviceExecutionStatus}}``; ``status`` is ``SUBMITTED`` without ``wait``,
        else ``SUCCEEDED``; a secret's ``action`` is ``created``, ``updated`` or
        ``unchanged``.

    Raises:
        UserError: a bundle problem (one exported by an older panorama-cli, without
            ``secrets/control.json``), a missing bucket, access denied, a recipe the service
            rejects, an unreachable endpoint, a failed deployment or a timeout.
    """
    say = notify or (lambda line: None)
    partition, region, account, core_devices = _parse_target(target_arn)
    components = _read_bundle(bundle_dir)
    secrets = _read_secrets(bundle_dir)
    control = _read_control(bundle_dir)
    if not control:
        raise UserError(
            f"no {greengrass.CONTROL_FILE} in {bundle_dir}",
            hint="export the application again into this folder",
        )
    value = greengrass_secret.secret_value(secrets, control)
    s3 = make_client(session, "s3")
    gg = make_client(session, "greengrassv2")
    sm = make_client(session, "secretsmanager")

    check_bucket(s3, bucket)
    uploaded: list[str] = []
    skipped: list[str] = []
    sent = 0
    for component in components:
        for artifact in component.artifacts:
            if unchanged(s3, bucket, artifact):
                skipped.append(artifact.key)
                continue
            say(f"uploading {artifact.key} ({artifact.size} bytes) to s3://{bucket}")
            upload(s3, bucket, artifact)
            uploaded.append(artifact.key)
            sent += artifact.size
    if uploaded or skipped:
        say(f"artifacts: {len(uploaded)} uploaded ({sent} bytes), {len(skipped)} unchanged")

    created: list[dict[str, Any]] = []
    secret_arns: list[str] = []
    spec: dict[str, Any] = {}
    for component in components:
        name = greengrass_secret.secret_name(component.name, target_arn)
        secret = greengrass_secret.ensure_secret(sm, name, value, component.name, target_arn)
        say(f"secret {secret.name} {secret.action} ({secret.arn})")
        secret_arns.append(secret.arn)
        component.recipe = greengrass.fill_secret(component.recipe, secret.arn)
        arn = (
            f"arn:{partition}:greengrass:{region}:{account}:components:"
            f"{component.name}:versions:{component.version}"
        )
        made = _ensure_component(gg, component, bucket, arn, poll_s, say)
        created.append(
            {"name": component.name, "version": component.version, "arn": arn, "created": made,
             "secret": {"arn": secret.arn, "name": secret.name, "action": secret.action}}
        )  # fmt: skip
        spec[component.name] = {
            "componentVersion": component.version,
            "configurationUpdate": configuration_update(component.name, secret.arn, secrets),
        }
    manager = greengrass_secret.secret_manager_version(gg, partition, region)
    spec[greengrass_secret.SECRET_MANAGER] = {
        "componentVersion": manager,
        "configurationUpdate": {
            "merge": json.dumps({"cloudSecrets": [{"arn": arn} for arn in secret_arns]})
        },
    }
    say(
        "the core devices' role (token exchange role) must allow secretsmanager:GetSecretValue "
        f"on {', '.join(secret_arns)}"
    )
    name = "panorama-cli " + ", ".join(f"{c.name}@{c.version}" for c in components)
    response = call(
        gg.create_deployment,
        "create the deployment",
        targetArn=target_arn,
        deploymentName=name[:256],
        components=spec,
    )
    deployment_id = str(response["deploymentId"])
    say(f"deployment {deployment_id} created for {target_arn}")
    result: dict[str, Any] = {
        "deploymentId": deployment_id,
        "targetArn": target_arn,
        "components": created,
        "secretManagerVersion": manager,
        "uploaded": uploaded,
        "skipped": skipped,
        "uploadedBytes": sent,
        "status": "SUBMITTED",
        "devices": {},
    }
    if wait:
        devices = wait_deployment(
            gg, deployment_id, target_arn, core_devices, poll_s, timeout_s, say
        )
        result["status"] = "SUCCEEDED"
        result["devices"] = devices
    return result


# -- the bundle -------------------------------------------------------------------------------


def _parse_target(target_arn: str) -> tuple[str, str, str, str | None]:
    """(partition, region, account, thing name or None for a thing group)."""
    parts = target_arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "iot" or not parts[4].isdigit():
        raise UserError(
            f"not an AWS IoT thing or thing group ARN: {target_arn!r}",
            hint="use arn:aws:iot:REGION:ACCOUNT:thing/NAME or ...:thinggroup/NAME",
        )
    kind, _, name = parts[5].partition("/")
    if kind not in ("thing", "thinggroup") or not name:
        raise UserError(
            f"not an AWS IoT thing or thing group ARN: {target_arn!r}",
            hint="use arn:aws:iot:REGION:ACCOUNT:thing/NAME or ...:thinggroup/NAME",
        )
    return parts[1], parts[3], parts[4], (name if kind == "thing" else None)


def _read_bundle(bundle_dir: Path) -> list[_Component]:
    recipes_dir = bundle_dir / greengrass.RECIPES_DIR
    files = sorted(recipes_dir.glob("*.json")) if recipes_dir.is_dir() else []
    if not files:
        raise UserError(
            f"no Greengrass recipe in {recipes_dir}",
            hint="export the application with --target greengrass first",
        )
    components: dict[str, _Component] = {}
    for path in files:
        try:
            recipe = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read the recipe {path}: {exc}") from exc
        if not isinstance(recipe, dict):
            raise UserError(f"{path}: a recipe must be a JSON object")
        name, version = recipe.get("ComponentName"), recipe.get("ComponentVersion")
        if not isinstance(name, str) or not isinstance(version, str):
            raise UserError(f"{path}: ComponentName and ComponentVersion must be strings")
        if name in components:
            raise UserError(
                f"two recipes of component {name} in {recipes_dir}",
                hint="keep only the version to deploy (export into an empty folder)",
            )
        default = (recipe.get("ComponentConfiguration") or {}).get("DefaultConfiguration")
        if not isinstance(default, dict) or not isinstance(default.get("secret"), dict):
            raise UserError(
                f"{path}: exported by an older panorama-cli, which put the credentials into "
                "the deployment's configuration",
                hint="export the application again with this panorama-cli",
            )
        component = _Component(name, version, path, recipe)
        component.artifacts = _artifacts(bundle_dir, component)
        components[name] = component
    return list(components.values())


def _artifacts(bundle_dir: Path, component: _Component) -> list[Artifact]:
    """The recipe's placeholder-bucket artifacts as local files (Digest filled in)."""
    prefix = f"s3://{greengrass.BUCKET_PLACEHOLDER}/"
    folder = greengrass.artifact_prefix(component.name, component.version) + "/"
    found: list[Artifact] = []
    for manifest in component.recipe.get("Manifests") or []:
        for entry in manifest.get("Artifacts") or []:
            uri = str(entry.get("Uri", ""))
            if not uri.startswith(prefix):
                continue
            key = uri[len(prefix) :]
            path = bundle_dir / key
            if not path.is_file() and key.startswith(folder):
                path = bundle_dir / key[len(folder) :]
            if not path.is_file():
                raise UserError(
                    f"{component.recipe_file.name}: artifact {key} is not in {bundle_dir}",
                    hint="export the application again into this folder",
                )
            artifact = hashed(key, path)
            digest = base64.b64encode(bytes.fromhex(artifact.sha256)).decode("ascii")
            if entry.get("Digest") and entry["Digest"] != digest:
                raise UserError(
                    f"{path} does not match its digest in {component.recipe_file.name}",
                    hint="the bundle changed after export: export it again",
                )
            entry["Digest"], entry["Algorithm"] = digest, "SHA-256"
            if all(a.key != key for a in found):
                found.append(artifact)
    return found


def _read_secrets(bundle_dir: Path) -> dict[str, str]:
    path = bundle_dir / greengrass.SECRETS_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise UserError(f"{path}: expected {{camera node: URL}}")
    return {str(k): v for k, v in data.items()}


def _read_control(bundle_dir: Path) -> dict[str, Any]:
    """``secrets/control.json`` as ``{"key": str, "tokens": {node: str}, "serve": str}`` ({}
    when absent; ``serve`` "" in a bundle exported before serve had a token).

    Raises:
        UserError: unreadable, or not of that shape.
    """
    path = bundle_dir / greengrass.CONTROL_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from exc
    tokens = data.get("tokens") if isinstance(data, dict) else None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("key"), str)
        or not isinstance(tokens, dict)
        or not all(isinstance(v, str) for v in tokens.values())
        or not isinstance(data.get("serve", ""), str)
    ):
        raise UserError(
            f'{path}: expected {{"key": KEY, "tokens": {{node: TOKEN}}}}',
            hint="export the application again into this folder",
        )
    tokens = {str(k): v for k, v in tokens.items()}
    return {"key": data["key"], "tokens": tokens, "serve": data.get("serve", "")}


def configuration_update(
    component_name: str, secret_arn: str, secrets: dict[str, str]
) -> dict[str, Any]:
    """The deployment's ``configurationUpdate`` of the app's component: ``merge`` of
    :func:`~.greengrass.secret_configuration` (JSON text) and ``reset`` of ``/control`` and
    ``/cameras/<node>`` of each secret camera (older versions merged credentials there)."""
    merge = greengrass.secret_configuration(component_name, secret_arn)
    reset = [greengrass.config_pointer("control")]
    reset += [greengrass.config_pointer("cameras", node) for node in sorted(secrets)]
    return {"merge": json.dumps(merge, sort_keys=True), "reset": reset}


# -- Greengrass -------------------------------------------------------------------------------


def _error_code(exc: Any) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _describe(gg: Any, arn: str) -> dict[str, Any] | None:
    import botocore.exceptions

    try:
        response: dict[str, Any] = gg.describe_component(arn=arn)
    except botocore.exceptions.ClientError as exc:
        if _error_code(exc) == "ResourceNotFoundException":
            return None
        cause = translate_client_error(exc)
        raise UserError(
            f"cannot look up component {arn}: {cause.message}", hint=cause.hint
        ) from exc
    except botocore.exceptions.BotoCoreError as exc:
        cause = translate_client_error(exc)
        raise UserError(
            f"cannot look up component {arn}: {cause.message}", hint=cause.hint
        ) from exc
    return response


def _state_problem(status: dict[str, Any] | None) -> str | None:
    status = status or {}
    if status.get("componentState") != "FAILED":
        return None
    errors = status.get("errors") or {}
    detail = "; ".join(f"{k}: {v}" for k, v in sorted(errors.items()))
    return " ".join(f"{status.get('message') or 'FAILED'} {detail}".split())


def _ensure_component(
    gg: Any, component: _Component, bucket: str, arn: str, poll_s: float, say: Notify
) -> bool:
    """The component version exists and is deployable; True when this call created it."""
    import botocore.exceptions

    label = f"{component.name}@{component.version}"
    existing = _describe(gg, arn)
    created = False
    if existing is None:
        text = json.dumps(component.recipe, indent=2, sort_keys=True)
        text = text.replace(f"s3://{greengrass.BUCKET_PLACEHOLDER}/", f"s3://{bucket}/")
        try:
            gg.create_component_version(inlineRecipe=text.encode("utf-8"))
        except botocore.exceptions.ClientError as exc:
            code = _error_code(exc)
            if code == "ConflictException":
                log.debug("%s appeared meanwhile: %s", label, exc)
            elif code == "ValidationException":
                message = str(exc.response.get("Error", {}).get("Message", "")).strip()
                raise UserError(
                    f"Greengrass rejected the recipe {component.recipe_file.name}: "
                    + " ".join(message.split()),
                    hint="see the Greengrass v2 developer guide's component recipe reference",
                ) from exc
            else:
                cause = translate_client_error(exc)
                raise UserError(
                    f"cannot create component {label}: {cause.message}", hint=cause.hint
                ) from exc
        except botocore.exceptions.BotoCoreError as exc:
            cause = translate_client_error(exc)
            raise UserError(
                f"cannot create component {label}: {cause.message}", hint=cause.hint
            ) from exc
        else:
            created = True
            say(f"component {label} created")
        existing = _describe(gg, arn)
    else:
        say(f"component {label} exists already")

    def pending(info: dict[str, Any] | None) -> bool:
        state = ((info or {}).get("status") or {}).get("componentState")
        return state in ("REQUESTED", "INITIATED")

    if pending(existing):
        existing, _ = poll(
            lambda: _describe(gg, arn),
            lambda info: not pending(info),
            interval=min(poll_s, 5.0),
            timeout=COMPONENT_TIMEOUT_S,
        )
    problem = _state_problem((existing or {}).get("status"))
    if problem:
        raise UserError(
            f"component {label} cannot be deployed: {problem}",
            hint="fix the cause, then delete that version (aws greengrassv2 delete-component "
            f"--arn {arn}) and deploy again",
        )
    return created
