"""The AWS Panorama service model shipped with backpack, for botocore sessions.

botocore stopped shipping the ``panorama`` service model after AWS ended the service on
2026-05-31 (botocore 1.43.0 was the last release with it), so ``boto3.client("panorama")``
fails on current releases with ``UnknownServiceError``. backpack ships a trimmed copy of the
last published model (``panorama`` API version 2019-07-24: the operations backpack and
panorama-cli call, their shapes, no documentation) under ``backpack/data/``, and
:func:`add_to_session` appends that directory to a session's data loader search paths,
the mechanism botocore uses for ``~/.aws/models`` and ``AWS_DATA_PATH`` and boto3 uses for
its own resource models.

Because the directory is *appended*, a model the user installed (``~/.aws/models``,
``AWS_DATA_PATH``) or an older botocore that still ships ``panorama`` takes precedence.
Nothing in the user's files or environment is changed.

Only the standard library is imported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Directory in botocore's data layout: ``<DATA_PATH>/panorama/2019-07-24/service-2.json``.
DATA_PATH: Path = Path(__file__).resolve().parent / "data"

SERVICE_NAME = "panorama"
API_VERSION = "2019-07-24"


def add_to_session(session: Any) -> Any:
    """Make ``session`` find the shipped ``panorama`` model; idempotent.

    Args:
        session: a ``boto3.Session`` or a ``botocore.session.Session``. Call this before
            the session is first asked for ``panorama``: botocore's loader caches the list
            of available services on first use, so a session that already failed to find
            ``panorama`` keeps failing.

    Returns:
        The same ``session``, for chaining.

    Raises:
        TypeError: ``session`` is neither a boto3 nor a botocore session.
    """
    botocore_session = getattr(session, "_session", session)
    get_component = getattr(botocore_session, "get_component", None)
    if get_component is None:
        raise TypeError(f"expected a boto3 or botocore session, got {type(session).__name__}")
    loader = get_component("data_loader")
    path = str(DATA_PATH)
    if path not in loader.search_paths:
        loader.search_paths.append(path)
    return session
