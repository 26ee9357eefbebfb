"""``add-raw-model``: add a raw model archive as a model asset."""

from pathlib import Path

import click

from panorama_cli import console
from panorama_cli.commands._shared import aws_session_factory, json_option, locked, show_warnings


@click.command(
    "add-raw-model",
    epilog="""\b
Example:
  panorama-cli add-raw-model --model-asset-name detector_model \\
      --model-local-path model.tar.gz \\
      --descriptor-path packages/123456789012-detector-1.0/descriptor.json \\
      --packages-path packages/123456789012-detector-1.0""",
)
@click.option("--model-asset-name", required=True, help="Asset name of the model.")
@click.option("--model-s3-uri", help="s3://bucket/key of the model .tar.gz.")
@click.option(
    "--model-local-path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Local model .tar.gz.",
)
@click.option(
    "--descriptor-path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The model package's descriptor.json (mlModelDescriptor).",
)
@click.option(
    "--packages-path",
    "--package-path",
    "packages_path",
    multiple=True,
    help="Package folder to add the asset to (repeatable). Without it the asset JSON is printed.",
)
@json_option()
@click.pass_context
def cli(
    ctx, model_asset_name, model_s3_uri, model_local_path, descriptor_path, packages_path, as_json
) -> None:
    """Store the model as assets/<sha256>.tar.gz and register it in the packages."""
    from panorama_cli.build.raw_models import add_raw_model
    from panorama_cli.project.project import Project

    if (model_s3_uri is None) == (model_local_path is None):
        raise click.UsageError("give exactly one of --model-s3-uri and --model-local-path")
    from panorama_cli.project import names

    names.check(names.ASSET_NAME, model_asset_name)  # before the lock: refused = no change
    project = Project.discover()
    for path in packages_path:
        project.package_for_path(path)
    source = model_s3_uri or str(model_local_path)
    with locked(project), console.transfer(f"model {model_asset_name}") as (advance, set_total):
        result = add_raw_model(
            project,
            model_asset_name,
            descriptor_path=descriptor_path,
            local_path=model_local_path,
            s3_uri=model_s3_uri,
            package_paths=tuple(packages_path),
            session_factory=aws_session_factory(ctx),
            progress=advance,
            on_size=set_total,
        )
    if as_json or not packages_path:
        console.emit_json(result.entry)
    console.success(
        f"Stored {source} as assets/{result.asset.uri} "
        f"({result.asset.size} bytes), descriptor assets/{result.descriptor.uri}"
    )
    for reg in result.registrations:
        action = "replaced" if reg.replaced else "added"
        extra = f"; interface {reg.interface_added}" if reg.interface_added else ""
        extra += f"; node {reg.node_added}" if reg.node_added else ""
        console.info(f"{reg.package}: {action} asset {model_asset_name}{extra}")
    show_warnings(result.warnings)
    if not packages_path:
        console.info(
            "Paste the asset JSON above into the assets of the package that uses it, "
            "or re-run with --packages-path"
        )
    else:
        console.info("Next: panorama-cli validate")
