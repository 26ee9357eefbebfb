"""The Greengrass bundle's credentials in AWS Secrets Manager: what ``deploy --target
greengrass`` keeps there, and the ``aws.greengrass.SecretManager`` version it deploys.

One secret per component (an application) and deployment target (an IoT thing or thing
group: a site, with its own cameras), named ``panorama-cli/<ComponentName>/<thing|thinggroup>/
<name>`` (:func:`secret_name`), holds every credential of the bundle as one JSON object
(:func:`secret_value`): the secret camera URLs (``secrets/cameras.json``), the control key, each
node's token and serve's login token (``secrets/control.json``). :func:`ensure_secret`
creates it (CreateSecret) or, when its value changed, adds a version (PutSecretValue: the same
secret and ARN, never a second one). The core devices get it through the
``aws.greengrass.SecretManager`` component (its ``cloudSecrets`` list, set by the deployment)
and the component reads it over IPC (:mod:`.greengrass_fetch`); no credential is ever in a
recipe or a deployment's configuration.

Operation and member names are the Secrets Manager API's (2017-10-17) and the Greengrass V2
API's (2020-11-30), as in botocore's models.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from panorama_cli.cloud.aws.session import translate_client_error
from panorama_cli.errors import UserError

log = logging.getLogger(__name__)

#: Every secret panorama-cli makes is named under this prefix (an IAM policy can name
#: ``arn:aws:secretsmanager:REGION:ACCOUNT:secret:panorama-cli/*``).
SECRET_PREFIX = "panorama-cli/"
#: Longest SecretString Secrets Manager keeps, bytes.
MAX_SECRET_BYTES = 65536
SECRET_MANAGER = "aws.greengrass.SecretManager"
#: The tags naming the component and the deployment target a secret belongs to.
TAG_COMPONENT = "panorama-cli:component"
TAG_TARGET = "panorama-cli:target"


@dataclass(frozen=True)
class SecretResult:
    """What :func:`ensure_secret` did.

    Attributes:
        arn: the secret's ARN (``arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-xxxxxx``).
        name: its name.
        action: ``"created"``, ``"updated"`` (a new version) or ``"unchanged"``.
    """

    arn: str
    name: str
    action: str


def secret_name(component_name: str, target_arn: str) -> str:
    """``panorama-cli/<ComponentName>/<thing|thinggroup>/<name>``: the component's secret for
    the deployment target ``target_arn`` (``arn:aws:iot:REGION:ACCOUNT:thing/NAME`` or
    ``...:thinggroup/NAME``). A thing's name may hold ``:``, which no secret name may: it
    becomes ``.``, which no thing name holds (so two targets never share a name).

    Raises:
        ValueError: ``target_arn`` is not a thing or thing group ARN.
    """
    kind, _, name = target_arn.split(":", 5)[-1].partition("/")
    if kind not in ("thing", "thinggroup") or not name:
        raise ValueError(f"not an AWS IoT thing or thing group ARN: {target_arn!r}")
    return f"{SECRET_PREFIX}{component_name}/{kind}/{name.replace(':', '.')}"


def secret_value(cameras: dict[str, str], control: dict[str, Any]) -> str:
    """The secret's text: ``{"cameras": {node: URL}, "control": {"key": hex, "tokens":
    {node: token}, "serve": token}}`` (compact JSON, keys sorted: the same bundle gives the same
    text).

    Raises:
        UserError: the text is longer than :data:`MAX_SECRET_BYTES`.
    """
    document = {
        "cameras": dict(cameras),
        "control": {
            "key": control.get("key", ""),
            "tokens": dict(control.get("tokens") or {}),
            "serve": control.get("serve", ""),
        },
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    if len(text.encode("utf-8")) > MAX_SECRET_BYTES:
        raise UserError(
            f"the bundle's credentials take more than {MAX_SECRET_BYTES} bytes (a Secrets "
            "Manager secret's limit)",
            hint="use fewer or shorter camera URLs",
        )
    return text


def _code(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


#: What the deploying identity needs on its secrets (said when Secrets Manager denies one).
DENIED_HINT = (
    "the deploying identity needs secretsmanager:CreateSecret, DescribeSecret, GetSecretValue "
    f"and PutSecretValue on arn:aws:secretsmanager:*:*:secret:{SECRET_PREFIX}*"
)


def _call(
    operation: Any,
    what: str,
    *,
    allow: tuple[str, ...] = (),
    denied_hint: str | None = None,
    **params: Any,
) -> dict[str, Any] | None:
    """One AWS call; None when it fails with an error code in ``allow``, any other error as a
    one-line :class:`UserError` naming ``what`` failed (``denied_hint`` as the hint of an
    access denied)."""
    import botocore.exceptions

    try:
        response: dict[str, Any] = operation(**params)
    except botocore.exceptions.ClientError as exc:
        if _code(exc) in allow:
            return None
        cause = translate_client_error(exc)
        denied = _code(exc) in ("AccessDeniedException", "AccessDenied")
        hint = denied_hint if denied and denied_hint else cause.hint
        raise UserError(f"cannot {what}: {cause.message}", hint=hint) from exc
    except botocore.exceptions.BotoCoreError as exc:
        cause = translate_client_error(exc)
        raise UserError(f"cannot {what}: {cause.message}", hint=cause.hint) from exc
    return response


def ensure_secret(
    sm: Any, name: str, value: str, component_name: str, target_arn: str = ""
) -> SecretResult:
    """The secret ``name`` holds ``value``: created when absent, a new version when its
    current value differs, untouched when equal.

    Args:
        sm: a ``secretsmanager`` client.
        name: from :func:`secret_name`.
        value: from :func:`secret_value`.
        component_name: the component the secret belongs to (its tag and description).
        target_arn: the deployment target it is for (a tag; none when "").

    Raises:
        UserError: access denied, a secret scheduled for deletion, any other AWS error.
    """
    missing = ("ResourceNotFoundException",)
    found = _call(sm.describe_secret, f"look up secret {name}", allow=missing,
                  denied_hint=DENIED_HINT, SecretId=name)  # fmt: skip
    if found is None:
        made = _call(
            sm.create_secret,
            f"create secret {name}",
            allow=("ResourceExistsException",),
            denied_hint=DENIED_HINT,
            Name=name,
            Description=f"panorama-cli: credentials of Greengrass component {component_name}",
            SecretString=value,
            Tags=[
                {"Key": TAG_COMPONENT, "Value": component_name},
                *([{"Key": TAG_TARGET, "Value": target_arn}] if target_arn else []),
            ],
        )
        if made is not None:
            log.debug("secret %s created", name)
            return SecretResult(str(made["ARN"]), name, "created")
        # made by someone else meanwhile: update it
        found = _call(sm.describe_secret, f"look up secret {name}", denied_hint=DENIED_HINT,
                      SecretId=name)  # fmt: skip
        assert found is not None
    arn = str(found["ARN"])
    if found.get("DeletedDate"):
        raise UserError(
            f"secret {name} is scheduled for deletion",
            hint=f"restore it (aws secretsmanager restore-secret --secret-id {arn}), or wait "
            "until it is deleted",
        )
    current = _call(sm.get_secret_value, f"read secret {name}", allow=missing,
                    denied_hint=DENIED_HINT, SecretId=arn)  # fmt: skip
    if current is not None and current.get("SecretString") == value:
        return SecretResult(arn, name, "unchanged")
    _call(sm.put_secret_value, f"update secret {name}", denied_hint=DENIED_HINT, SecretId=arn,
          SecretString=value)  # fmt: skip
    log.debug("secret %s: new version", name)
    return SecretResult(arn, name, "updated")


def _version_key(text: str) -> tuple[int, Any]:
    from packaging.version import InvalidVersion, Version

    try:
        version = Version(text)
    except InvalidVersion:
        return (0, Version("0"))
    return (0 if version.is_prerelease else 1, version)


def secret_manager_version(gg: Any, partition: str, region: str) -> str:
    """The newest version of the public ``aws.greengrass.SecretManager`` component in
    ``region`` (ListComponentVersions of ``arn:<partition>:greengrass:<region>:aws:components:
    aws.greengrass.SecretManager``; the console picks the same one).

    Raises:
        UserError: the call fails, or the region has no version.
    """
    arn = f"arn:{partition}:greengrass:{region}:aws:components:{SECRET_MANAGER}"
    versions: list[str] = []
    token: str | None = None
    while True:
        params: dict[str, Any] = {"arn": arn}
        if token:
            params["nextToken"] = token
        page = _call(gg.list_component_versions, f"list the versions of {SECRET_MANAGER}", **params)
        assert page is not None
        versions += [str(v["componentVersion"]) for v in page.get("componentVersions") or []]
        token = page.get("nextToken")
        if not token:
            break
    if not versions:
        raise UserError(f"no version of {SECRET_MANAGER} in {region}")
    return max(versions, key=_version_key)
