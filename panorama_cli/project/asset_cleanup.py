"""Deleting from the asset store: superseded files, a failed command's new files, leftovers.

Deleting is where a crafted manifest could do harm (``"assetUri": "../../../victim.txt"``, an
absolute ``descriptorUri``, a symlink in ``assets/``), so every deletion here is confined:

* :func:`remove_superseded` (after a commit, best effort) deletes only a direct child of
  ``assets/`` named by a content address
  (:func:`panorama_cli.project.assets.is_content_address`) that is a regular file, reached
  without following a symlink; anything else is left alone with a warning, and nothing raises
  (the commit is never undone by its clean-up).
* :func:`rollback_new_assets` removes exactly the files one command created, and nothing once
  its manifests were committed.
* :func:`remove_leftovers` removes the ``.tmp-*`` files a killed command left (under the
  project lock).
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from panorama_cli.project.assets import TMP_PREFIX, StoredAsset, is_content_address

log = logging.getLogger(__name__)


def remove_superseded(
    assets_dir: Path,
    uris: Iterable[str],
    keep: set[str],
    *,
    warn: Callable[[str], None] | None = None,
) -> list[Path]:
    """Best effort: delete the asset files named in ``uris`` that are not in ``keep``.

    Call it only after the new ``package.json`` is safely written. It never raises for a file
    it cannot or must not delete: it leaves the file alone and calls ``warn`` with one line.
    Missing files are ignored, so running it twice is harmless.

    A file is deleted only when all of these hold (anything else could be a file outside the
    store, reached through a crafted ``"../../x"``, an absolute path or a symlink):

    * the name is a content address (:func:`is_content_address`), so it has no folder part;
    * ``assets_dir`` itself is a real folder, not a symlink;
    * the entry in it is a regular file, not a symlink (checked with ``lstat``, then unlinked
      relative to a descriptor of ``assets_dir`` opened with ``O_NOFOLLOW``).

    Args:
        assets_dir: the project's ``assets/`` folder.
        uris: asset names as in ``package.json``, e.g. ``"<sha256>.tar.gz"``.
        keep: asset names still referenced (by any package); never deleted.
        warn: receives one line per file left alone (default: ignored).

    Returns:
        The paths actually deleted.
    """
    assets_dir = Path(assets_dir)
    say = warn or (lambda _message: None)
    names = [u for u in dict.fromkeys(uris) if u not in keep]
    if not names:
        return []
    try:
        dir_fd = os.open(assets_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        say(f"kept superseded assets: cannot open {assets_dir} as a real folder ({exc.strerror})")
        return []
    removed = []
    try:
        for name in names:
            if not is_content_address(name):
                say(
                    f"left {name!r} alone: not an asset name <sha256>.tar.gz/.json in assets/ "
                    "(fix that assetUri/descriptorUri)"
                )
                continue
            try:
                info = os.lstat(name, dir_fd=dir_fd)
            except FileNotFoundError:
                continue
            except OSError as exc:
                say(f"kept superseded assets/{name}: {exc.strerror}")
                continue
            if not stat.S_ISREG(info.st_mode):
                say(f"left assets/{name} alone: not a regular file (a symlink or a folder)")
                continue
            try:
                os.unlink(name, dir_fd=dir_fd)
            except FileNotFoundError:
                continue
            except OSError as exc:
                say(f"kept superseded assets/{name}: {exc.strerror}")
                continue
            removed.append(assets_dir / name)
        if removed:
            try:
                os.fsync(dir_fd)
            except OSError:
                pass
    finally:
        os.close(dir_fd)
    return removed


class NewAssets:
    """The asset files one command added to the store (see :func:`rollback_new_assets`)."""

    def __init__(self, assets_dir: Path) -> None:
        self.assets_dir = Path(assets_dir)
        self.paths: list[Path] = []
        self.kept = False

    def add(self, asset: StoredAsset) -> StoredAsset:
        """Remember ``asset`` when this command created it; returns it unchanged."""
        if asset.created and asset.path not in self.paths:
            self.paths.append(asset.path)
        return asset

    def keep(self) -> None:
        """The manifests naming the new files were committed: never remove them now."""
        self.kept = True

    def remove(self) -> None:
        """Delete the files this command added (and nothing else); missing ones are ignored."""
        for path in reversed(self.paths):
            try:
                if stat.S_ISREG(os.lstat(path).st_mode):
                    path.unlink()
            except OSError:
                pass
        self.paths.clear()


@contextmanager
def rollback_new_assets(assets_dir: Path) -> Iterator[NewAssets]:
    """Remove the asset files a command stored if the block fails before they were kept.

    Usage::

        tx = Transaction()
        with rollback_new_assets(project.assets_dir) as new:
            asset = new.add(store_file(src, project.assets_dir, suffix=".tar.gz"))
            ...  # stage manifest changes in tx
            tx.on_commit(new.keep)
            tx.commit()

    Only files this command created are removed (an identical file that was there already,
    or a file another command stored meanwhile, stays). Once :meth:`NewAssets.keep` ran (the
    commit landed) nothing is removed, whatever is raised later (Ctrl-C included).
    """
    new = NewAssets(assets_dir)
    try:
        yield new
    except BaseException:
        if not new.kept:
            new.remove()
        raise


def remove_leftovers(assets_dir: Path) -> list[Path]:
    """Delete temporary files (``.tmp-*``) a killed command left in ``assets_dir``.

    Call it only while holding the project lock: then no other command is writing one.
    Never raises; returns what it deleted. Only regular files directly in ``assets_dir``
    whose names start with ``.tmp-`` are touched.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(assets_dir))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(TMP_PREFIX):
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed
