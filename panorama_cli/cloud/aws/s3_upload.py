"""Uploads to Amazon S3: skip what exists, then managed multipart transfers in parallel.

:func:`upload_all` asks ``HeadObject`` for each object first (package assets are named by
their content's sha256, so an existing key already holds the same bytes) and uploads the
rest through one s3transfer ``TransferManager``: files of at least
:data:`MULTIPART_THRESHOLD` bytes go as multipart uploads of :data:`MULTIPART_CHUNKSIZE`-byte
parts, up to :data:`MAX_CONCURRENCY` requests in flight across all files. Parts are read
from the file when sent, so memory does not grow with the file size. Every object is written
with ``ACL=bucket-owner-full-control``, as Panorama's storage location asks.

A failed upload is reported in its :class:`UploadResult` and the others go on; s3transfer
aborts the failed multipart upload. ``KeyboardInterrupt`` cancels every transfer (their
multipart uploads are aborted) and propagates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panorama_cli.cloud.aws.s3 import MiB, ProgressAborted, ProgressRelay
from panorama_cli.cloud.aws.session import make_client, translate_client_error
from panorama_cli.errors import UserError

log = logging.getLogger(__name__)

#: Files at least this big (bytes) are sent as multipart uploads.
MULTIPART_THRESHOLD = 16 * MiB
#: Part size of multipart uploads, bytes.
MULTIPART_CHUNKSIZE = 16 * MiB
#: Requests in flight at once, across all files of one :func:`upload_all`.
MAX_CONCURRENCY = 8
#: ACL of every uploaded object (the account that owns the storage bucket owns the objects).
ACL = "bucket-owner-full-control"


@dataclass(frozen=True)
class Upload:
    """One local file to put at ``s3://<bucket>/<key>``.

    Attributes:
        path: local file.
        bucket: S3 bucket name.
        key: object key.
        label: short name for progress and reports, e.g. ``"assets/<sha>.tar.gz"``.
    """

    path: Path
    bucket: str
    key: str
    label: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass
class UploadResult:
    """What happened to one :class:`Upload`.

    Attributes:
        upload: the request.
        size: bytes of the local file (0 when it could not be read).
        skipped: the object already existed (nothing was sent).
        error: why the upload failed, or None.
    """

    upload: Upload
    size: int
    skipped: bool = False
    error: UserError | None = None

    @property
    def sent(self) -> int:
        """Bytes uploaded (0 for a skipped or failed upload)."""
        return 0 if self.skipped or self.error else self.size


def transfer_config() -> Any:
    """The ``boto3.s3.transfer.TransferConfig`` of uploads (see the module constants)."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD,
        multipart_chunksize=MULTIPART_CHUNKSIZE,
        max_concurrency=MAX_CONCURRENCY,
        use_threads=True,
        preferred_transfer_client="classic",
    )


def object_exists(s3: Any, bucket: str, key: str) -> bool:
    """HeadObject: True when ``s3://bucket/key`` exists, False on HTTP 404.

    Raises:
        UserError: any other error (access denied, missing bucket, credentials, ...).
    """
    import botocore.exceptions

    try:
        s3.head_object(Bucket=bucket, Key=key)
    except botocore.exceptions.ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if status == 404 and code != "NoSuchBucket":
            return False
        if code == "NoSuchBucket":
            raise UserError(
                f"the storage bucket {bucket!r} does not exist",
                hint="the package's StorageLocation names it; check the region and account",
            ) from exc
        raise translate_client_error(exc) from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise translate_client_error(exc) from exc
    return True


def upload_all(
    session: Any,
    uploads: Sequence[Upload],
    *,
    progress_for: Callable[[Upload, int], Callable[[int], None]] | None = None,
) -> list[UploadResult]:
    """Upload the files that are not in S3 yet; return one result per upload, in order.

    Args:
        session: from :func:`panorama_cli.cloud.aws.session.make_session`.
        uploads: files and their destinations.
        progress_for: called once per file that will be sent, with the upload and its size
            in bytes; returns the callback that receives the bytes sent since its previous
            call (may be negative when a part is retried). Callbacks run in worker threads,
            one at a time. What a callback raises (e.g. ``KeyboardInterrupt``) cancels every
            transfer and is re-raised here.

    Returns:
        :class:`UploadResult` per upload: skipped, sent, or failed with a ``UserError``.

    Raises:
        UserError: a HeadObject failed for a reason other than "not found" (e.g. access
            denied), which would fail every upload alike.
        KeyboardInterrupt: the transfers were cancelled.
    """
    from boto3.s3.transfer import create_transfer_manager

    s3 = make_client(session, "s3")
    results: list[UploadResult] = []
    pending: list[UploadResult] = []
    for upload in uploads:
        try:
            size = upload.path.stat().st_size
        except OSError as exc:
            error = UserError(f"cannot read {upload.label}: {exc.strerror or exc}")
            results.append(UploadResult(upload, 0, error=error))
            continue
        result = UploadResult(upload, size)
        result.skipped = object_exists(s3, upload.bucket, upload.key)
        results.append(result)
        if not result.skipped:
            pending.append(result)
    if not pending:
        return results

    relays: list[ProgressRelay] = []
    with create_transfer_manager(s3, transfer_config()) as manager:
        futures = []
        for result in pending:
            subscribers = []
            if progress_for is not None:
                relay = ProgressRelay(progress_for(result.upload, result.size))
                relays.append(relay)
                subscribers.append(_Subscriber(relay))
            future = manager.upload(
                str(result.upload.path),
                result.upload.bucket,
                result.upload.key,
                extra_args={"ACL": ACL},
                subscribers=subscribers,
            )
            futures.append((result, future))
        for result, future in futures:
            result.error = _outcome(future, result.upload, relays)
    return results


def _outcome(future: Any, upload: Upload, relays: list[ProgressRelay]) -> UserError | None:
    """Wait for one transfer; its error as a UserError, or None when it succeeded."""
    import botocore.exceptions
    from boto3.exceptions import RetriesExceededError, S3UploadFailedError

    try:
        future.result()
    except ProgressAborted:
        raised = next((r.raised for r in relays if r.raised is not None), None)
        if raised is None:  # pragma: no cover - defensive
            raise
        raise raised from None
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        cause = translate_client_error(exc)
        return UserError(f"upload of {upload.label} to {upload.uri} failed: {cause.message}")
    except (RetriesExceededError, S3UploadFailedError) as exc:
        return UserError(f"upload of {upload.label} to {upload.uri} failed: {exc}")
    except OSError as exc:
        return UserError(f"cannot read {upload.label}: {exc.strerror or exc}")
    return None


class _Subscriber:
    """s3transfer subscriber relaying ``on_progress`` to a :class:`ProgressRelay`."""

    def __init__(self, relay: ProgressRelay):
        self._relay = relay

    def on_queued(self, future: Any, **kwargs: Any) -> None:
        pass

    def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
        self._relay(bytes_transferred)

    def on_done(self, future: Any, **kwargs: Any) -> None:
        pass
