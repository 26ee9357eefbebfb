"""Greengrass V2 calls of ``deploy --target greengrass``: one call with its errors as one line,
and the wait for a deployment to finish on its core devices (``--wait``).

Operation and member names are the AWS IoT Greengrass V2 API's (2020-11-30), as in botocore's
``greengrassv2`` model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from panorama_cli.cloud.aws.session import translate_client_error
from panorama_cli.cloud.polling import poll
from panorama_cli.errors import UserError

log = logging.getLogger(__name__)

Notify = Callable[[str], None]

#: Device statuses (EffectiveDeploymentExecutionStatus) that end a deployment well / badly.
DEVICE_SUCCESS = frozenset({"SUCCEEDED", "COMPLETED"})
DEVICE_FAILURE = frozenset({"FAILED", "CANCELED", "TIMED_OUT", "REJECTED"})
#: GetDeployment statuses that end a deployment badly (DeploymentStatus).
DEPLOYMENT_FAILURE = frozenset({"FAILED", "CANCELED"})


def call(operation: Any, what: str, **params: Any) -> dict[str, Any]:
    """One Greengrass call; AWS errors as a one-line UserError naming ``what`` failed."""
    import botocore.exceptions

    try:
        response: dict[str, Any] = operation(**params)
    except botocore.exceptions.ClientError as exc:
        cause = translate_client_error(exc)
        raise UserError(f"cannot {what}: {cause.message}", hint=cause.hint) from exc
    except botocore.exceptions.BotoCoreError as exc:
        cause = translate_client_error(exc)
        raise UserError(f"cannot {what}: {cause.message}", hint=cause.hint) from exc
    return response


@dataclass
class _Snapshot:
    deployment_status: str
    devices: dict[str, dict[str, Any]]  # thing name -> effective deployment ({} none yet)

    def statuses(self) -> dict[str, str]:
        return {
            name: str(entry.get("coreDeviceExecutionStatus", "QUEUED"))
            for name, entry in self.devices.items()
        }


def _core_devices(gg: Any, target_arn: str, thing: str | None) -> list[str]:
    if thing is not None:
        return [thing]
    names: list[str] = []
    token: str | None = None
    while True:
        params: dict[str, Any] = {"thingGroupArn": target_arn}
        if token:
            params["nextToken"] = token
        page = call(gg.list_core_devices, "list the core devices of the group", **params)
        names += [str(d["coreDeviceThingName"]) for d in page.get("coreDevices") or []]
        token = page.get("nextToken")
        if not token:
            return names


def _effective(gg: Any, device: str, deployment_id: str) -> dict[str, Any]:
    token: str | None = None
    while True:
        params: dict[str, Any] = {"coreDeviceThingName": device}
        if token:
            params["nextToken"] = token
        page = call(
            gg.list_effective_deployments, f"list the deployments of core device {device}", **params
        )
        for entry in page.get("effectiveDeployments") or []:
            if entry.get("deploymentId") == deployment_id:
                return dict(entry)
        token = page.get("nextToken")
        if not token:
            return {}


def wait_deployment(
    gg: Any,
    deployment_id: str,
    target_arn: str,
    thing: str | None,
    poll_s: float,
    timeout_s: float,
    say: Notify,
) -> dict[str, str]:
    """Poll GetDeployment and each core device's ListEffectiveDeployments (exponential backoff,
    :func:`panorama_cli.cloud.polling.poll`) until every device's
    ``coreDeviceExecutionStatus`` is SUCCEEDED or COMPLETED; returns {thing name: status}.

    Args:
        thing: the target's thing name, or None for a thing group (ListCoreDevices).
        poll_s: first interval, seconds; timeout_s: seconds in all.

    Raises:
        UserError: no core device; a device FAILED, CANCELED, TIMED_OUT or REJECTED (its
            ``reason`` and ``statusDetails``); the deployment FAILED or CANCELED; not finished
            within ``timeout_s``.
    """
    devices = _core_devices(gg, target_arn, thing)
    if not devices:
        raise UserError(
            f"deployment {deployment_id} created, but {target_arn} has no core device to wait for",
            hint="add a Greengrass core device to the thing group, or deploy without --wait",
        )

    def fetch() -> _Snapshot:
        info = call(gg.get_deployment, "get the deployment", deploymentId=deployment_id)
        status = str(info.get("deploymentStatus", ""))
        return _Snapshot(status, {d: _effective(gg, d, deployment_id) for d in devices})

    def done(snap: _Snapshot) -> bool:
        if snap.deployment_status in DEPLOYMENT_FAILURE:
            return True
        statuses = snap.statuses().values()
        return any(s in DEVICE_FAILURE for s in statuses) or all(
            s in DEVICE_SUCCESS for s in statuses
        )

    def on_wait(snap: _Snapshot, sleep: float) -> None:
        states = ", ".join(f"{d}: {s}" for d, s in sorted(snap.statuses().items()))
        say(f"deployment {deployment_id} {snap.deployment_status or '?'} ({states})")

    snap, finished = poll(fetch, done, interval=poll_s, timeout=timeout_s, on_wait=on_wait)
    statuses = snap.statuses()
    for device, entry in sorted(snap.devices.items()):
        status = statuses[device]
        if status in DEVICE_FAILURE:
            raise UserError(
                f"deployment {deployment_id} {status} on core device {device}: {_reason(entry)}",
                hint="see the core device's greengrass.log and the component's log "
                "(/greengrass/v2/logs/<component>.log)",
            )
    if snap.deployment_status in DEPLOYMENT_FAILURE:
        raise UserError(
            f"deployment {deployment_id} is {snap.deployment_status}",
            hint=f"aws greengrassv2 get-deployment --deployment-id {deployment_id}",
        )
    if not finished:
        states = ", ".join(f"{d}: {s}" for d, s in sorted(statuses.items()))
        raise UserError(
            f"deployment {deployment_id} not finished after {timeout_s:.0f} s ({states})",
            hint="it goes on in the cloud: check it with aws greengrassv2 "
            "list-effective-deployments --core-device-thing-name NAME, or wait longer",
        )
    say(f"deployment {deployment_id} succeeded on {len(devices)} core device(s)")
    return statuses


def _reason(entry: dict[str, Any]) -> str:
    details = entry.get("statusDetails") or {}
    parts = [str(entry.get("reason") or "").strip()]
    if details.get("errorTypes"):
        parts.append("error types: " + ", ".join(map(str, details["errorTypes"])))
    if details.get("errorStack"):
        parts.append("error stack: " + " > ".join(map(str, details["errorStack"])))
    text = "; ".join(p for p in parts if p) or "no reason given"
    return " ".join(text.split())
