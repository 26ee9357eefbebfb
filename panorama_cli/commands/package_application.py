"""``package-application``: register the project's node packages with AWS Panorama."""

import click

from panorama_cli import console
from panorama_cli.commands._shared import json_option, poll_options


@click.command(
    "package-application",
    epilog="""\b
Examples:
  panorama-cli package-application
  panorama-cli package-application --packages-path packages/123456789012-app-1.0 --no-wait""",
)
@click.option(
    "--packages-path",
    "--package-path",
    "packages_path",
    multiple=True,
    help="Package folder to send (repeatable). Default: every package under packages/.",
)
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait until each registration is REGISTER_COMPLETED or FAILED.",
)
@poll_options(interval=2.0, timeout=900.0)
@json_option("the results")
@click.pass_context
def cli(ctx, packages_path, wait, poll_interval, timeout, as_json) -> None:
    """Upload assets and register a patch version of each package.

    The patch version is the sha256 of package.json: a package whose patch is already
    registered is left alone, and files already in the storage bucket are not sent again.
    Exit code 1 when any package failed; the others are still registered.
    """
    from panorama_cli.cloud.packaging import Options, package_application
    from panorama_cli.commands._shared import aws_session_factory
    from panorama_cli.errors import UserError
    from panorama_cli.project.project import Project

    project = Project.discover()
    session = aws_session_factory(ctx)()
    options = Options(wait=wait, poll_interval=poll_interval, timeout=timeout)
    from panorama_cli.commands._shared import locked

    with locked(project), console.transfers("total") as add:
        results = package_application(
            project,
            session,
            package_paths=tuple(packages_path),
            options=options,
            notify=console.info,
            progress_for=lambda upload, size: add(upload.label, size),
        )
    if as_json:
        console.emit_json({"packages": [r.as_dict() for r in results]})
    else:
        console.emit_table(
            ["package", "version", "patch", "uploaded bytes", "skipped", "status"],
            [
                [
                    r.name,
                    r.version,
                    r.patch[:12],
                    str(r.uploaded_bytes),
                    str(r.skipped_files),
                    r.status + (f": {r.message}" if r.message and not r.ok else ""),
                ]
                for r in results
            ],
        )
    failed = [r for r in results if not r.ok]
    if failed:
        raise UserError(
            f"{len(failed)} of {len(results)} package(s) not registered: "
            + "; ".join(f"{r.name}: {r.status} {r.message}".strip() for r in failed),
            hint="fix the cause and re-run package-application (registered packages are skipped)",
        )
    console.success(
        f"{len(results)} package(s) registered",
        "panorama-cli deploy --target panorama --device-id DEVICE_ID --name APP_NAME",
    )
