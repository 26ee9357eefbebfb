"""Amazon S3: ``s3://`` URIs and atomic managed downloads.

Downloads use boto3's managed transfer (s3transfer): objects larger than
:data:`MULTIPART_THRESHOLD` are fetched as parallel ranged ``GetObject`` requests of
:data:`MULTIPART_CHUNKSIZE` bytes, with s3transfer's own retries and ETag pinning.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from panorama_cli.cloud.aws.session import make_client, translate_client_error
from panorama_cli.errors import UserError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import boto3

log = logging.getLogger(__name__)

MiB = 1024 * 1024

#: Objects at least this big (bytes) are downloaded as parallel ranged GETs.
MULTIPART_THRESHOLD = 8 * MiB
#: Size (bytes) of each ranged GET of a multipart download.
MULTIPART_CHUNKSIZE = 8 * MiB
#: Parallel requests per download.
MAX_CONCURRENCY = 8

_URI_EXAMPLE = "s3://my-bucket/raw_models/model.tar.gz"
_BUCKET_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://BUCKET/KEY`` into ``(bucket, key)``.

    The key is returned exactly as written (no URL-decoding); it may contain further
    slashes. Access-point ARNs are not accepted as bucket names.

    Args:
        uri: an S3 object URI, e.g. ``"s3://my-bucket/raw_models/model.tar.gz"``.

    Returns:
        ``(bucket, key)``, e.g. ``("my-bucket", "raw_models/model.tar.gz")``.

    Raises:
        UserError: not an ``s3://`` URI, no bucket, bad bucket name, no key, or a key
            ending in ``/`` (a folder, not an object).
    """
    hint = f"use s3://BUCKET/KEY, e.g. {_URI_EXAMPLE}"
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise UserError(f"not an S3 URI: {uri!r}", hint=hint)
    rest = uri[len("s3://") :]
    bucket, sep, key = rest.partition("/")
    if not bucket:
        raise UserError(f"S3 URI has no bucket: {uri!r}", hint=hint)
    if not _BUCKET_RE.match(bucket):
        raise UserError(f"invalid S3 bucket name {bucket!r} in {uri!r}", hint=hint)
    if not sep or not key:
        raise UserError(f"S3 URI names a bucket but no object: {uri!r}", hint=hint)
    if key.endswith("/"):
        raise UserError(
            f"S3 URI ends with '/', which is a folder, not an object: {uri!r}",
            hint=f"name the object itself, e.g. {uri}model.tar.gz",
        )
    return bucket, key


class ProgressAborted(Exception):
    """Raised into s3transfer when the caller's progress callback raised.

    s3transfer's worker tasks only catch ``Exception``; a ``KeyboardInterrupt`` raised
    from a callback in a worker thread would escape them without cancelling the transfer.
    This ordinary exception makes s3transfer cancel cleanly; :func:`download` then
    re-raises the caller's original exception (as :mod:`.s3_upload` does).
    """


class ProgressRelay:
    """Serialises calls to the caller's progress callback and captures what it raises."""

    def __init__(self, callback: Callable[[int], None]):
        self._callback = callback
        self._lock = threading.Lock()
        self.raised: BaseException | None = None

    def __call__(self, bytes_amount: int) -> None:
        with self._lock:
            if self.raised is not None:
                raise ProgressAborted()
            try:
                self._callback(bytes_amount)
            except BaseException as exc:  # noqa: B036 - re-raised by download()
                self.raised = exc
                raise ProgressAborted() from exc


