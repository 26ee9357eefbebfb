"""Temporary credentials for kvssink in a file, renewed before they expire.

:class:`KVSFileCredentialsHandler` writes credentials to the file named by kvssink's
``credential-path`` property (format: :func:`format_credentials_file`) and rewrites it ahead
of the expiration. kvssink reads the file again when the credentials it holds near their
expiration (``readFileCredentials`` of the KVS producer C SDK), so a stream survives any
number of renewals.

Where the credentials come from (the first that applies):

1. ``role_arn`` given: STS ``AssumeRole`` of that role for ``duration``.
2. The boto3 session's credentials are renewable (the Panorama Application Role, an assumed
   role, a container or instance role): they are used as they are; botocore renews them when
   they near expiry, which is when the handler asks again. Their expiration is botocore's
   private ``_expiry_time``; without it, :attr:`KVSFileCredentialsHandler.NOMINAL_LIFETIME`.
3. Long-term keys (an IAM user): STS ``GetSessionToken`` for ``duration``, so that no
   long-term secret is written to disk.

Renewal is driven from the frame loop: :meth:`~KVSFileCredentialsHandler.check_refresh`
ticks an :class:`~backpack.timepiece.AtSchedule` set to ``expiration - refresh_margin``; with
an executor the STS call runs there and the loop does not wait. A failed renewal is logged and
retried after ``retry_interval``.
"""

from __future__ import annotations

import datetime
import logging
import os
import tempfile
import threading
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from backpack._optional import require
from backpack.kvs_credentials import (
    KVSCredentials,
    KVSCredentialsError,
    KVSCredentialsHandler,
    mask_key,
    session_credentials,
)
from backpack.timepiece import AtSchedule, Callback, seconds

_UTC = datetime.timezone.utc
_NEVER = datetime.datetime(9999, 1, 1, tzinfo=_UTC)


