"""Camera sources from the environment: ``PANORAMA_CAMERA_<NODE>``, so that a camera URL with a
password never has to be on a command line (``ps``, ``/proc/PID/cmdline``), in a systemd unit's
ExecStart or in a manifest.

The variable of a camera node is ``PANORAMA_CAMERA_`` followed by the node's name upper-cased,
every character other than ``A-Z`` and ``0-9`` replaced by ``_`` (:func:`env_name`):
``front_camera`` -> ``PANORAMA_CAMERA_FRONT_CAMERA``, ``lobby-cam.2`` ->
``PANORAMA_CAMERA_LOBBY_CAM_2``. Its value is a source as ``--camera NODE=SOURCE`` takes it,
``@FILE`` included (the file's text). An empty variable counts as unset.

Precedence, highest first: ``--camera NODE=...``, then ``PANORAMA_CAMERA_<NODE>``, then the
graph's ``streamUrl`` default. Two camera nodes whose names map to the same variable cannot be
given one by it (a usage error names both; use ``--camera``). Variables that name no camera
node are ignored.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping

from panorama_cli.errors import UsageError

log = logging.getLogger(__name__)

PREFIX = "PANORAMA_CAMERA_"
_NOT_ALNUM = re.compile(r"[^A-Z0-9]")


def env_name(node: str) -> str:
    """The variable of camera node ``node`` (see the module docstring), e.g.
    ``env_name("lobby-cam.2") == "PANORAMA_CAMERA_LOBBY_CAM_2"``."""
    return PREFIX + _NOT_ALNUM.sub("_", node.upper())


def camera_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``PANORAMA_CAMERA_*`` variables of ``environ`` that are set and not empty."""
    return {k: v for k, v in environ.items() if k.startswith(PREFIX) and len(k) > len(PREFIX) and v}


def env_sources(
    camera_nodes: Iterable[str], environ: Mapping[str, str], given: Iterable[str] = ()
) -> dict[str, str]:
    """Camera node -> source, for the nodes in ``camera_nodes`` not in ``given`` (the
    ``--camera`` ones, which win) that have a variable in ``environ``; ``@FILE`` values read.

    Raises:
        UsageError: two camera nodes share the variable that is set, or an ``@FILE`` that
            cannot be read (exit 2).
    """
    from panorama_cli.localrun.plan import value_from_file

    nodes = list(camera_nodes)
    by_name: dict[str, list[str]] = {}
    for node in nodes:
        by_name.setdefault(env_name(node), []).append(node)
    skip = set(given)
    found: dict[str, str] = {}
    for name, owners in by_name.items():
        value = environ.get(name)
        if not value:
            continue
        wanted = [n for n in owners if n not in skip]
        if not wanted:
            log.debug("%s: --camera given for %s, the variable is not used", name, owners[0])
            continue
        if len(owners) > 1:
            raise UsageError(
                f"{name} names several camera nodes: {', '.join(owners)}",
                hint=" ".join(f"--camera {n}=@FILE" for n in wanted) + " instead",
            )
        node = wanted[0]
        found[node] = value_from_file(name, node, value[1:]) if value.startswith("@") else value
        log.debug("camera %s: source from %s", node, name)
    return found


def carries_secret(source: str) -> bool:
    """Whether ``source`` holds a password (an URL's ``user:password@``, anywhere in it, or a
    ``password=``/``token=``-like query value): what
    :func:`~panorama_cli.localrun.frames.frame.redact_uri` would hide."""
    from panorama_cli.localrun.frames.frame import redact_uri

    return redact_uri(source) != source


def command_line_warning(values: Iterable[str]) -> str | None:
    """One warning line when a ``--camera`` value typed on the command line carries a
    password (``values``: the option's ``NODE=SOURCE`` texts), else None."""
    nodes = [
        text.partition("=")[0]
        for text in values
        if not text.partition("=")[2].startswith("@") and carries_secret(text.partition("=")[2])
    ]
    if not nodes:
        return None
    node = nodes[0]
    return (
        f"--camera {node}=...: its password is in this command line, which every user of the "
        f"machine can read (ps, /proc/PID/cmdline); pass --camera {node}=@FILE (a 0600 file "
        f"holding the URL) or set {env_name(node)} instead"
    )
