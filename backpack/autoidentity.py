"""Which Panorama application instance and device this code runs as (``AutoIdentity``).

A Panorama application has no official way to learn its device or deployment. As in the
backpack README, :class:`AutoIdentity` takes the application instance id from the
``AppGraph_Uid`` environment variable the Panorama runtime sets, lists the account's
application instances (``panorama:ListApplicationInstances`` in ``device_region``; the
Panorama Application Role needs that permission) and keeps the matching entry's details.

botocore no longer ships the Panorama model, so the client is made from a session given
backpack's shipped copy (:func:`backpack.service_model.add_to_session`), whose
``paginators-1.json`` drives the ListApplicationInstances paginator.

Nothing here raises into the application: failures are logged, the identity properties
stay None and :attr:`AutoIdentity.ready` is False; :meth:`AutoIdentity.refresh` tries again.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
from typing import Any

from backpack._optional import require
from backpack.errors import MissingDependencyError

#: Environment variable with the application instance id, set by the Panorama runtime.
APP_INSTANCE_ENV = "AppGraph_Uid"

#: ListApplicationInstances item member -> AutoIdentity property (README order: sorted).
FIELDS: dict[str, str] = {
    "application_created_time": "CreatedTime",
    "application_description": "Description",
    "application_instance_id": "ApplicationInstanceId",
    "application_name": "Name",
    "application_status": "HealthStatus",
    "application_tags": "Tags",
    "device_id": "DefaultRuntimeContextDevice",
    "device_name": "DefaultRuntimeContextDeviceName",
}

#: Error codes that no retry can fix (the request itself is wrong).
_PERMANENT_CODES = frozenset({"ValidationException"})


def _is_transient(exc: BaseException) -> bool:
    """Whether another ListApplicationInstances attempt may succeed after ``exc``.

    Retried: every AWS error answer except ValidationException -- including
    AccessDeniedException, because a freshly deployed application's role or policy can take
    a while to propagate -- and every botocore error (connection, timeout, credentials not
    yet available) except a bad request, a missing region or a missing model.
    """
    from botocore import exceptions as bce

    if isinstance(exc, bce.ClientError):
        return exc.response.get("Error", {}).get("Code") not in _PERMANENT_CODES
    permanent = (bce.ParamValidationError, bce.NoRegionError, bce.UnknownServiceError)
    return isinstance(exc, bce.BotoCoreError) and not isinstance(exc, permanent)


def _repr_value(value: Any) -> str:
    """README style: strings and times in double quotes, tags as JSON, None bare."""
    if value is None:
        return "None"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return json.dumps(str(value), ensure_ascii=False)


class AutoIdentity:
    """Identity of the running Panorama application instance and its device.

    The lookup runs once, in the constructor (it blocks for at most about the sum of the
    backoff waits), and again on :meth:`refresh`. It never raises: on failure the error is
    logged, :attr:`ready` is False and the properties below are None.

    Retries: tenacity (imported lazily; the backpack copy inside a container image may lack
    it) retries the whole paginated listing on transient errors (see :func:`_is_transient`,
    which also retries AccessDenied) with exponential backoff and jitter, and botocore's own
    retries are switched off so attempts do not multiply. Without tenacity, a warning is
    logged and botocore's "standard" retry mode does the retrying instead: same number of
    attempts, but only for throttling, 5xx and connection errors, not AccessDenied.

    Args:
        device_region: AWS region in which the Panorama appliance is provisioned.
        application_instance_id: the instance to look up; None reads ``AppGraph_Uid``.
        parent_logger: log on ``parent_logger.getChild("AutoIdentity")`` instead of the
            ``backpack.autoidentity`` logger.
        max_retries: retries after the first attempt (>= 0).
        backoff_initial: first wait in seconds; doubles per retry, plus up to this much jitter.
        backoff_max: longest single wait in seconds (before jitter).
        boto3_session: session to use (the Panorama model is added to it; do this before it
            is asked for ``panorama``); None creates a fresh ``boto3.Session()``.
        client_config: a ``botocore.config.Config`` merged over the client settings.

    Attributes:
        application_instance_id: the configured id (also when the lookup failed), or None.
        application_name, application_description: ``Name``, ``Description``.
        application_status: ``HealthStatus`` (e.g. ``"RUNNING"``).
        application_created_time: ``CreatedTime`` (aware datetime).
        application_tags: ``Tags`` (dict of str to str).
        device_id, device_name: ``DefaultRuntimeContextDevice``,
            ``DefaultRuntimeContextDeviceName``.
        error: a one-line description of the last failure, or None.
    """

    def __init__(
        self,
        device_region: str,
        application_instance_id: str | None = None,
        parent_logger: logging.Logger | None = None,
        max_retries: int = 4,
        backoff_initial: float = 1.0,
        backoff_max: float = 10.0,
        boto3_session: Any | None = None,
        client_config: Any | None = None,
    ) -> None:
        self.device_region = device_region
        self.max_retries = max(0, int(max_retries))
        self.backoff_initial = float(backoff_initial)
        self.backoff_max = float(backoff_max)
        self._session = boto3_session
        self._client_config = client_config
        self._client: Any = None
        self._tenacity: Any = None
        self._logger = (
            parent_logger.getChild(type(self).__name__)
            if parent_logger is not None
            else logging.getLogger(__name__)
        )
        self._configured_id = application_instance_id or os.environ.get(APP_INSTANCE_ENV) or None
        self.error: str | None = None
        self._ready = False
        self._clear()
        self.refresh()

    # application_instance_id and the other FIELDS are plain attributes, set by _clear/_apply.
    application_created_time: datetime.datetime | None
    application_description: str | None
    application_instance_id: str | None
    application_name: str | None
    application_status: str | None
    application_tags: dict[str, str] | None
    device_id: str | None
    device_name: str | None

    @property
    def ready(self) -> bool:
        """True when the instance was found and the properties hold its details."""
        return self._ready

    def refresh(self) -> bool:
        """Look the instance up again (with retries); never raises.

        A failed refresh keeps the identity found by an earlier successful one.

        Returns:
            :attr:`ready` after the lookup.
        """
        if not self._configured_id:
            return self._fail(
                f"no application instance id: pass application_instance_id or set "
                f"{APP_INSTANCE_ENV}"
            )
        try:
            client = self._panorama_client()
            if self._tenacity is None:
                item = self._find_instance(client)
            else:
                item = self._retrying()(self._find_instance, client)
        except MissingDependencyError as exc:
            return self._fail(str(exc))
        except Exception as exc:  # never into the frame loop
            return self._fail(f"ListApplicationInstances in {self.device_region} failed: {exc}")
        if item is None:
            return self._fail(
                f"application instance {self._configured_id} not found in "
                f"ListApplicationInstances of region {self.device_region}"
            )
        self._apply(item)
        self._logger.info("identity found:\n%r", self)
        return True

    def _panorama_client(self) -> Any:
        """Create (once) the panorama client with the shipped model and the retry settings."""
        if self._client is not None:
            return self._client
        boto3 = require("boto3", "AutoIdentity")
        from botocore.config import Config

        from backpack.service_model import add_to_session

        try:
            self._tenacity = require("tenacity", "AutoIdentity retries")
            retries = {"mode": "standard", "total_max_attempts": 1}
        except MissingDependencyError as exc:
            self._logger.warning(
                "%s; retrying with botocore's standard mode only (not AccessDenied)", exc
            )
            retries = {"mode": "standard", "total_max_attempts": self.max_retries + 1}
        config = Config(connect_timeout=5, read_timeout=10, retries=retries)
        if self._client_config is not None:
            config = config.merge(self._client_config)
        session = self._session if self._session is not None else boto3.Session()
        add_to_session(session)
        self._client = session.client("panorama", region_name=self.device_region, config=config)
        return self._client

    def _retrying(self) -> Any:
        """A ``tenacity.Retrying`` for the lookup: transient errors, exponential backoff."""
        tenacity = self._tenacity
        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_retries + 1),
            wait=tenacity.wait_exponential(multiplier=self.backoff_initial, max=self.backoff_max)
            + tenacity.wait_random(0, self.backoff_initial),
            retry=tenacity.retry_if_exception(_is_transient),
            before_sleep=self._log_retry,
            reraise=True,
        )

    def _log_retry(self, retry_state: Any) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
        self._logger.warning(
            "ListApplicationInstances attempt %d of %d failed (%s); retrying in %.2f s",
            retry_state.attempt_number,
            self.max_retries + 1,
            exc,
            wait,
        )

    def _find_instance(self, client: Any) -> dict[str, Any] | None:
        """Page through ListApplicationInstances; the item with our id, or None."""
        paginator = client.get_paginator("list_application_instances")
        for page in paginator.paginate():
            for item in page.get("ApplicationInstances") or ():
                if item.get("ApplicationInstanceId") == self._configured_id:
                    return item
        return None

    def _clear(self) -> None:
        for attribute in FIELDS:
            setattr(self, attribute, None)
        self.application_instance_id = self._configured_id
        self._ready = False

    def _apply(self, item: dict[str, Any]) -> None:
        for attribute, member in FIELDS.items():
            setattr(self, attribute, item.get(member))
        if self.application_tags is not None:
            self.application_tags = dict(self.application_tags)
        self.application_instance_id = self._configured_id
        self.error = None
        self._ready = True

    def _fail(self, message: str) -> bool:
        """Log and remember a failure; an identity found earlier is kept. Returns ready."""
        self.error = message
        self._logger.error("AutoIdentity: %s", message)
        return self._ready

    def __repr__(self) -> str:
        """The README's multi-line format: one ``key=value`` per line, keys sorted."""
        lines = [f"    {name}={_repr_value(getattr(self, name))}" for name in FIELDS]
        return "<AutoIdentity\n" + "\n".join(lines) + "\n>"
