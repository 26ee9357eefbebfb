"""The exceptions backpack raises that an application may want to catch.

>>> from backpack.errors import MissingDependencyError, PipelineError
>>> try:
...     sky = SkyLine(...)
... except MissingDependencyError as exc:   # e.g. PyGObject / GStreamer not installed
...     print(exc)                          # names the module and the install command

This module imports nothing optional (no GStreamer, OpenCV, boto3): importing it always works.
"""

from __future__ import annotations

__all__ = [
    "KVSCredentialsError",
    "KVSSinkNotFoundError",
    "MissingDependencyError",
    "PipelineError",
]


class MissingDependencyError(ImportError):
    """An optional dependency of a backpack feature is not installed.

    The message names the feature, the missing module and the install command.
    """


class PipelineError(RuntimeError):
    """A GStreamer pipeline (SkyLine, RTSPSkyLine, KVSSkyLine) could not be built or started;
    the message says which element and why."""


class KVSCredentialsError(RuntimeError):
    """Credentials for kvssink could not be obtained (no secrets in the message)."""


class KVSSinkNotFoundError(RuntimeError):
    """GStreamer cannot create the kvssink element (the message says where it looked)."""
