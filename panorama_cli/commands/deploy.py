"""``deploy``: create an application instance of the project's graph on a device."""

from pathlib import Path

import click

from panorama_cli import console
from panorama_cli.commands._shared import json_option, poll_options


@click.command(
    "deploy",
    epilog="""\b
Example:
  panorama-cli deploy --device-id device-0123 --name people_counter --wait""",
)
@click.option("--device-id", required=True, help="The Panorama appliance, e.g. device-0123...")
@click.option("--name", required=True, help="Application instance name.")
@click.option("--description", default="", help="Application instance description.")
@click.option(
    "--override",
    "override_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A nodeGraphOverrides JSON file (e.g. camera streams for this device).",
)
@click.option("--runtime-role-arn", help="IAM role the application assumes on the device.")
@click.option("--wait", is_flag=True, help="Wait until the deployment succeeds or fails.")
@poll_options(interval=5.0, timeout=1800.0)
@json_option()
@click.pass_context
def cli(
    ctx, device_id, name, description, override_path, runtime_role_arn, wait, poll_interval,
    timeout, as_json,
) -> None:  # fmt: skip
    """Deploy graph.json (after package-application) to a device.

    graph.json and the override file are checked (schema, 51,200-character limit) before
    anything is sent. With --wait, exit code 1 when the deployment fails.
    """
    from panorama_cli.cloud.deployment import DeployRequest, deploy
    from panorama_cli.commands._shared import aws_session_factory
    from panorama_cli.commands.status import finish_wait
    from panorama_cli.project.project import Project

    project = Project.discover()
    request = DeployRequest(device_id, name, description, override_path, runtime_role_arn)
    session = aws_session_factory(ctx)()
    instance_id = deploy(project, session, request)
    if not wait:
        if as_json:
            console.emit_json({"ApplicationInstanceId": instance_id})
        console.success(
            f"application instance {instance_id} created",
            f"panorama-cli status {instance_id} --wait",
        )
        return
    console.info(f"application instance {instance_id} created; waiting for the deployment")
    finish_wait(session, instance_id, poll_interval, timeout, as_json)
