"""``validate``: schema and semantic checks of the whole project."""

import click

from panorama_cli import console
from panorama_cli.commands._shared import json_option


@click.command(
    "validate",
    epilog="""\b
Examples:
  panorama-cli validate
  panorama-cli validate --json""",
)
@json_option("the problems")
def cli(as_json: bool) -> None:
    """Check every manifest and the application graph; exit 1 on errors."""
    from panorama_cli.errors import UserError
    from panorama_cli.project.project import Project
    from panorama_cli.project.validation import errors, unbuilt, validate_project

    project = Project.discover()
    problems = validate_project(project)
    failed = errors(problems)
    if as_json:
        console.emit_json(
            {
                "valid": not failed,
                "root": str(project.root),
                "problems": [p.as_dict() for p in problems],
            }
        )
    else:
        for problem in problems:
            console.emit_text(problem.line())
    if failed:
        raise UserError(
            f"{len(failed)} error(s) in {project.root}", hint="fix them and re-run validate"
        )
    if not as_json:
        todo = unbuilt(problems)
        next_step = (
            f"panorama-cli run (locally), or {todo[0].hint.removeprefix('run ').strip('`')} "
            "before panorama-cli run --in-container and export"
            if todo and todo[0].hint.startswith("run `")
            else "panorama-cli run (--in-container), then panorama-cli export --target "
            "compose|kubernetes|greengrass"
        )
        console.success(f"{project.root.name} is valid", next_step)
