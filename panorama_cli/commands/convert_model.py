"""``convert-model``: a package's MXNet / TensorFlow / PyTorch model asset converted to ONNX."""

from pathlib import Path

import click

from panorama_cli import console
from panorama_cli.commands._shared import json_option


@click.command(
    "convert-model",
    epilog="""\b
Example:
  panorama-cli convert-model --package-path packages/123456789012-people_detector-1.0 \\
      --model-asset-name ssd_512_resnet50 --output ssd.onnx

\b
Converts once (cached by the archive's sha256, shared with `run`), checks the ONNX against the
original framework on a random input, and prints the relative max error.""",
)
@click.option(
    "--package-path",
    "--packages-path",
    "package_path",
    required=True,
    help="The model package's folder (packages/<account>-<name>-<version>).",
)
@click.option("--model-asset-name", required=True, help="The model asset (add-raw-model's name).")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the ONNX here (e.g. to commit it, or for add-raw-model).",
)
@json_option("the conversion (framework, error, onnx path)")
def cli(package_path, model_asset_name, output, as_json) -> None:
    """Convert a model asset to ONNX as `run` does, and say where the ONNX is."""
    from panorama_cli.localrun.models.convert.assets import convert_package_asset
    from panorama_cli.project import names
    from panorama_cli.project.project import Project

    names.check(names.ASSET_NAME, model_asset_name)
    project = Project.discover()
    package = project.package_for_path(package_path)

    def notify(event: str, data: dict) -> None:
        if event == "note":
            console.info(str(data.get("text", "")))

    result = convert_package_asset(project, package, model_asset_name, output=output, notify=notify)
    conversion = result.conversion
    if as_json:
        data = {"asset": result.asset, "kind": result.kind, "onnx": str(result.onnx)}
        data["conversion"] = None if conversion is None else conversion.summary()
        console.emit_json(data)
    if conversion is None:
        message = f"model {result.asset} is ONNX already: {result.onnx}"
    else:
        where = "cached" if conversion.cached else f"converted in {conversion.seconds:.1f} s"
        message = (
            f"model {result.asset} ({conversion.framework} {conversion.framework_version}) "
            f"{where}; check: max relative error {conversion.max_rel_error:.2g}; "
            f"ONNX at {result.onnx}"
        )
    hint = None
    if output is not None:
        hint = (
            f"panorama-cli add-raw-model --model-asset-name {result.asset}_onnx "
            f"--model-local-path <tar.gz of {output.name}> --descriptor-path "
            f"{package_path}/descriptor.json --packages-path {package_path}"
            " (framework ONNX), or run as it is: panorama-cli run"
        )
    console.success(message, next_step=hint or "panorama-cli run (uses the cached conversion)")
