"""The event clips apps wrote (backpack.clips.ClipRecorder), for serve's ``/api/clips``.

A node's ``/opt/aws/panorama/storage`` is ``<state dir>/storage/<node>/`` under serve, so its
clips are ``storage/<node>/clips/*.mp4``. Clips being written are hidden (``.<name>.mp4``,
renamed when complete) and not listed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def list_clips(storage_root: Path) -> list[dict[str, Any]]:
    """Every complete clip under ``storage_root/<node>/clips/``, newest first.

    Args:
        storage_root: the state dir's ``storage`` folder.

    Returns:
        ``[{"node", "name", "path" ("storage/<node>/clips/<name>", relative to the state
        dir), "bytes", "created" (unix seconds, the file's mtime)}]``; empty when the folder
        does not exist. Files that vanish while listing are left out.
    """
    root = Path(storage_root)
    clips: list[dict[str, Any]] = []
    if not root.is_dir():
        return clips
    for node_dir in root.iterdir():
        folder = node_dir / "clips"
        if node_dir.name.startswith(".") or not folder.is_dir():
            continue
        for path in folder.glob("*.mp4"):
            if path.name.startswith("."):
                continue
            try:
                info = path.stat()
            except OSError:
                continue
            if not path.is_file():
                continue
            clips.append(
                {
                    "node": node_dir.name,
                    "name": path.name,
                    "path": f"{root.name}/{node_dir.name}/clips/{path.name}",
                    "bytes": info.st_size,
                    "created": info.st_mtime,
                }
            )
    clips.sort(key=lambda c: (c["created"], c["name"]), reverse=True)
    return clips
