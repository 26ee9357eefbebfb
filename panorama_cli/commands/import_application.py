"""``import-application``: move the application to another account id."""

import click

from panorama_cli import console
from panorama_cli.commands._shared import account_id as resolve_account
from panorama_cli.commands._shared import locked


@click.command(
    "import-application",
    epilog="""\b
Example:
  panorama-cli import-application --account-id 123456789012""",
)
@click.option("--account-id", help="Target account (default: PANORAMA_ACCOUNT_ID, then STS).")
@click.pass_context
def cli(ctx, account_id: str | None) -> None:
    """Rewrite package folders, graph package names and node interfaces to ACCOUNT_ID."""
    import os

    from panorama_cli.project import names
    from panorama_cli.project.importer import import_application
    from panorama_cli.project.project import Project

    project = Project.discover()
    # project None: the graph's own account is the one being replaced
    account = resolve_account(ctx, account_id or os.environ.get("PANORAMA_ACCOUNT_ID"), None)
    names.check(names.USER_ACCOUNT_ID, account)  # before the lock: refused = no change
    with locked(project):
        result = import_application(project, account)
    for line in result.notes:
        console.info(f"note: {line}")
    if not result.changed:
        console.info(f"The application already uses account {account}; nothing to do")
        return
    for old, new in result.renamed:
        console.info(f"renamed {old} -> {new}")
    for path in result.rewritten:
        console.info(f"rewrote {path}")
    console.success(f"Imported the application for account {account}", "panorama-cli validate")
