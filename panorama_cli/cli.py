"""The ``panorama-cli`` root command group.

Commands are registered lazily (their modules import only when run) so ``--help`` and
start-up stay fast. :class:`panorama_cli.errors.UserError` becomes one red line on stderr and
its exit code; any other exception is a bug, shown with a traceback only under ``--debug``.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import click

from panorama_cli import __version__
from panorama_cli.errors import UserError

log = logging.getLogger(__name__)

COMMANDS = {
    "init-project": "init_project",
    "create-package": "create_package",
    "add-panorama-package": "add_panorama_package",
    "add-raw-model": "add_raw_model",
    "convert-model": "convert_model",
    "build-container": "build_container",
    "export-container": "export_container",
    "import-application": "import_application",
    "validate": "validate",
    "update-backpack": "update_backpack",
    "add-dockerfile-stage": "add_dockerfile_stage",
    "package-application": "package_application",
    "deploy": "deploy",
    "status": "status",
    "run": "run",
    "serve": "serve",
    "export": "export",
    "add-edge": "add_edge",
    "remove-edge": "remove_edge",
    "remove-node": "remove_node",
    "remove-package": "remove_package",
    "base-image": "base_image",
}

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: What an interrupt of a command that talks to AWS may have left, and how to resume.
INTERRUPTED_REMOTE = {
    "package-application": "requests may already have been sent: packages may have been "
    "created, files uploaded and versions registered in the account; re-run "
    "package-application to finish (what is already uploaded or registered is skipped)",
    "deploy": "CreateApplicationInstance may already have been sent; run `panorama-cli status "
    "--device-id <device>` to see whether the application instance exists before deploying "
    "again",
    "status": "nothing was changed; a deployment goes on without waiting: "
    "`panorama-cli status <instance-id> --wait` waits again",
}
#: Commands that change nothing at all.
READ_ONLY = ("validate",)
_GROUP_OPTIONS_WITH_VALUE = ("--profile", "--region")


def command_name(args: list[str]) -> str | None:
    """The subcommand named on a command line (after the group's options), or None."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _GROUP_OPTIONS_WITH_VALUE:
            skip = True
        elif arg in COMMANDS:
            return arg
        elif not arg.startswith("-"):
            return None
    return None


def interrupted_note(what: str, command: str | None, saved: bool) -> str:
    """The line for an interrupt (``what``: interrupted / terminated) of ``command``: what
    it may have left and how to resume."""
    if command in INTERRUPTED_REMOTE:
        return f"{what}; {INTERRUPTED_REMOTE[command]}"
    if saved:
        return f"{what} after the changes were saved; check with panorama-cli validate"
    if command in READ_ONLY:
        return f"{what}; nothing was changed"
    return f"{what}; nothing was changed (what the command had started was undone)"


class LazyGroup(click.Group):
    """A group whose subcommands live in panorama_cli.commands.<module>.cli."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = COMMANDS.get(name)
        if module is None:
            return None
        command: click.Command = importlib.import_module(f"panorama_cli.commands.{module}").cli
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """As click's, with "did you mean" for a mistyped command."""
        import difflib

        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in COMMANDS:
            close = difflib.get_close_matches(name, list(COMMANDS), n=1)
            if close:
                ctx.fail(f"No such command {name!r}. Did you mean {close[0]!r}?")
        return super().resolve_command(ctx, args)


@click.group(cls=LazyGroup, context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="panorama-cli")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option("--profile", envvar="AWS_PROFILE", help="AWS profile for the calls that need AWS.")
@click.option("--region", envvar="AWS_REGION", help="AWS region for the calls that need AWS.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, profile: str | None, region: str | None) -> None:
    """Scaffold, validate, build and package AWS Panorama-format applications.

    \b
    Workflow:
      panorama-cli init-project --name my_app && cd my_app
      panorama-cli create-package --name people_counter
      panorama-cli add-panorama-package --type camera --name front_door_camera
      panorama-cli add-raw-model --model-asset-name model --model-local-path m.tar.gz ...
      panorama-cli build-container --container-asset-name code --package-path packages/...
      panorama-cli add-edge --producer front_door_camera.video_out --consumer code_node.video_in
      panorama-cli validate
      panorama-cli run --camera front_door_camera=video.mp4 --frames 100

    \b
    A sample that runs on video: panorama-cli init-project --sample people-counter
    Shell completion (bash; zsh: zsh_source, fish: fish_source):
      eval "$(_PANORAMA_CLI_COMPLETE=bash_source panorama-cli)"
    """
    from panorama_cli import console

    debug = debug or os.environ.get("PANORAMA_CLI_DEBUG") == "1"
    console.configure_logging(debug)
    ctx.obj = {"debug": debug, "profile": profile, "region": region}


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("PANORAMA_CLI_DEBUG") == "1"


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI and map errors to exit codes."""
    from panorama_cli import console, interrupts

    args = list(sys.argv[1:] if argv is None else argv)
    interrupts.reset()
    try:
        with interrupts.handle_sigterm():  # SIGTERM takes the Ctrl-C clean-up path
            cli.main(args=args, prog_name="panorama-cli", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except UserError as exc:
        if _debug_requested(args):
            import traceback

            traceback.print_exc()
        console.error(str(exc))
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort) as exc:
        cause = exc if isinstance(exc, KeyboardInterrupt) else exc.__cause__ or exc.__context__
        terminated = isinstance(cause, interrupts.Terminated)
        what = "terminated" if terminated else "interrupted"
        console.error(interrupted_note(what, command_name(args), bool(interrupts.saved())))
        sys.exit(143 if terminated else 130)
    except Exception as exc:  # a bug: keep the user's terminal clean unless --debug
        if _debug_requested(args):
            raise
        console.error(
            f"internal error: {type(exc).__name__}: {exc} (re-run with --debug for details)"
        )
        sys.exit(1)
    sys.exit(0)
