"""``convert-model``: one model asset of a package converted to ONNX (the same conversion and
cache as ``run``), optionally copied to a file of the user's."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from panorama_cli.errors import UserError
from panorama_cli.project.node_package import Package
from panorama_cli.project.project import Project


@dataclass(frozen=True)
class ConvertedAsset:
    """What :func:`convert_package_asset` did.

    Attributes:
        asset: the asset's name. kind: what the archive holds (``mxnet``, ``onnx``, ...).
        conversion: the :class:`~panorama_cli.localrun.models.convert.Conversion`, None when the
            archive already holds an ONNX model (nothing to convert).
        onnx: where the ONNX is: ``output`` when given, else the cache's (or the archive's).
    """

    asset: str
    kind: str
    conversion: object | None
    onnx: Path


def _archive_of(project: Project, package: Package, name: str) -> tuple[Path, str]:
    """The asset archive named ``name`` in ``package``: (assets/<sha256>.tar.gz, sha256)."""
    assets_dir = project.root / "assets"
    models = []
    for asset in package.assets():
        for impl in asset.get("implementations", []) or []:
            if not isinstance(impl, dict) or impl.get("type") != "model":
                continue
            models.append(str(asset.get("name")))
            uri = impl.get("assetUri")
            if asset.get("name") == name and isinstance(uri, str) and "/" not in uri:
                return assets_dir / uri, uri.split(".", 1)[0]
    raise UserError(
        f"{project.rel(package.folder)} has no model asset {name} "
        f"(its model assets: {', '.join(models) or 'none'})",
        hint="add it with add-raw-model, or name one of those",
    )


def convert_package_asset(
    project: Project,
    package: Package,
    asset_name: str,
    *,
    output: Path | None,
    notify: Callable[[str, dict[str, object]], None],
) -> ConvertedAsset:
    """Convert ``package``'s model asset ``asset_name`` to ONNX with the package's descriptor
    inputs (as ``run`` does), and copy the ONNX to ``output`` (atomically) when given.

    Raises:
        UserError: no such asset, an archive that is missing/changed/unsafe, a model that
            cannot run here, a conversion that failed (its one-line error), ``output`` not
            writable.
    """
    from panorama_cli.localrun.engine import MODEL_CACHE
    from panorama_cli.localrun.models import model_archive
    from panorama_cli.localrun.models.convert import convert_asset

    archive, sha256 = _archive_of(project, package, asset_name)
    label = f"assets/{archive.name}"
    folder = model_archive.unpack_archive(archive, sha256, project.root / MODEL_CACHE, label=label)
    found = model_archive.find_model_file(folder, f"model {asset_name}: {label}")
    conversion = None
    onnx = found.path
    if found.kind != model_archive.ONNX:
        framework = model_archive.FRAMEWORK_OF.get(found.kind)
        if framework is None:
            raise UserError(
                f"model {asset_name}: {found.path.name} is a {found.kind} model, which "
                "cannot be converted here"
            )
        descriptor = package.model_descriptor
        conversion = convert_asset(
            folder,
            framework,
            [(i.name, i.shape) for i in descriptor.inputs] if descriptor else [],
            notify=notify,
            sha256=sha256,
            label=f"model {asset_name}",
        )
        onnx = conversion.onnx
    if output is not None:
        _copy(onnx, Path(output))
        onnx = Path(output)
    return ConvertedAsset(asset_name, found.kind, conversion, onnx)


def _copy(source: Path, output: Path) -> None:
    """Copy to ``output`` through a temporary file beside it and a rename."""
    folder = output.parent if str(output.parent) else Path(".")
    if not folder.is_dir():
        raise UserError(f"--output {output}: no folder {folder}")
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=folder)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, output)
    except OSError as exc:
        raise UserError(f"--output {output}: cannot write it ({exc.strerror or exc})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
