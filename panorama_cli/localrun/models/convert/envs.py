"""The converters' virtual environments: one isolated, cached environment per converter.

Each converter (:mod:`.mxnet`, :mod:`.tensorflow`, :mod:`.pytorch`) names the packages its
script needs (``REQUIREMENTS``, exact pins). :func:`ensure_env` builds an environment of
exactly those on the interpreter that runs panorama-cli, without its site-packages (the
framework's pins, e.g. ``numpy<1.24`` for mxnet 1.9.1, never meet panorama-cli's packages),
once: ``<cache>/<key>`` is a symlink published only after pip succeeded, ``key`` the sha256 of
the interpreter and the requirements, built under a file lock (two runs never build it twice)
with a progress line on stderr; a failed build leaves nothing. The work is
:func:`panorama_cli.localrun.apps.deps.venv.ensure_venv` with ``isolated=True``.

Cache folder: ``$PANORAMA_CLI_CONVERTERS_DIR``, else
``$XDG_CACHE_HOME/panorama-cli/converters`` (``~/.cache/...``). Several GiB for all three
frameworks (mxnet's is about 430 MiB).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

Notify = Callable[[str, dict[str, object]], None]


def user_cache() -> Path:
    """``$XDG_CACHE_HOME/panorama-cli`` (``~/.cache/panorama-cli`` when unset)."""
    home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(home) / "panorama-cli"


def envs_dir() -> Path:
    """Where the converter environments live (see the module docstring)."""
    override = os.environ.get("PANORAMA_CLI_CONVERTERS_DIR")
    return Path(override) if override else user_cache() / "converters"


def env_python(requirements: Sequence[str], cache_dir: Path | None = None) -> Path | None:
    """The python of the already built environment of ``requirements``, or None (builds
    nothing; for tests and ``status``-like questions)."""
    from panorama_cli.localrun.apps.deps.venv import cache_key

    key = cache_key(sys.executable, platform.python_version(), (), requirements, True)
    python = (cache_dir or envs_dir()) / key / "bin" / "python"
    return python if python.exists() else None


def ensure_env(
    name: str,
    requirements: Sequence[str],
    notify: Notify,
    *,
    cache_dir: Path | None = None,
) -> str:
    """The python of converter ``name``'s environment, built first when missing.

    Args:
        name: the converter (``"mxnet"``), for messages.
        requirements: PEP 508 strings, installed with pip (the user's pip configuration).
        notify: receives ("note", {"text"}) events: that the environment is being built
            (minutes, once) and how long it took.
        cache_dir: default :func:`envs_dir`.

    Returns:
        Path of the environment's ``bin/python`` (in its real folder).

    Raises:
        UserError: venv or pip failed (pip's error line; nothing is left in the cache).
    """
    from panorama_cli.localrun.apps.deps.venv import ensure_venv

    folder = cache_dir or envs_dir()
    if env_python(requirements, folder) is None:
        notify(
            "note",
            {
                "text": f"preparing the {name} converter environment in {folder} "
                f"({', '.join(requirements)}), first time only"
            },
        )
    start = time.monotonic()
    python, built = ensure_venv(
        folder,
        sys.executable,
        platform.python_version(),
        (),
        requirements,
        label=f"{name} converter",
        notify=notify,
        isolated=True,
    )
    if built:
        notify(
            "note",
            {"text": f"{name} converter environment ready in {time.monotonic() - start:.1f} s"},
        )
    return python
