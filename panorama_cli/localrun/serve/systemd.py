"""``panorama-cli serve --systemd-unit``: a systemd service unit for these very options.

The unit restarts serve if it fails (``Restart=on-failure``), stops it with SIGTERM (serve's
stop ladder, exit 0) and waits :data:`~panorama_cli.localrun.serve.STOP_TIMEOUT_S` seconds for
it; SIGHUP (``systemctl reload``) re-reads the graph. ExecStart quoting follows systemd.service(5)
("Command lines"): arguments with spaces or quotes are double-quoted with C-style escapes, and
``%`` (a specifier) is doubled, ``$`` written ``$$``.

Credentials never go into the unit: camera sources that carry a password are written to an
environment file (:func:`write_environment_file`: ``PANORAMA_CAMERA_<NODE>=...``, mode 0600 in
a 0700 folder, replaced atomically) that the unit names with ``EnvironmentFile=``; systemd
reads it as root and hands the variables to serve only (systemd.exec(5), "EnvironmentFile=").
Values are single-quoted (taken literally by systemd), or double-quoted with ``\\``, ``"``,
``$`` and backquote escaped when they hold a single quote.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

from panorama_cli.errors import UserError

log = logging.getLogger(__name__)

#: The environment file's name in its folder (``<state dir>/auth/``, beside the login token).
ENVIRONMENT_FILE = "cameras.env"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLAIN = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


def _quote(arg: str) -> str:
    """One ExecStart word (see the module docstring)."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if _PLAIN.match(arg):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _env_value(value: str) -> str:
    """One value of the environment file (see the module docstring)."""
    if "'" not in value:
        return f"'{value}'"
    for char in ("\\", '"', "$", "`"):
        value = value.replace(char, "\\" + char)
    return f'"{value}"'


def environment_text(values: Mapping[str, str]) -> str:
    """The environment file's text: one ``NAME=value`` line per variable, sorted.

    Raises:
        UserError: a name that is no variable name, a value with a line break or NUL.
    """
    lines = ["# panorama-cli serve: camera sources with credentials (keep this file 0600)"]
    for name, value in sorted(values.items()):
        if not _NAME.match(name):
            raise UserError(f"{name!r} is not an environment variable name")
        if any(c in value for c in "\n\r\0"):
            raise UserError(f"{name}: a camera source cannot hold a line break")
        lines.append(f"{name}={_env_value(value)}")
    return "\n".join(lines) + "\n"


def write_environment_file(folder: Path, values: Mapping[str, str]) -> Path:
    """Write :func:`environment_text` to ``folder/cameras.env``: the folder made 0700, the
    file 0600 through a temporary name and a rename (never through a link).

    Returns:
        The file's path.

    Raises:
        UserError: the folder or the file cannot be written (the reason), or the folder is a
            link.
    """
    text = environment_text(values).encode()
    path = Path(folder) / ENVIRONMENT_FILE
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        why = "a link" if exc.errno == errno.ELOOP else (exc.strerror or str(exc))
        raise UserError(f"{folder}: {why}", hint="check --state-dir") from None
    tmp = f".{ENVIRONMENT_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        os.fchmod(dir_fd, 0o700)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            os.write(fd, text)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, ENVIRONMENT_FILE, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        os.fsync(dir_fd)
    except OSError as exc:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise UserError(f"{path}: {exc.strerror or exc}", hint="check --state-dir") from None
    finally:
        os.close(dir_fd)
    log.debug("camera credentials for the unit in %s", path)
    return path


def unit_text(
    argv: Sequence[str],
    working_directory: Path,
    description: str,
    stop_timeout_s: int,
    environment_file: Path | None = None,
) -> str:
    """The unit file's text.

    Args:
        argv: the full serve command line, absolute program path first (no --systemd-unit;
            no password in it: those go to ``environment_file``).
        working_directory: the project folder (serve finds the project from there).
        description: the unit's Description.
        stop_timeout_s: TimeoutStopSec (seconds).
        environment_file: the file of :func:`write_environment_file` (None: none).
    """
    exec_start = " ".join(_quote(a) for a in argv)
    environment = (
        f"EnvironmentFile={str(environment_file).replace('%', '%%')}\n"
        if environment_file is not None
        else ""
    )
    return f"""[Unit]
Description={description}
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
WorkingDirectory={_quote(str(working_directory))}
{environment}ExecStart={exec_start}
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=5
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec={stop_timeout_s}

[Install]
WantedBy=multi-user.target
"""
