"""Helpers shared by the command modules (Click glue only)."""

from __future__ import annotations

import click

from panorama_cli.project.project import Project, resolve_account_id


def aws_session_factory(ctx: click.Context):
    """A zero-argument factory of the boto3 session for --profile / --region."""
    obj = ctx.find_root().obj or {}

    def make():
        from panorama_cli.cloud.aws.session import make_session

        return make_session(profile=obj.get("profile"), region=obj.get("region"))

    return make


def account_id(ctx: click.Context, explicit: str | None, project: Project | None) -> str:
    """Resolve the account id (flag, env, graph.json, settings, STS)."""
    factory = aws_session_factory(ctx)

    def lookup() -> str:
        from panorama_cli.cloud.aws.sts import caller_account_id

        return caller_account_id(factory())

    return resolve_account_id(explicit, project, lookup)


def json_option(what: str = "the result", *, text: str | None = None):
    """``--json`` (parameter ``as_json``): data for scripts on stdout instead of messages.

    Args:
        what: what is printed, for the help ("Print <what> as JSON on stdout.").
        text: the whole help text instead.
    """
    return click.option(
        "--json", "as_json", is_flag=True, help=text or f"Print {what} as JSON on stdout."
    )


def poll_options(interval: float, timeout: float):
    """``--poll-interval`` and ``--timeout`` (seconds) for commands that wait on AWS."""

    def decorate(command):
        command = click.option(
            "--timeout",
            type=click.FloatRange(min=0),
            default=timeout,
            show_default=True,
            help="Longest wait, seconds.",
        )(command)
        return click.option(
            "--poll-interval",
            type=click.FloatRange(min=0.1),
            default=interval,
            show_default=True,
            help="First wait between status checks, seconds (doubles up to 30 s).",
        )(command)

    return decorate


def edge_options(command):
    """``--producer`` and ``--consumer`` (both required) of add-edge and remove-edge."""
    command = click.option("--consumer", required=True, help="NODE.PORT of an input.")(command)
    return click.option(
        "--producer",
        required=True,
        help="NODE.PORT of an output, or NODE for a parameter (value) node.",
    )(command)


def locked(project: Project):
    """The exclusive project lock for the running command (panorama_cli.project.lock)."""
    from panorama_cli.project.lock import project_lock

    ctx = click.get_current_context(silent=True)
    return project_lock(project, (ctx.info_name if ctx else None) or "panorama-cli")


def show_warnings(lines: list[str]) -> None:
    """Print the warnings of a command that succeeded (e.g. clean-up left undone)."""
    from panorama_cli import console

    for line in lines:
        console.warning(line)
