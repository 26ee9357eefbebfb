"""The impure half of ``export --target greengrass``: each image as a ``docker save``
archive in the bundle (without ``--registry``), then the pure recipe (:mod:`.greengrass`).

An archive is kept when it was saved from the same image id (a ``.image-id`` file beside
it), so an unchanged project saves nothing again.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from panorama_cli.errors import UserError
from panorama_cli.fleet import greengrass
from panorama_cli.fleet.model import FleetApp, OutFile

log = logging.getLogger(__name__)


def save_archive(client: Any, image: str, target: Path) -> greengrass.ImageArchive:
    """``docker save`` of ``image`` into ``target`` (through a temporary name), hashed on the
    way; reused when ``target`` was saved from the same image id.

    Raises:
        UserError: the image is not in the engine or the save fails.
    """
    log.debug("docker save %s -> %s", image, target)
    try:
        found = client.images.get(image)
    except Exception as exc:  # noqa: BLE001 - docker.errors.ImageNotFound, APIError
        raise UserError(f"docker save {image}: {exc}", hint="run export again") from None
    marker = target.with_name(target.name + ".image-id")
    sha = target.with_name(target.name + ".sha256")
    if target.is_file() and marker.is_file() and sha.is_file():
        if marker.read_text().strip() == found.id:
            size = target.stat().st_size
            return greengrass.ImageArchive(image, "", sha.read_text().strip(), size)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as stream:
            for chunk in found.save(named=True):
                digest.update(chunk)
                stream.write(chunk)
        os.replace(partial, target)
    except Exception as exc:  # noqa: BLE001 - docker errors, OSError
        partial.unlink(missing_ok=True)
        raise UserError(f"docker save {image} failed: {exc}", hint="run export again") from None
    sha.write_text(digest.hexdigest() + "\n")
    marker.write_text(found.id + "\n")
    return greengrass.ImageArchive(image, "", digest.hexdigest(), target.stat().st_size)


def render_greengrass(
    app: FleetApp, client: Any, output_dir: Path, account: str, registry: bool
) -> list[OutFile]:
    """The recipe (and the archives, saved into ``output_dir``, unless ``registry``)."""
    import dataclasses

    name = greengrass.component_name_for(account, app.name)
    archives = None
    if not registry:
        archives = {}
        for image in app.images:
            path = greengrass.archive_path(name, app.semver, image)
            saved = save_archive(client, image, Path(output_dir) / path)
            archives[image] = dataclasses.replace(saved, path=path)
    return greengrass.render(app, component_name=name, archives=archives)
