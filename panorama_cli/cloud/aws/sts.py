"""AWS STS: which account the current credentials belong to."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from panorama_cli.cloud.aws.session import make_client, translate_client_error

if TYPE_CHECKING:  # pragma: no cover - typing only
    import boto3

log = logging.getLogger(__name__)


def caller_account_id(session: boto3.Session) -> str:
    """Return the 12-digit AWS account id of the session's credentials.

    Uses the STS ``GetCallerIdentity`` operation (needs no IAM permission).

    Args:
        session: from :func:`panorama_cli.cloud.aws.session.make_session`.

    Returns:
        The account id, e.g. ``"123456789012"``.

    Raises:
        UserError: no/expired/invalid credentials, no region, endpoint unreachable, or any
            other AWS error (see :func:`~panorama_cli.cloud.aws.session.translate_client_error`).
    """
    import botocore.exceptions

    client = make_client(session, "sts")
    try:
        return str(client.get_caller_identity()["Account"])
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise translate_client_error(exc) from exc
