"""The Debian mirror this machine's apt uses (for bootstrapping base images from it).

Reads apt's one-line (``sources.list``) and deb822 (``*.sources``) files; env
``PANORAMA_CI_MIRROR`` wins; ``http://deb.debian.org/debian`` when nothing says otherwise.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"


def _deb822_stanzas(text: str) -> Iterator[dict[str, str]]:
    stanza: dict[str, str] = {}
    last = None
    for raw in [*text.splitlines(), ""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if stanza:
                yield stanza
            stanza, last = {}, None
        elif raw[0] in " \t" and last:
            stanza[last] += " " + raw.strip()
        else:
            key, sep, value = raw.partition(":")
            if sep:
                last = key.strip().lower()
                stanza[last] = value.strip()


def mirrors_from_sources(sources_dir: Path, sources_list: Path, suite: str) -> Iterator[str]:
    """The ``main`` mirrors of ``suite`` in apt's one-line and deb822 sources."""
    files = [sources_list] if sources_list.is_file() else []
    if sources_dir.is_dir():
        files += sorted(p for p in sources_dir.iterdir() if p.suffix in (".list", ".sources"))
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if path.suffix == ".sources":
            for st in _deb822_stanzas(text):
                if st.get("enabled", "yes").lower() == "no" or "deb" not in st.get("types", ""):
                    continue
                if suite in st.get("suites", "").split() and "main" in st.get("components", ""):
                    yield from st.get("uris", "").split()
            continue
        for line in text.splitlines():
            words = line.split("#", 1)[0].split()
            if len(words) < 4 or words[0] != "deb":
                continue
            rest = words[1:]
            if rest[0].startswith("["):  # deb [arch=amd64 ...] uri suite components
                while rest and not rest[0].endswith("]"):
                    rest = rest[1:]
                rest = rest[1:]
            if len(rest) >= 3 and rest[1] == suite and "main" in rest[2:]:
                yield rest[0]


def detect_mirror(suite: str = SUITE) -> str:
    """The Debian mirror this machine's apt uses for ``suite`` (env PANORAMA_CI_MIRROR wins)."""
    override = os.environ.get("PANORAMA_CI_MIRROR")
    if override:
        return override.rstrip("/")
    for uri in mirrors_from_sources(
        Path("/etc/apt/sources.list.d"), Path("/etc/apt/sources.list"), suite
    ):
        if uri.startswith(("http://", "https://")):
            return uri.rstrip("/")
    return DEFAULT_MIRROR
