"""Stand-in for ``awsiot.greengrasscoreipc.clientv2``: GetSecretValue as the nucleus answers."""

from __future__ import annotations

import concurrent.futures
from typing import Any

from awsiot.greengrasscoreipc import FakeConnection
from awsiot.greengrasscoreipc.model import (
    GetSecretValueResponse,
    ResourceNotFoundError,
    SecretValue,
    UnauthorizedError,
)


class GreengrassCoreIPCClientV2:
    def __init__(self, client: FakeConnection | None = None, executor: Any = True) -> None:
        if client is None:
            from awsiot.greengrasscoreipc import connect

            client = connect()
        self.client = client

    def get_secret_value_async(
        self,
        *,
        secret_id: str | None = None,
        version_id: Any = None,
        version_stage: Any = None,
        refresh: Any = None,
    ) -> Any:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        state = self.client.state
        if secret_id not in state.get("allowed", []):
            future.set_exception(UnauthorizedError(f"not authorized to get {secret_id}"))
        elif secret_id not in state.get("secrets", {}):
            future.set_exception(ResourceNotFoundError(f"secret {secret_id} not found"))
        else:
            value = SecretValue(secret_string=state["secrets"][secret_id])
            future.set_result(GetSecretValueResponse(secret_id=secret_id, secret_value=value))
        return future

    def close(self) -> None:
        self.client.close()
