"""Stand-in for ``awsiot.greengrasscoreipc.model``: the shapes and errors the fetcher meets."""

from __future__ import annotations


class GreengrassCoreIPCError(Exception):
    pass


class UnauthorizedError(GreengrassCoreIPCError):
    pass


class ResourceNotFoundError(GreengrassCoreIPCError):
    pass


class SecretValue:
    def __init__(self, *, secret_string: str | None = None) -> None:
        self.secret_string = secret_string


class GetSecretValueResponse:
    def __init__(self, *, secret_id: str, secret_value: SecretValue) -> None:
        self.secret_id = secret_id
        self.version_stage = ["AWSCURRENT"]
        self.secret_value = secret_value
