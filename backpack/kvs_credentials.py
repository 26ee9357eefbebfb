"""AWS credentials for the Kinesis Video Streams GStreamer sink (``kvssink``).

kvssink does not use the Panorama Application Role by itself; a credentials handler gives it
credentials in one of the three ways kvssink accepts (``kinesis_video_producer_init`` of
amazon-kinesis-video-streams-producer-sdk-cpp's kvssink):

- :class:`KVSInlineCredentialsHandler` (here): the ``access-key`` / ``secret-key`` /
  ``session-token`` properties of kvssink. Static: never refreshed while a stream runs.
- :class:`KVSEnvironmentCredentialsHandler` (here): ``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN`` in the process environment, read by kvssink
  when a stream starts.
- :class:`~backpack.kvs_credentials_file.KVSFileCredentialsHandler`: temporary credentials in
  a file named by the ``credential-path`` property, renewed before they expire. The handler
  to use on a device.

This module holds the base class, the two static handlers and :class:`KVSCredentials`. All
are re-exported by :mod:`backpack.kvs`. Credentials never appear in logs or reprs: only the
last four characters of the access key id are shown. boto3 is imported when a handler needs
it (through :func:`backpack._optional.require`).
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from backpack._optional import require
from backpack.errors import KVSCredentialsError


def mask_key(access_key: str) -> str:
    """``"****WXYZ"``: the last four characters of an access key id, for logs."""
    return "****" + access_key[-4:] if len(access_key) > 8 else "****"


@dataclass(frozen=True)
class KVSCredentials:
    """One set of AWS credentials; its repr hides the secret parts.

    Attributes:
        access_key: access key id.
        secret_key: secret access key.
        token: session token of temporary credentials, else None.
        expiration: when temporary credentials expire (aware datetime), else None.
    """

    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)
    expiration: datetime.datetime | None = None

    def __repr__(self) -> str:
        when = self.expiration.isoformat() if self.expiration else None
        return f"<KVSCredentials access_key={mask_key(self.access_key)} expiration={when}>"


def _boto3_session(boto3_session: Any, feature: str) -> Any:
    if boto3_session is not None:
        return boto3_session
    return require("boto3", feature).Session()


def session_credentials(boto3_session: Any, feature: str) -> tuple[KVSCredentials, bool]:
    """The current credentials of a boto3 session.

    Returns:
        ``(credentials, refreshable)``; ``refreshable`` is True for credentials botocore
        renews by itself (assumed roles, container/instance roles such as Panorama's
        Application Role). Their expiration comes from botocore's private ``_expiry_time``
        (None if absent).

    Raises:
        KVSCredentialsError: the session has no credentials.
    """
    session = _boto3_session(boto3_session, feature)
    creds = session.get_credentials()
    if creds is None:
        raise KVSCredentialsError(f"{feature}: the boto3 session found no AWS credentials")
    frozen = creds.get_frozen_credentials()
    refreshable = hasattr(creds, "refresh_needed")
    expiry = getattr(creds, "_expiry_time", None) if refreshable else None
    return KVSCredentials(frozen.access_key, frozen.secret_key, frozen.token, expiry), refreshable


class KVSCredentialsHandler:
    """Base class: how kvssink gets credentials. Use a subclass.

    :class:`~backpack.kvs.KVSSkyLine` calls :meth:`prepare` before each stream starts, sets
    :meth:`sink_properties` on kvssink and calls :meth:`check_refresh` on each ``put()``.

    Args:
        parent_logger: logger to attach this handler's logger to.
    """

    def __init__(self, *, parent_logger: logging.Logger | None = None) -> None:
        name = self.__class__.__name__
        self.logger = (
            logging.getLogger(f"backpack.kvs.{name}")
            if parent_logger is None
            else parent_logger.getChild(name)
        )

    def prepare(self) -> None:
        """Make the credentials available before a stream starts (default: nothing)."""
        return None

    def sink_properties(self) -> dict[str, str]:
        """kvssink properties to set (they may hold secrets: never log the values)."""
        return {}

    def check_refresh(self) -> None:
        """Heartbeat from the frame loop; refreshes credentials when due (default: nothing)."""
        return None

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__}>"


class _StaticHandler(KVSCredentialsHandler):
    """Credentials given explicitly, or taken from a boto3 session when a stream starts.

    Subclasses set :attr:`allow_refreshable`: whether credentials that expire and are renewed
    (an assumed role) are acceptable.
    """

    allow_refreshable: bool = False

    def __init__(
        self,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        *,
        boto3_session: Any = None,
        parent_logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(parent_logger=parent_logger)
        if bool(aws_access_key_id) != bool(aws_secret_access_key):
            raise ValueError("give both aws_access_key_id and aws_secret_access_key, or neither")
        self._session = boto3_session
        self._explicit = (
            KVSCredentials(aws_access_key_id, aws_secret_access_key, aws_session_token)
            if aws_access_key_id and aws_secret_access_key
            else None
        )
        self.credentials = self._resolve()

    def _resolve(self) -> KVSCredentials:
        if self._explicit is not None:
            return self._explicit
        creds, refreshable = session_credentials(self._session, self.__class__.__name__)
        if refreshable and not self.allow_refreshable:
            raise KVSCredentialsError(
                f"{self.__class__.__name__} cannot follow credentials that expire and are "
                "renewed (an assumed or Panorama application role): use "
                "KVSFileCredentialsHandler"
            )
        if creds.token:
            self.logger.warning(
                "temporary credentials (%s) are not renewed while a stream runs; streaming "
                "stops when they expire. KVSFileCredentialsHandler renews them.",
                mask_key(creds.access_key),
            )
        return creds

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} access_key={mask_key(self.credentials.access_key)}>"


class KVSInlineCredentialsHandler(_StaticHandler):
    """Passes static credentials as kvssink properties (``access-key``, ``secret-key``,
    ``session-token``). For tests with an IAM user's keys; not for production.

    Args:
        aws_access_key_id, aws_secret_access_key, aws_session_token: explicit credentials;
            when omitted, those of ``boto3_session`` (or the default boto3 session).
        boto3_session: where to find credentials when none are given.
        parent_logger: logger to attach this handler's logger to.

    Raises:
        ValueError: only one of the key id and the secret key was given.
        KVSCredentialsError: no credentials, or renewable (role) credentials, which would
            expire inside kvssink.
    """

    allow_refreshable = False

    def sink_properties(self) -> dict[str, str]:
        creds = self.credentials
        props = {"access-key": creds.access_key, "secret-key": creds.secret_key}
        if creds.token:
            props["session-token"] = creds.token
        return props


class KVSEnvironmentCredentialsHandler(_StaticHandler):
    """Puts credentials into ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and
    ``AWS_SESSION_TOKEN`` of this process before each stream starts.

    kvssink reads them only when a stream starts, so credentials that expire are fetched
    again at each :meth:`~backpack.skyline.SkyLine.start_streaming` but not during a stream.
    Note that boto3 clients created later in the process see these variables too.

    Args: as :class:`KVSInlineCredentialsHandler`.

    Raises:
        ValueError: only one of the key id and the secret key was given.
        KVSCredentialsError: the session has no credentials.
    """

    allow_refreshable = True

    def prepare(self) -> None:
        """Fetch the current credentials and put them into the environment."""
        self.credentials = self._resolve()
        creds = self.credentials
        os.environ["AWS_ACCESS_KEY_ID"] = creds.access_key
        os.environ["AWS_SECRET_ACCESS_KEY"] = creds.secret_key
        if creds.token:
            os.environ["AWS_SESSION_TOKEN"] = creds.token
        else:
            os.environ.pop("AWS_SESSION_TOKEN", None)
        self.logger.info("credentials %s set in the environment", mask_key(creds.access_key))
