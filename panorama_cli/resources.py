"""Where templates/ and schemas/ live: inside the installed package (wheel), or at the top of a
source checkout (editable install)."""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def data_dir(name: str) -> Path:
    """Return the folder ``name`` ("templates" or "schemas").

    Raises:
        RuntimeError: the installation is broken (neither location exists).
    """
    for candidate in (_PACKAGE_DIR / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"panorama-cli installation is missing its {name}/ folder")
