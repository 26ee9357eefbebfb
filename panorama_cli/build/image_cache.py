"""Rebuilds that change nothing cost nothing: which image each container asset was made from.

``build-container`` exports an image into a content-addressed asset. The export is
reproducible (:mod:`panorama_cli.build.export_normalize`), so one image id always gives one asset
sha256; this module remembers that pair in the user's cache
(``$PANORAMA_CLI_CACHE`` or ``~/.cache/panorama-cli``, file ``container-assets.json``,
written atomically) so that a rebuild whose image id is unchanged, for a package whose asset
already is that file, skips the export and leaves package.json untouched (package-application
then uploads nothing), and lets ``run --in-container`` start the very image a package's
asset was exported from (:func:`images_for`), whatever a tag points at now. It also removes
the image a rebuild superseded when panorama-cli built it (its tag moved to the new image)
and nothing else uses it, so rebuilds leave no pile of dangling images.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from panorama_cli.project.manifests import write_atomic

log = logging.getLogger(__name__)

RECORD = "container-assets.json"
MAX_ENTRIES = 500


def _record_path() -> Path:
    base = os.environ.get("PANORAMA_CLI_CACHE")
    if base:
        return Path(base) / RECORD
    home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(home) / "panorama-cli" / RECORD


def _load() -> dict[str, str]:
    try:
        data = json.loads(_record_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def asset_for(image_id: str) -> str | None:
    """The asset URI (``<sha256>.tar.gz``) exported from ``image_id`` before, or None."""
    return _load().get(image_id)


def images_for(asset_uri: str) -> list[str]:
    """The image ids recorded as exporting to ``asset_uri`` (``<sha256>.tar.gz``), the most
    recently recorded first (a reproducible export can come from several ids)."""
    return [i for i, uri in reversed(list(_load().items())) if uri == asset_uri]


def remember(image_id: str, asset_uri: str) -> None:
    """Record that ``image_id`` exports to ``asset_uri`` (best effort: a cache that cannot be
    written only costs a later export)."""
    data = _load()
    data.pop(image_id, None)
    data[image_id] = asset_uri
    while len(data) > MAX_ENTRIES:
        data.pop(next(iter(data)))
    path = _record_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(data, indent=1) + "\n")
    except (OSError, Exception) as exc:  # noqa: BLE001 - any failure just loses the shortcut
        log.debug("cannot write %s: %s", path, exc)


def created_epoch(client: Any, image: str) -> int:
    """The image's creation time in whole seconds since the epoch (0 when unknown): the
    modification time :mod:`export_normalize` gives the entries Docker creates."""
    try:
        text = str(client.images.get(image).attrs.get("Created") or "")
        # RFC 3339 in UTC with nanoseconds, e.g. 2026-11-30T13:48:05.123456789Z
        stamp = datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
        return int(stamp.timestamp())
    except Exception as exc:  # noqa: BLE001 - a missing time only changes the fixed value
        log.debug("no creation time for %s: %s", image, exc)
        return 0


def image_id_of(client: Any, tag: str) -> str | None:
    """The id ``tag`` points at now, or None."""
    try:
        return str(client.images.get(tag).id)
    except Exception:  # noqa: BLE001 - docker.errors.ImageNotFound and friends
        return None


def remove_superseded(client: Any, old_id: str | None, new_id: str) -> bool:
    """Remove ``old_id`` (the image a panorama-cli tag pointed at before a rebuild) when it
    now has no tag and no container or child image uses it. Returns whether it was removed."""
    if not old_id or old_id == new_id:
        return False
    try:
        image = client.images.get(old_id)
        if image.tags:
            return False
        client.images.remove(old_id, noprune=False)
    except Exception as exc:  # noqa: BLE001 - in use, or gone already: keep it
        log.debug("superseded image %s kept: %s", old_id, exc)
        return False
    log.debug("superseded image %s removed", old_id)
    return True


@contextlib.contextmanager
def engine() -> Any:
    """A Docker client for the calls above, closed afterwards."""
    from panorama_cli.build import docker_client

    client = docker_client.connect()
    try:
        yield client
    finally:
        client.close()
