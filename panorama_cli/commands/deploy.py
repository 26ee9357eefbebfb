"""``deploy``: an application instance on a Panorama appliance (``--target panorama``, the
service that ended on 2026-05-31), or an ``export`` bundle onto Docker Compose, a Docker
Swarm, Kubernetes or AWS IoT Greengrass v2."""

from pathlib import Path

import click

from panorama_cli import console
from panorama_cli.commands._shared import json_option, poll_options
from panorama_cli.errors import UsageError, UserError

TARGETS = ("compose", "swarm", "kubernetes", "greengrass", "panorama")


@click.command(
    "deploy",
    epilog="""\b
Examples:
  panorama-cli deploy --target compose --bundle fleet/ --wait
  panorama-cli deploy --target swarm --bundle fleet/ --wait        (docker swarm init first)
  panorama-cli deploy --target kubernetes --bundle k8s/ --context edge --wait
  panorama-cli deploy --target greengrass --bundle gg/ --bucket my-artifacts \\
      --target-arn arn:aws:iot:us-east-1:123456789012:thinggroup/stores --wait
  panorama-cli deploy --target panorama --device-id device-0123 --name people_counter --wait""",
)
@click.option(
    "--target", type=click.Choice(TARGETS),
    help="Where to deploy (required): an export bundle's engine, or a Panorama appliance "
    "(the service ended on 2026-05-31).",
)  # fmt: skip
@click.option(
    "--bundle", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
    help="The export bundle (export --output-dir) of a fleet target.",
)  # fmt: skip
@click.option("--device-id", help="panorama: the appliance, e.g. device-0123...")
@click.option("--name", help="panorama: application instance name.")
@click.option("--description", default="", help="panorama: application instance description.")
@click.option(
    "--override",
    "override_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="panorama: a nodeGraphOverrides JSON file (e.g. camera streams for this device).",
)
@click.option("--runtime-role-arn", help="panorama: IAM role the application assumes.")
@click.option("--context", help="kubernetes: the kubeconfig context (default: current).")
@click.option("--namespace", help="kubernetes: namespace of objects that name none.")
@click.option("--bucket", help="greengrass: S3 bucket for the component's artifacts.")
@click.option("--target-arn", help="greengrass: the thing or thing group ARN to deploy to.")
@click.option("--down", is_flag=True, help="compose / swarm: take the application down.")
@click.option("--volumes", is_flag=True, help="compose, with --down: remove storage and logs.")
@click.option("--wait", is_flag=True, help="Wait until the deployment is ready or fails.")
@poll_options(interval=5.0, timeout=1800.0)
@json_option()
@click.pass_context
def cli(
    ctx, target, bundle, device_id, name, description, override_path, runtime_role_arn,
    context, namespace, bucket, target_arn, down, volumes, wait, poll_interval, timeout,
    as_json,
) -> None:  # fmt: skip
    """Deploy an export bundle to its engine (--target compose|swarm|kubernetes|greengrass
    --bundle DIR), or graph.json (after package-application) to a Panorama appliance
    (--target panorama). --target is required.

    With --wait, exit code 1 when the deployment fails (a container that exits or keeps
    restarting fails it at once, with its exit code and last log lines). Ctrl-C says what was
    applied and how to take it back (exit 130).
    """
    from panorama_cli.commands._shared import aws_session_factory

    if target is None:
        panorama = device_id or name
        raise UsageError(
            f"deploy needs --target: one of {'|'.join(TARGETS)}",
            hint="--target panorama (the appliance these flags name)"
            if panorama
            else "e.g. panorama-cli deploy --target compose --bundle fleet --wait",
        )
    if target != "panorama":
        from panorama_cli import interrupts
        from panorama_cli.fleet.deploy import DeployInterrupted, FleetDeploy, deploy_bundle

        if bundle is None:
            raise UsageError(
                f"deploy --target {target} needs --bundle DIR",
                hint=f"make one: panorama-cli export --target "
                f"{'compose' if target == 'swarm' else target} --output-dir DIR",
            )
        options = FleetDeploy(
            target, bundle, wait=wait, timeout_s=timeout, poll_s=poll_interval, down=down,
            volumes=volumes, context=context, namespace=namespace, bucket=bucket,
            target_arn=target_arn,
        )  # fmt: skip
        try:
            report = deploy_bundle(options, console.info, aws_session_factory(ctx))
        except DeployInterrupted as stopped:  # what was applied, not the service's message
            terminated = isinstance(stopped.cause, interrupts.Terminated)
            raise UserError(
                f"{'terminated' if terminated else 'interrupted'}; {stopped.note}",
                exit_code=143 if terminated else 130,
            ) from None
        if as_json:
            console.emit_json(report)
        done = "taken down" if down else "deployed"
        console.success(f"{bundle} {done} ({target})", _next_step(target, down, report))
        return
    _deploy_panorama(
        ctx, device_id, name, description, override_path, runtime_role_arn, wait,
        poll_interval, timeout, as_json,
    )  # fmt: skip


def _next_step(target: str, down: bool, report: dict) -> str | None:
    if down:
        return None
    port = report.get("port", 8765)
    return {
        "compose": f"open http://127.0.0.1:{port}/ (the live view; /readyz, /metrics)",
        "swarm": f"open http://127.0.0.1:{port}/, or docker stack ps {report.get('stack', '')}",
        "kubernetes": "kubectl get pods -l app.kubernetes.io/managed-by=panorama-cli",
        "greengrass": "aws greengrassv2 list-effective-deployments --core-device-thing-name T",
    }[target]


def _deploy_panorama(
    ctx, device_id, name, description, override_path, runtime_role_arn, wait, poll_interval,
    timeout, as_json,
) -> None:  # fmt: skip
    from panorama_cli.cloud.deployment import DeployRequest, deploy
    from panorama_cli.commands._shared import aws_session_factory
    from panorama_cli.commands.status import finish_wait
    from panorama_cli.project.project import Project

    for flag, value in (("--device-id", device_id), ("--name", name)):
        if not value:
            raise UsageError(
                f"deploy --target panorama needs {flag}",
                hint="e.g. panorama-cli deploy --device-id device-0123 --name people_counter",
            )
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
