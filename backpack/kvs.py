""":class:`KVSSkyLine` streams the application's frames to AWS Kinesis Video Streams.

The pipeline is ``appsrc ! <x264 H.264> ! kvssink``; ``kvssink`` is the GStreamer plugin of the
KVS producer SDK (amazon-kinesis-video-streams-producer-sdk-cpp, built with
``BUILD_GSTREAMER_PLUGIN=ON``). It is not in any distribution, so the container must carry it:

- ``GST_PLUGIN_PATH`` must include the directory of ``libgstkvssink.so``;
- the dynamic loader must find the SDK's libraries (``libKinesisVideoProducer.so``,
  ``libcproducer.so`` and their bundled dependencies) *when the process starts*: set
  ``LD_LIBRARY_PATH`` in the image (Dockerfile ``ENV``) or register the directory with
  ``ldconfig``. A value put into ``os.environ`` by a running Python process does not change
  where that process's loader looks.

``create-package --kvs`` writes both variables to ``/panorama/.env``; :class:`KVSSkyLine` reads
that file (python-dotenv) and merges the two variables into ``os.environ`` before GStreamer
is initialized (or rescans ``GST_PLUGIN_PATH`` if it already was), which helps GStreamer's
plugin scanner (a child process) and child processes such as ``gst-inspect-1.0``.

Credentials come from a handler (:mod:`backpack.kvs_credentials`,
:mod:`backpack.kvs_credentials_file`); they are set on kvssink as element properties after
the pipeline is parsed, so they never appear in the pipeline description that is logged. The
application role needs ``kinesisvideo:DescribeStream``, ``kinesisvideo:GetStreamingEndpoint``
and ``kinesisvideo:PutMedia`` on the stream.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from backpack._gst import gst, rescan_plugin_path
from backpack._optional import require
from backpack.errors import KVSSinkNotFoundError
from backpack.kvs_credentials import (
    KVSCredentialsError,
    KVSCredentialsHandler,
    KVSEnvironmentCredentialsHandler,
    KVSInlineCredentialsHandler,
)
from backpack.kvs_credentials_file import KVSFileCredentialsHandler
from backpack.skyline import SkyLine, h264_encoder

__all__ = [
    "DOTENV_VARIABLES",
    "KVSCredentialsError",
    "KVSCredentialsHandler",
    "KVSEnvironmentCredentialsHandler",
    "KVSFileCredentialsHandler",
    "KVSInlineCredentialsHandler",
    "KVSSinkNotFoundError",
    "KVSSkyLine",
    "load_gst_dotenv",
]

_logger = logging.getLogger("backpack.kvs")

#: Variables taken from the dotenv file, and whether its entries go first (GStreamer's plugin
#: path) or after the current ones (library path), as the aws-panorama-samples backpack did.
DOTENV_VARIABLES = {"GST_PLUGIN_PATH": True, "LD_LIBRARY_PATH": False}

_STREAM_NAME = re.compile(r"^[a-zA-Z0-9_.-]{1,256}$")  # Kinesis Video Streams StreamName
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


def _merge_paths(first: str, second: str) -> str:
    parts = [p for p in (first + os.pathsep + second).split(os.pathsep) if p]
    return os.pathsep.join(dict.fromkeys(parts))


def load_gst_dotenv(dotenv_path: str | os.PathLike[str] | None) -> dict[str, str]:
    """Merge ``GST_PLUGIN_PATH`` and ``LD_LIBRARY_PATH`` of a dotenv file into ``os.environ``.

    Other variables in the file are ignored. A missing file is logged (the variables may
    already be set by the image) and is not an error.

    Args:
        dotenv_path: the file (``KEY=value`` lines); None does nothing.

    Returns:
        The variables that were set, with their new values.

    Raises:
        MissingDependencyError: python-dotenv is not installed.
    """
    if dotenv_path is None:
        return {}
    path = Path(dotenv_path)
    if not path.is_file():
        _logger.warning(
            "dotenv file %s not found; GST_PLUGIN_PATH=%s", path, os.environ.get("GST_PLUGIN_PATH")
        )
        return {}
    values = require("dotenv", "KVSSkyLine dotenv_path").dotenv_values(path)
    applied = {}
    for name, goes_first in DOTENV_VARIABLES.items():
        value = values.get(name)
        if not value:
            continue
        current = os.environ.get(name, "")
        merged = _merge_paths(value, current) if goes_first else _merge_paths(current, value)
        os.environ[name] = merged
        applied[name] = merged
    _logger.info("loaded %s from %s", applied, path)
    return applied


class KVSSkyLine(SkyLine):
    """Sends frames to a Kinesis Video Stream through kvssink (live: clock timestamps).

    Args:
        stream_region: AWS region of the stream, e.g. ``"us-east-1"``.
        stream_name: name of the stream (``[a-zA-Z0-9_.-]``, at most 256 characters).
        credentials_handler: a :class:`~backpack.kvs_credentials.KVSCredentialsHandler`
            subclass instance (:class:`KVSFileCredentialsHandler` on a device).
        dotenv_path: dotenv file with ``GST_PLUGIN_PATH`` / ``LD_LIBRARY_PATH`` (see the
            module docstring); None skips it.
        bitrate_kbps: H.264 bit rate in kbit/s.
        speed_preset: x264 preset (see :func:`~backpack.skyline.h264_encoder`).
        storage_size_mb: kvssink's ``storage-size``: MB of memory buffering unsent video.
        sink_element: GStreamer element factory used as the sink (default
            :attr:`SINK_ELEMENT`); tests use a stand-in with kvssink's properties.
        **kwargs: :class:`~backpack.skyline.SkyLine` arguments (fps, width, height, ...).

    Raises:
        ValueError: invalid stream name or region.
        KVSSinkNotFoundError: the sink element cannot be created.
        MissingDependencyError: PyGObject, GStreamer or python-dotenv is missing.
    """

    #: The sink element's factory name.
    SINK_ELEMENT = "kvssink"
    #: Name given to the sink element in the pipeline.
    SINK_NAME = "skyline_kvssink"

    def __init__(
        self,
        stream_region: str,
        stream_name: str,
        credentials_handler: KVSCredentialsHandler,
        dotenv_path: str | os.PathLike[str] | None = Path("/panorama/.env"),
        *,
        bitrate_kbps: int = 1000,
        speed_preset: str = "ultrafast",
        storage_size_mb: int = 512,
        sink_element: str | None = None,
        **kwargs: Any,
    ) -> None:
        if not _STREAM_NAME.match(stream_name):
            raise ValueError(f"invalid Kinesis Video stream name {stream_name!r}")
        if not _REGION.match(stream_region):
            raise ValueError(f"invalid AWS region {stream_region!r}")
        self.stream_region = stream_region
        self.stream_name = stream_name
        self.credentials_handler = credentials_handler
        self.dotenv_path = dotenv_path
        self.bitrate_kbps = bitrate_kbps
        self.speed_preset = speed_preset
        self.storage_size_mb = storage_size_mb
        self.sink_element = sink_element or self.SINK_ELEMENT
        loaded = load_gst_dotenv(dotenv_path)
        super().__init__(**kwargs)
        gst_mod, _, _ = gst("KVSSkyLine")
        if "GST_PLUGIN_PATH" in loaded:
            rescan_plugin_path(gst_mod)
        self._check_sink(gst_mod)
        region_env = os.environ.get("AWS_DEFAULT_REGION")
        if region_env and region_env != stream_region:
            self.logger.warning(
                "kvssink uses AWS_DEFAULT_REGION=%s over aws-region=%s", region_env, stream_region
            )

    def _check_sink(self, gst_mod: Any) -> None:
        if gst_mod.ElementFactory.make(self.sink_element, None) is None:
            raise KVSSinkNotFoundError(
                f"GStreamer cannot create the '{self.sink_element}' element: check that "
                f"GST_PLUGIN_PATH ({os.environ.get('GST_PLUGIN_PATH', '<unset>')}) holds "
                "libgstkvssink.so and that the process was started with LD_LIBRARY_PATH "
                f"holding the KVS producer libraries (dotenv file: {self.dotenv_path})"
            )

    def _get_pipeline(self, fps: float, width: int, height: int) -> str:
        # kvssink's sink pad takes H.264 in avc stream format, aligned on access units.
        caps = "video/x-h264,profile=baseline,stream-format=avc,alignment=au"
        encoder = h264_encoder(fps, self.bitrate_kbps, self.speed_preset, caps)
        sink = (
            f"{self.sink_element} name={self.SINK_NAME} stream-name={self.stream_name} "
            f"aws-region={self.stream_region} storage-size={int(self.storage_size_mb)} "
            f"framerate={max(1, round(float(fps)))}"
        )
        return f"{encoder} ! {sink}"

    def _configure_pipeline(self, pipeline: Any) -> None:
        sink = pipeline.get_by_name(self.SINK_NAME)
        for name, value in self.credentials_handler.sink_properties().items():
            sink.set_property(name, value)

    def _open_stream(self, fps: float, width: int, height: int) -> None:
        self.credentials_handler.prepare()
        super()._open_stream(fps, width, height)

    def put(self, frame: np.ndarray) -> bool:
        """Put a frame (see :meth:`SkyLine.put`) and let the credentials handler renew."""
        queued = super().put(frame)
        try:
            self.credentials_handler.check_refresh()
        except Exception:
            self._frame_log("credentials", self.logger.exception, "credentials refresh failed")
        return queued

    def __repr__(self) -> str:
        return (
            f"<{self.__class__.__name__} stream={self.stream_name} region={self.stream_region} "
            f"state={self.state.name} fps={self.video_fps} width={self.video_width} "
            f"height={self.video_height} sent={self.frames_sent} dropped={self.frames_dropped} "
            f"credentials={self.credentials_handler!r}>"
        )
