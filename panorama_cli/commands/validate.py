"""``validate``: schema and semantic checks of the whole project."""

import click

from panorama_cli import console


@click.command("validate", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--json", "as_json", is_flag=True, help="Print the problems as JSON on stdout.")
def cli(as_json: bool) -> None:
    """Check every manifest and the application graph; exit 1 on errors."""
    from panorama_cli.errors import UserError
    from panorama_cli.project import Project
    from panorama_cli.validation import errors, validate_project

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
        console.success(f"{project.root.name} is valid", "panorama-cli package-application")