def download(
    uri: str,
    dest: Path,
    *,
    session: boto3.Session,
    progress: Callable[[int], None] | None = None,
    on_size: Callable[[int], None] | None = None,
) -> Path:
    """Download the S3 object ``uri`` to the file ``dest``, atomically.

    Steps: ``HeadObject`` (fails fast on a missing object or denied access), then
    ``on_size(ContentLength)``, then a managed download (``client.download_file`` with
    a ``TransferConfig``; ``GetObject``, ranged and parallel above
    :data:`MULTIPART_THRESHOLD` bytes) into a hidden temporary file in ``dest``'s folder,
    which is then moved onto ``dest`` with ``os.replace``. ``dest`` is therefore either
    left as it was or replaced by the complete object; on any exception, including
    ``KeyboardInterrupt``, the temporary file is removed.

    Args:
        uri: ``s3://BUCKET/KEY`` (see :func:`parse_s3_uri`).
        dest: file path to write; its folder must exist; an existing file is replaced.
        session: from :func:`panorama_cli.cloud.aws.session.make_session`.
        progress: called with the number of bytes received since the previous call
            (bytes; can be negative when s3transfer retries a part and discards what it
            had received). Calls come from worker threads but never run concurrently.
            Whatever it raises (e.g. ``KeyboardInterrupt``) cancels the download and is
            re-raised from this function.
        on_size: called once, before any data is transferred, with the object's size
            in bytes.

    Returns:
        ``dest``.

    Raises:
        UserError: malformed URI, ``dest``'s folder missing or ``dest`` is a folder, no
            object at the URI (HTTP 404), access denied (HTTP 403), the object changed
            size while downloading, local write errors, or any AWS error (see
            :func:`~panorama_cli.cloud.aws.session.translate_client_error`).
    """
    import botocore.exceptions
    from boto3.exceptions import RetriesExceededError
    from boto3.s3.transfer import TransferConfig
    from s3transfer.exceptions import S3DownloadFailedError

    bucket, key = parse_s3_uri(uri)
    dest = Path(dest)
    folder = dest.parent
    if not folder.is_dir():
        raise UserError(
            f"cannot download {uri}: folder {folder} does not exist",
            hint=f"create it first (mkdir -p {folder})",
        )
    if dest.is_dir():
        raise UserError(
            f"cannot download {uri}: {dest} is a folder",
            hint="give the path of the file to write, including its name",
        )

    client = make_client(session, "s3")
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except botocore.exceptions.ClientError as exc:
        raise _head_error(exc, uri) from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise translate_client_error(exc) from exc
    size = int(head["ContentLength"])
    if on_size is not None:
        on_size(size)

    config = TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD,
        multipart_chunksize=MULTIPART_CHUNKSIZE,
        max_concurrency=MAX_CONCURRENCY,
        use_threads=True,
        preferred_transfer_client="classic",
    )
    relay = ProgressRelay(progress) if progress is not None else None
    # s3transfer itself writes to "<tmp>.<random>" and renames that to tmp; both names
    # start with our unique prefix, so everything under it is ours to clean up.
    tmp = folder / f".{dest.name}.{secrets.token_hex(8)}.part"
    try:
        try:
            client.download_file(bucket, key, str(tmp), Config=config, Callback=relay)
        except ProgressAborted:
            if relay is None or relay.raised is None:  # pragma: no cover - defensive
                raise
            raise relay.raised from None
        except botocore.exceptions.ClientError as exc:
            raise _head_error(exc, uri) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise translate_client_error(exc) from exc
        except RetriesExceededError as exc:
            cause = translate_client_error(exc.last_exception)
            raise UserError(
                f"download of {uri} failed after retries: {cause.message}", hint=cause.hint
            ) from exc
        except S3DownloadFailedError as exc:
            raise _changed_error(uri) from exc
        except OSError as exc:
            raise UserError(
                f"cannot write {dest}: {exc.strerror or exc}",
                hint="check free disk space and that the folder is writable",
            ) from exc
        got = tmp.stat().st_size
        if got != size:
            raise _changed_error(uri)
        os.replace(tmp, dest)
    except BaseException:
        _remove_partials(tmp)
        raise
    return dest


def _head_error(exc: Any, uri: str) -> UserError:
    """Translate a ClientError about the object ``uri`` (HeadObject/GetObject)."""
    error = exc.response.get("Error", {}) or {}
    code = str(error.get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    bucket = parse_s3_uri(uri)[0]
    if code == "NoSuchBucket":
        return UserError(
            f"no S3 bucket named {bucket!r} (for {uri})",
            hint="check the bucket name in the URI",
        )
    if status == 404 or code in {"404", "NoSuchKey", "NotFound"}:
        return UserError(
            f"no object at {uri}",
            hint=f"check the bucket and key, e.g. `aws s3 ls s3://{bucket}/`",
        )
    if status == 403 or code in {"403", "AccessDenied", "Forbidden"}:
        return UserError(
            f"access denied to {uri}",
            hint="your credentials need s3:GetObject on it (and s3:ListBucket on the "
            "bucket to tell a missing object apart); check AWS_PROFILE or ask your "
            "AWS administrator",
        )
    return translate_client_error(exc)


def _changed_error(uri: str) -> UserError:
    return UserError(
        f"S3 object {uri} changed while it was being downloaded",
        hint="try again once the object is no longer being replaced",
    )


def _remove_partials(tmp: Path) -> None:
    """Remove ``tmp`` and any ``tmp.<suffix>`` s3transfer left next to it."""
    for path in [tmp, *tmp.parent.glob(f"{tmp.name}.*")]:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError:  # pragma: no cover - best effort on the error path
            pass
