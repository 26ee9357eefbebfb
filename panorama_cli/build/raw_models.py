"""add-raw-model: a raw model archive (local file or S3 object) as a content-addressed asset.

The archive is stored as ``assets/<sha256 of the file>.tar.gz`` and its descriptor as
``assets/<sha256 of the descriptor>.json`` (upstream panorama-cli naming); the model is
compiled by SageMaker Neo in the cloud from the mlModelDescriptor.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from panorama_cli.build import asset_registry
from panorama_cli.errors import UserError
from panorama_cli.interrupts import deferred_signals
from panorama_cli.project import descriptors, names
from panorama_cli.project.asset_cleanup import rollback_new_assets
from panorama_cli.project.assets import (
    TMP_PREFIX,
    StoredAsset,
    file_mode,
    sha256_file,
    store_bytes,
    store_file,
)
from panorama_cli.project.manifests import Transaction
from panorama_cli.project.project import Project

log = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class ModelResult:
    """What add-raw-model did: the stored files, the asset entry, the packages changed."""

    asset: StoredAsset
    descriptor: StoredAsset
    entry: dict[str, Any]
    registrations: list[asset_registry.Registration]
    warnings: list[str] = field(default_factory=list)


def check_model_descriptor(path: Path, project: Project) -> bytes:
    """Read a model descriptor and refuse one that is malformed, invalid or unfinished.

    Returns:
        The descriptor's bytes, unchanged (their sha256 names the descriptor asset).

    Raises:
        UserError: file missing, malformed JSON (file:line:col), not an mlModelDescriptor,
            schema-invalid, or placeholders left (empty framework, input name or shape).
    """
    raw, _ = descriptors.read_for_asset(path, project.rel(path), descriptors.MODEL)
    return raw


def check_model_archive(path: Path, source: str) -> None:
    """Refuse a model file that is not a gzip'd tar holding at least one regular file.

    The archive is listed while streaming (never extracted), up to its first regular file,
    so a large model costs one short read; a 2-byte file, gzip that is not tar, or a huge
    file of zeros behind the gzip magic fails fast.

    Args:
        path: the local archive (a regular file).
        source: its name for the message (the local path or the s3:// URI).

    Raises:
        UserError: not gzip, not tar, truncated, or no regular file in it.
    """
    import tarfile
    import zlib

    hint = "package the model files with `tar czf model.tar.gz <files>`"
    with open(path, "rb") as fh:
        if fh.read(2) != GZIP_MAGIC:
            raise UserError(f"{source} is not a .tar.gz archive (no gzip header)", hint=hint)
        fh.seek(0)
        try:
            with tarfile.open(fileobj=fh, mode="r|gz") as tar:
                for member in tar:
                    if member.isreg():
                        return
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(f"{source} is not a .tar.gz archive ({reason})", hint=hint) from None
    raise UserError(f"{source} holds no file (an empty .tar.gz archive)", hint=hint)


def _store_from_s3(
    uri: str,
    assets_dir: Path,
    session_factory: Callable[[], Any],
    progress: Callable[[int], None] | None,
    on_size: Callable[[int], None] | None,
) -> StoredAsset:
    from panorama_cli.cloud.aws import s3

    tmp: Path | None = None
    try:
        with deferred_signals():  # the file and its name arrive together
            fd, tmp_name = tempfile.mkstemp(
                prefix=f"{TMP_PREFIX}s3-", suffix=".tar.gz", dir=assets_dir
            )
            os.close(fd)
            tmp = Path(tmp_name)
        s3.download(uri, tmp, session=session_factory(), progress=progress, on_size=on_size)
        check_model_archive(tmp, uri)
        digest = sha256_file(tmp)
        target = assets_dir / f"{digest}.tar.gz"
        existed = os.path.lexists(target)
        os.chmod(tmp, file_mode())
        os.replace(tmp, target)
        return StoredAsset(digest, target, target.stat().st_size, created=not existed)
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def add_raw_model(
    project: Project,
    asset_name: str,
    *,
    descriptor_path: Path,
    local_path: Path | None = None,
    s3_uri: str | None = None,
    package_paths: tuple[str, ...] = (),
    session_factory: Callable[[], Any] | None = None,
    progress: Callable[[int], None] | None = None,
    on_size: Callable[[int], None] | None = None,
) -> ModelResult:
    """Store a model archive and its descriptor; register them in ``package_paths``.

    Args:
        asset_name: NodeAssetName of the model asset.
        descriptor_path: the mlModelDescriptor descriptor.json.
        local_path / s3_uri: exactly one source of the .tar.gz archive.
        package_paths: packages to add the asset to; none → only store the files.
        session_factory: makes the boto3 session (S3 downloads honour AWS_PROFILE,
            AWS_REGION and AWS_ENDPOINT_URL).
        progress: called with bytes transferred; on_size with the total size in bytes.

    Raises:
        UserError: bad names or inputs, an invalid descriptor or package, S3 errors. On any
            failure the project is left as it was (the files this call stored are removed).
            Superseded files that could not be removed become ``warnings``.
    """
    names.check(names.ASSET_NAME, asset_name)
    if (local_path is None) == (s3_uri is None):
        raise UserError("give exactly one of --model-local-path and --model-s3-uri")
    raw_descriptor = check_model_descriptor(Path(descriptor_path), project)
    packages = [project.package_for_path(p) for p in package_paths]
    graph = project.load_graph_for_update() if packages else None
    if local_path is not None:
        local_path = Path(local_path)
        if not local_path.is_file():  # a FIFO or a device is not a model file either
            raise UserError(
                f"{local_path}: no such model file (or not a regular file)",
                hint="pass the path of a .tar.gz archive",
            )
        check_model_archive(local_path, str(local_path))
    tx = Transaction()
    with rollback_new_assets(project.assets_dir) as new:
        if local_path is not None:
            if on_size:
                on_size(local_path.stat().st_size)
            asset = new.add(
                store_file(local_path, project.assets_dir, suffix=".tar.gz", progress=progress)
            )
        else:
            from panorama_cli.cloud.aws import s3

            if s3_uri is None or session_factory is None:
                raise UserError("--model-s3-uri needs AWS: no session for S3 was given")
            s3.parse_s3_uri(s3_uri)
            asset = new.add(
                _store_from_s3(s3_uri, project.assets_dir, session_factory, progress, on_size)
            )
        descriptor = new.add(store_bytes(raw_descriptor, project.assets_dir, suffix=".json"))
        registrations = (
            asset_registry.register(
                project,
                packages,
                graph,
                asset_name=asset_name,
                kind="model",
                asset=asset,
                descriptor=descriptor,
                tx=tx,
            )
            if packages
            else []
        )
        tx.on_commit(new.keep)
        tx.commit()
    entry = asset_registry.asset_entry(asset_name, "model", asset, descriptor)
    return ModelResult(asset, descriptor, entry, registrations, tx.warnings)
