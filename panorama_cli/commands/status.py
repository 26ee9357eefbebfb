"""``status``: application instances and their deployment status."""

import click

from panorama_cli import console
from panorama_cli.commands._shared import json_option, poll_options

_COLUMNS = ["application instance", "name", "device", "status", "health", "created"]


def _row(instance: dict) -> list[str]:
    created = instance.get("CreatedTime")
    device = instance.get("DefaultRuntimeContextDeviceName") or instance.get(
        "DefaultRuntimeContextDevice", ""
    )
    when = created.isoformat(timespec="seconds") if hasattr(created, "isoformat") else created
    return [
        str(instance.get("ApplicationInstanceId", "")),
        str(instance.get("Name", "")),
        str(device),
        str(instance.get("Status", "")),
        str(instance.get("HealthStatus", "")),
        str(when or ""),
    ]


def _jsonable(instance: dict) -> dict:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in instance.items()}


def finish_wait(session, instance_id: str, poll_interval: float, timeout: float, as_json: bool):
    """Wait for a deployment, print the outcome, raise UserError when it failed or timed out."""
    from panorama_cli.cloud.deployment import failed, wait_for_instance
    from panorama_cli.errors import UserError

    found, ended = wait_for_instance(
        session, instance_id, interval=poll_interval, timeout=timeout, notify=console.info
    )
    if as_json:
        console.emit_json(_jsonable(found))
    else:
        console.emit_table(_COLUMNS, [_row(found)])
    status = found.get("Status")
    if not ended:
        raise UserError(
            f"{instance_id} is still {status} after {timeout:.0f} s",
            hint=f"check again later with `panorama-cli status {instance_id} --wait`",
        )
    if failed(found):
        detail = found.get("StatusDescription") or "no description"
        raise UserError(
            f"deployment of {instance_id} ended {status}: {detail}",
            hint="fix the cause (graph, packages, device) and deploy again",
        )
    console.success(f"{instance_id}: {status}")


@click.command(
    "status",
    epilog="""\b
Examples:
  panorama-cli status --device-id device-0123
  panorama-cli status applicationInstance-0123 --wait""",
)
@click.argument("application_instance_id", required=False)
@click.option("--device-id", help="Only this device's application instances (list mode).")
@click.option("--wait", is_flag=True, help="Wait until the deployment ends (needs an id).")
@poll_options(interval=5.0, timeout=1800.0)
@json_option("the instances")
@click.pass_context
def cli(ctx, application_instance_id, device_id, wait, poll_interval, timeout, as_json) -> None:
    """List application instances, or show one (exit 1 with --wait when it failed)."""
    from panorama_cli.cloud.deployment import describe_instance, failed, list_instances
    from panorama_cli.commands._shared import aws_session_factory

    if wait and not application_instance_id:
        raise click.UsageError("--wait needs an APPLICATION_INSTANCE_ID")
    session = aws_session_factory(ctx)()
    if application_instance_id and wait:
        finish_wait(session, application_instance_id, poll_interval, timeout, as_json)
        return
    if application_instance_id:
        instances = [describe_instance(session, application_instance_id)]
    else:
        instances = list_instances(session, device_id)
    if as_json:
        console.emit_json(
            {"ApplicationInstances": [_jsonable(i) for i in instances]}
            if not application_instance_id
            else _jsonable(instances[0])
        )
    else:
        console.emit_table(_COLUMNS, [_row(i) for i in instances])
    if application_instance_id and failed(instances[0]):
        from panorama_cli.errors import UserError

        found = instances[0]
        raise UserError(
            f"{application_instance_id}: {found.get('Status')}: "
            f"{found.get('StatusDescription') or 'no description'}"
        )