def format_credentials_file(creds: KVSCredentials) -> str:
    """kvssink's credential file: ``CREDENTIALS <key id> <expiration> <secret> <token>``.

    The format is the one ``readFileCredentials`` of the KVS producer C SDK parses
    (whitespace-separated fields; expiration as ``%Y-%m-%dT%H:%M:%SZ`` in UTC). Credentials
    without token and expiration are written as ``CREDENTIALS <key id> <secret>``.

    Raises:
        ValueError: only one of token and expiration is set (the format cannot express it).
    """
    if creds.token is None and creds.expiration is None:
        return f"CREDENTIALS\t{creds.access_key}\t{creds.secret_key}\n"
    if creds.token is None or creds.expiration is None:
        raise ValueError("temporary credentials need both a session token and an expiration")
    expiration = creds.expiration.astimezone(_UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"CREDENTIALS\t{creds.access_key}\t{expiration}\t{creds.secret_key}\t{creds.token}\n"


def write_private_file(path: Path, text: str) -> None:
    """Replace ``path`` atomically (same-directory temp file + rename) with ``text``, mode 0600."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def private_credentials_path() -> Path:
    """``<new 0700 temporary directory>/credentials.txt`` (the directory is created)."""
    return Path(tempfile.mkdtemp(prefix="backpack-kvs-")) / "credentials.txt"


class KVSFileCredentialsHandler(KVSCredentialsHandler):
    """Keeps a kvssink credential file filled with valid temporary credentials.

    The first credentials are written by the constructor, so the file exists before kvssink
    starts. Call :meth:`check_refresh` regularly (:class:`~backpack.kvs.KVSSkyLine` does it
    on every ``put()``).

    Args:
        credentials_path: the file (its directory must exist); written with mode 0600.
            Default: ``credentials.txt`` in a new private (0700) temporary directory, never a
            fixed name in a world-writable folder such as /tmp (another user could plant a
            symlink there or read the file).
        boto3_session: session for STS and credentials; None: ``boto3.Session()``.
        role_arn: role to assume with STS (case 1 of the module docstring).
        role_session_name: ``RoleSessionName`` for AssumeRole.
        duration: lifetime asked from STS (AssumeRole / GetSessionToken), timedelta or s.
        refresh_margin: renew this long before the expiration (timedelta or seconds).
        retry_interval: wait after a failed renewal, and the shortest time between two
            renewals (timedelta or seconds).
        executor: runs renewals (STS calls); None runs them inside :meth:`check_refresh`.
        parent_logger: logger to attach this handler's logger to.

    Raises:
        KVSCredentialsError: the first credentials could not be obtained (STS error, no
            credentials, or temporary credentials of unknown expiration).
        OSError: the file cannot be written.
    """

    #: Default refresh margin (the aws-panorama-samples backpack renewed 2 minutes ahead;
    #: kvssink needs a little time to notice the new file).
    REFRESH_BEFORE_EXPIRATION = datetime.timedelta(minutes=5)
    #: Lifetime assumed for renewable credentials whose expiration botocore does not expose.
    NOMINAL_LIFETIME = datetime.timedelta(minutes=15)

    def __init__(
        self,
        credentials_path: str | os.PathLike[str] | None = None,
        *,
        boto3_session: Any = None,
        role_arn: str | None = None,
        role_session_name: str = "backpack-kvssink",
        duration: datetime.timedelta | float = datetime.timedelta(hours=1),
        refresh_margin: datetime.timedelta | float | None = None,
        retry_interval: datetime.timedelta | float = datetime.timedelta(seconds=30),
        executor: Executor | None = None,
        parent_logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(parent_logger=parent_logger)
        self.credentials_path = (
            Path(credentials_path) if credentials_path is not None else private_credentials_path()
        )
        self._session = boto3_session
        self.role_arn = role_arn
        self.role_session_name = role_session_name
        self.duration_s = int(seconds(duration))
        margin = self.REFRESH_BEFORE_EXPIRATION if refresh_margin is None else refresh_margin
        self.refresh_margin_s = seconds(margin)
        self.retry_interval_s = seconds(retry_interval)
        self.refresh_count = 0
        self.source = "unknown"
        self.expiration: datetime.datetime | None = None
        self.access_key_hint = "****"
        self._sts: Any = None
        self._lock = threading.Lock()
        self._schedule = AtSchedule(
            at=datetime.datetime.now(_UTC), callback=Callback(self._scheduled, executor=executor)
        )
        self.refresh()

    @property
    def next_refresh(self) -> datetime.datetime:
        """When the next renewal is due (aware datetime)."""
        return self._schedule.at

    def sink_properties(self) -> dict[str, str]:
        return {"credential-path": os.fspath(self.credentials_path)}

    def check_refresh(self) -> None:
        """Renew the credentials if due (cheap otherwise: one float comparison)."""
        self._schedule.tick()

    def refresh(self) -> KVSCredentials:
        """Fetch new credentials, rewrite the file and schedule the next renewal now.

        Returns:
            The credentials written.

        Raises:
            KVSCredentialsError: the credentials could not be obtained.
            OSError: the file cannot be written.
        """
        with self._lock:
            creds = self._fetch()
            write_private_file(self.credentials_path, format_credentials_file(creds))
            self.refresh_count += 1
            self.expiration = creds.expiration
            self.access_key_hint = mask_key(creds.access_key)
            now = datetime.datetime.now(_UTC)
            if creds.expiration is None:
                due = None
            else:
                due = creds.expiration - datetime.timedelta(seconds=self.refresh_margin_s)
                earliest = now + datetime.timedelta(seconds=self.retry_interval_s)
                if due < earliest:
                    self.logger.warning(
                        "credentials expire at %s, within the refresh margin; renewing at %s",
                        creds.expiration.isoformat(),
                        earliest.isoformat(),
                    )
                    due = earliest
            self.logger.info(
                "wrote %s credentials %s (expiring %s) to %s; next renewal %s",
                self.source,
                self.access_key_hint,
                creds.expiration.isoformat() if creds.expiration else "never",
                self.credentials_path,
                due.isoformat() if due else "never",
            )
            self._schedule.at = _NEVER if due is None else due
            return creds

    def _scheduled(self) -> None:
        try:
            self.refresh()
        except Exception as exc:
            retry = datetime.datetime.now(_UTC) + datetime.timedelta(seconds=self.retry_interval_s)
            self.logger.error(
                "renewing kvssink credentials failed (%s: %s); retrying at %s",
                type(exc).__name__,
                exc,
                retry.isoformat(),
            )
            self._schedule.at = retry

    def _fetch(self) -> KVSCredentials:
        feature = "KVSFileCredentialsHandler"
        if self.role_arn:
            self.source = "assumed-role"
            response = self._sts_client().assume_role(
                RoleArn=self.role_arn,
                RoleSessionName=self.role_session_name,
                DurationSeconds=self.duration_s,
            )
            return _from_sts(response)
        creds, refreshable = session_credentials(self._boto3_session(), feature)
        if refreshable:
            self.source = "session-role"
            if creds.expiration is None:
                expiration = datetime.datetime.now(_UTC) + self.NOMINAL_LIFETIME
                return KVSCredentials(creds.access_key, creds.secret_key, creds.token, expiration)
            return creds
        if creds.token:
            raise KVSCredentialsError(
                f"{feature}: the session has temporary credentials without a known expiration "
                "(e.g. AWS_SESSION_TOKEN in the environment); pass role_arn, or use "
                "KVSInlineCredentialsHandler"
            )
        self.source = "session-token"
        return _from_sts(self._sts_client().get_session_token(DurationSeconds=self.duration_s))

    def _boto3_session(self) -> Any:
        if self._session is None:
            self._session = require("boto3", "KVSFileCredentialsHandler").Session()
        return self._session

    def _sts_client(self) -> Any:
        if self._sts is None:
            self._sts = self._boto3_session().client("sts")
        return self._sts

    def __repr__(self) -> str:
        expiration = self.expiration.isoformat() if self.expiration else None
        return (
            f"<{self.__class__.__name__} path={self.credentials_path} source={self.source} "
            f"access_key={self.access_key_hint} expiration={expiration} "
            f"next_refresh={self.next_refresh.isoformat()} refreshes={self.refresh_count}>"
        )


def _from_sts(response: dict[str, Any]) -> KVSCredentials:
    try:
        creds = response["Credentials"]
        return KVSCredentials(
            creds["AccessKeyId"],
            creds["SecretAccessKey"],
            creds["SessionToken"],
            creds["Expiration"],
        )
    except (KeyError, TypeError) as exc:
        raise KVSCredentialsError(f"unexpected STS response: missing {exc}") from None
