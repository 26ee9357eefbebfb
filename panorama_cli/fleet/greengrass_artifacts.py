"""The S3 half of ``deploy --target greengrass``: a bundle file as an artifact (SHA-256, size,
MD5), the bucket check, the "already there" test and the managed upload.

An artifact is uploaded with its SHA-256 in the object's metadata (``x-amz-meta-sha256``) and
skipped when HeadObject shows that SHA-256 there already (or, without the metadata, a
single-part ETag equal to the file's MD5), as package-application skips unchanged assets.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panorama_cli.cloud.aws.s3_upload import transfer_config
from panorama_cli.cloud.aws.session import translate_client_error
from panorama_cli.errors import UserError

log = logging.getLogger(__name__)

#: S3 object metadata key holding the file's SHA-256 (hex).
SHA256_METADATA = "sha256"
_CHUNK = 1 << 20


@dataclass
class Artifact:
    key: str
    path: Path
    sha256: str
    size: int
    md5: str


def hashed(key: str, path: Path) -> Artifact:
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    try:
        with path.open("rb") as stream:
            while chunk := stream.read(_CHUNK):
                sha.update(chunk)
                md5.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return Artifact(key, path, sha.hexdigest(), size, md5.hexdigest())


def check_bucket(s3: Any, bucket: str) -> None:
    """HeadBucket: a missing bucket or a denied one is a one-line error."""
    import botocore.exceptions

    try:
        s3.head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if status == 404 or code in ("404", "NoSuchBucket"):
            raise UserError(
                f"the S3 bucket {bucket!r} does not exist",
                hint="create it (aws s3 mb s3://NAME) in the core devices' region, "
                "or pass an existing one with --bucket",
            ) from exc
        if status == 403:
            raise UserError(
                f"access denied to the S3 bucket {bucket!r}",
                hint="use credentials allowed s3:ListBucket, s3:GetObject and s3:PutObject "
                "on it, or another bucket",
            ) from exc
        raise translate_client_error(exc) from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise translate_client_error(exc) from exc


def unchanged(s3: Any, bucket: str, artifact: Artifact) -> bool:
    """True when ``s3://bucket/key`` already holds the file (its SHA-256 or single-part MD5)."""
    import botocore.exceptions

    try:
        head = s3.head_object(Bucket=bucket, Key=artifact.key)
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            return False
        raise translate_client_error(exc) from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise translate_client_error(exc) from exc
    stored = (head.get("Metadata") or {}).get(SHA256_METADATA)
    if stored:
        return bool(stored == artifact.sha256)
    etag = str(head.get("ETag", "")).strip('"')
    return "-" not in etag and etag == artifact.md5 and head.get("ContentLength") == artifact.size


def upload(s3: Any, bucket: str, artifact: Artifact) -> None:
    """boto3's managed upload (s3transfer: multipart above the threshold, parallel parts)."""
    import botocore.exceptions
    from boto3.exceptions import S3UploadFailedError

    try:
        s3.upload_file(
            str(artifact.path),
            bucket,
            artifact.key,
            ExtraArgs={"Metadata": {SHA256_METADATA: artifact.sha256}},
            Config=transfer_config(),
        )
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        cause = translate_client_error(exc)
        raise UserError(
            f"upload of {artifact.key} to s3://{bucket} failed: {cause.message}", hint=cause.hint
        ) from exc
    except S3UploadFailedError as exc:
        raise UserError(f"upload of {artifact.key} to s3://{bucket} failed: {exc}") from exc
    except OSError as exc:
        raise UserError(f"cannot read {artifact.path}: {exc.strerror or exc}") from exc
