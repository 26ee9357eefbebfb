"""Who a control-socket connection is: a per-node credential, never the name a client states.

The runner knows which node each process is because it started it (host mode, containers) or
because the engine started it with that node's own credential (``--external-nodes``, the
fleet). A node's credential is ``node_token(key, node)``: HMAC-SHA256 of the node's name under
a key only the runner holds (a fresh random key per run in host mode; the bundle's
``control.key`` secret in the fleet), URL-safe base64 without padding (43 characters). The
app's SDK sends it in its ``hello``; the runner compares it in constant time with the token of
the node the hello names, so an app that holds its own token cannot make another node's.

The app finds its token in ``PANORAMA_LOCALRUN_TOKEN`` (host mode and ``run --in-container``)
or in the file ``PANORAMA_LOCALRUN_TOKEN_FILE`` names (a compose or Kubernetes secret file).
The key is never given to an app.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from panorama_cli.errors import UserError

log = logging.getLogger(__name__)

#: The app's environment variable holding its own token.
TOKEN_ENV = "PANORAMA_LOCALRUN_TOKEN"
#: The app's environment variable naming a file that holds its own token (fleet secrets).
TOKEN_FILE_ENV = "PANORAMA_LOCALRUN_TOKEN_FILE"
#: Bytes of a control key.
KEY_BYTES = 32
#: Largest key file read (bytes): a key file is 64 hex characters and a newline.
_MAX_KEY_FILE = 4096


def new_key() -> bytes:
    """A fresh random control key (:data:`KEY_BYTES` bytes from ``secrets``)."""
    return secrets.token_bytes(KEY_BYTES)


def node_token(key: bytes, node: str) -> str:
    """The credential of ``node`` under ``key``: HMAC-SHA256(key, node name), URL-safe base64
    without padding (43 ASCII characters)."""
    digest = hmac.new(key, node.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def token_matches(key: bytes, node: str, token: object) -> bool:
    """Whether ``token`` (as a client sent it: any JSON value) is ``node``'s credential.

    Constant-time for strings of the right length; anything that is not a string is False.
    """
    if not isinstance(token, str):
        return False
    return hmac.compare_digest(node_token(key, node).encode("ascii"), token.encode("utf-8"))


def key_to_text(key: bytes) -> str:
    """The key as a key file holds it: lowercase hex and a newline."""
    return key.hex() + "\n"


def read_key(path: Path) -> bytes:
    """A control key from a key file (hex; whitespace around it ignored).

    Raises:
        UserError: the file cannot be read, is not a regular file, or holds no
            :data:`KEY_BYTES`-byte hex key (one line naming the file).
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        raise UserError(
            f"{path}: cannot read the control key ({exc.strerror or exc})",
            hint="give --control-key a regular file made by export (secrets/control.key)",
        ) from None
    try:
        import stat

        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UserError(f"{path}: the control key is not a regular file")
        data = os.read(fd, _MAX_KEY_FILE)
    finally:
        os.close(fd)
    try:
        key = bytes.fromhex(data.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise UserError(
            f"{path}: not a control key ({KEY_BYTES * 2} hex characters expected)",
            hint="export writes one as secrets/control.key",
        )
    log.debug("control key read from %s", path)
    return key
