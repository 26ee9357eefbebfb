"""GStreamer through PyGObject: imported on first use, initialized once, frames to buffers.

backpack imports with numpy and the standard library only; the SkyLine classes call
:func:`gst` (and :func:`rtsp_server`) when they first need GStreamer. PyGObject ("gi") and
the GStreamer typelibs come from the system (Debian: ``gir1.2-gstreamer-1.0``,
``gir1.2-gst-plugins-base-1.0``, ``gir1.2-gst-rtsp-server-1.0``); a missing piece raises
:class:`~backpack.errors.MissingDependencyError` naming it.

:class:`FrameCopier` turns a numpy frame into a ``Gst.Buffer`` with one ``memcpy`` (see its
docstring for why a copy is needed at all, and the measurements in benchmarks/).
"""

from __future__ import annotations

import ctypes
import numbers
import os
import threading
from fractions import Fraction
from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np

from backpack._optional import require
from backpack.errors import MissingDependencyError

_init_lock = threading.Lock()

#: Namespace versions requested from gi (GStreamer 1.x API).
_GI_VERSIONS = {"Gst": "1.0", "GstApp": "1.0", "GstRtspServer": "1.0"}


def _gi_module(name: str, feature: str) -> ModuleType:
    gi = require("gi", feature)
    try:
        gi.require_version(name, _GI_VERSIONS[name])
    except ValueError as exc:
        raise MissingDependencyError(
            f"{feature} needs the GObject introspection data of {name} "
            f"{_GI_VERSIONS[name]}, which is not installed ({exc}); Debian: apt-get install "
            "gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-rtsp-server-1.0"
        ) from exc
    import importlib

    return importlib.import_module(f"gi.repository.{name}")


@lru_cache(maxsize=1)
def _preload_unwinder() -> None:
    """Load libgcc_s with RTLD_GLOBAL before GStreamer (once per process).

    libgstreamer links libunwind, and GModule loads it into the process's global scope; a C++
    library loaded afterwards (onnxruntime, for one) may then bind ``_Unwind_*`` to libunwind
    instead of libgcc_s and crash (SIGSEGV / abort) on its first C++ exception -- e.g. an
    invalid model file. Seen with numpy imported first (Debian bookworm, GStreamer 1.22).
    Loading libgcc_s globally first keeps those symbols bound to it. No-op where it is absent.
    """
    try:
        ctypes.CDLL("libgcc_s.so.1", mode=ctypes.RTLD_GLOBAL)
    except OSError:
        pass


def gst(feature: str) -> tuple[Any, Any, Any]:
    """Import GStreamer for ``feature`` and initialize it (once per process).

    Args:
        feature: what needs it, for the error message, e.g. ``"SkyLine"``.

    Returns:
        ``(Gst, GstApp, GLib)`` modules from ``gi.repository``.

    Raises:
        MissingDependencyError: PyGObject or a GStreamer typelib is not installed.
    """
    _preload_unwinder()
    gst_mod = _gi_module("Gst", feature)
    app_mod = _gi_module("GstApp", feature)
    from gi.repository import GLib

    with _init_lock:
        if not gst_mod.is_initialized():
            gst_mod.init(None)
    return gst_mod, app_mod, GLib


def rtsp_server(feature: str) -> Any:
    """Import ``GstRtspServer`` (gst-rtsp-server) for ``feature``; initializes Gst too.

    Raises:
        MissingDependencyError: PyGObject or the gst-rtsp-server typelib is missing.
    """
    gst(feature)
    return _gi_module("GstRtspServer", feature)


def rescan_plugin_path(gst_mod: Any) -> list[str]:
    """Scan every directory of ``GST_PLUGIN_PATH`` into the already-initialized registry.

    ``Gst.init`` reads ``GST_PLUGIN_PATH`` once; a path added to ``os.environ`` later (for
    example from a dotenv file) only takes effect through an explicit scan.

    Returns:
        The directories that were scanned (existing ones only).
    """
    registry = gst_mod.Registry.get()
    scanned = []
    for directory in os.environ.get("GST_PLUGIN_PATH", "").split(os.pathsep):
        if directory and os.path.isdir(directory):
            registry.scan_path(directory)
            scanned.append(directory)
    return scanned


def fps_fraction(fps: float) -> Fraction:
    """A frame rate (frames per second) as the fraction GStreamer caps use (29.97 → 30000/1001).

    Raises:
        ValueError: ``fps`` is not a positive finite number.
    """
    if not (isinstance(fps, numbers.Real) and 0 < fps < float("inf")):
        raise ValueError(f"fps must be a positive number of frames per second, got {fps!r}")
    return Fraction(fps).limit_denominator(1001)


def bgr_caps(fps: float, width: int, height: int) -> str:
    """Caps of the raw frames SkyLine pushes: packed 8-bit BGR, ``width`` x ``height`` pixels."""
    rate = fps_fraction(fps)
    return (
        f"video/x-raw,format=BGR,width={int(width)},height={int(height)},"
        f"framerate={rate.numerator}/{rate.denominator}"
    )


class FrameCopier:
    """Makes ``Gst.Buffer`` objects from numpy frames with a single ``memcpy``.

    ``put()`` returns before the pipeline has used the frame, and callers reuse or draw on
    their arrays, so the pixels must be copied once. PyGObject offers no way to write into a
    buffer's memory (``Gst.MapInfo.data`` is a ``bytes`` copy without gst-python), so the
    plain route, ``Gst.Buffer.new_wrapped(frame.tobytes())``, copies twice (numpy → bytes,
    bytes → GLib memory). The fast route allocates the buffer in GStreamer and calls
    ``gst_buffer_fill(buffer, 0, frame_pointer, size)`` from libgstreamer through ctypes,
    with the ``GstBuffer*`` that PyGObject uses as the hash of a boxed value. That identity
    is checked once against the wrapper's repr (``"GstBuffer at 0x..."``), without
    dereferencing anything; if it does not hold, or libgstreamer cannot be loaded by ctypes,
    the plain route is used. Measured at 1280x720 on a shared 2-CPU VM: about 0.6 ms
    instead of 1.0 ms (benchmarks/backpack_skyline.py). Recycling buffers through a
    ``Gst.BufferPool`` was measured too and made no difference.
    """

    def __init__(self, gst_mod: Any) -> None:
        self._gst = gst_mod
        self._fill = self._load_fill()

    @property
    def single_copy(self) -> bool:
        """True when the one-copy ctypes route is in use."""
        return self._fill is not None

    def _load_fill(self) -> Any:
        if os.environ.get("BACKPACK_SKYLINE_NO_CTYPES"):
            return None
        try:
            lib = ctypes.CDLL("libgstreamer-1.0.so.0")
            fill = lib.gst_buffer_fill
        except (OSError, AttributeError):
            return None
        fill.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t]
        fill.restype = ctypes.c_size_t
        probe = self._gst.Buffer.new_allocate(None, 16, None)
        if f"GstBuffer at 0x{hash(probe):x})" not in repr(probe):
            return None
        pattern = np.arange(16, dtype=np.uint8)
        if fill(hash(probe), 0, pattern.ctypes.data, 16) != 16:
            return None
        if probe.extract_dup(0, 16) != pattern.tobytes():
            return None
        return fill

    def buffer(self, frame: np.ndarray) -> Any:
        """A new ``Gst.Buffer`` holding a copy of ``frame`` (C-contiguous uint8 array)."""
        if self._fill is None:
            return self._gst.Buffer.new_wrapped(frame.tobytes())
        size = frame.nbytes
        buf = self._gst.Buffer.new_allocate(None, size, None)
        if self._fill(hash(buf), 0, frame.ctypes.data, size) != size:
            raise RuntimeError("gst_buffer_fill copied fewer bytes than the frame holds")
        return buf


@lru_cache(maxsize=1)
def frame_copier(gst_mod: Any) -> FrameCopier:
    """The process's :class:`FrameCopier` (its self-check runs once)."""
    return FrameCopier(gst_mod)


def h264_encoder(
    fps: float,
    bitrate_kbps: int = 2000,
    speed_preset: str = "ultrafast",
    caps: str = "video/x-h264,profile=baseline",
    threads: int | None = None,
    key_interval_s: float = 2.0,
) -> str:
    """GStreamer description that turns raw video into H.264 with x264 (gst-plugins-ugly).

    Args:
        fps: stream frame rate (frames per second); a key frame is forced every
            ``key_interval_s`` seconds.
        bitrate_kbps: target bit rate in kbit/s.
        speed_preset: x264 preset; ``ultrafast`` uses the least CPU, which matters because
            encoding runs on the CPU of the device.
        caps: caps of the encoded stream (one caps filter: gst-launch syntax does not allow
            two in a row).
        threads: x264 threads; None: half the CPUs, at most 2. x264's automatic choice
            (1.5 per CPU, slices encoded in parallel as each frame arrives) takes every CPU
            in bursts and delays the application's own frame loop: on 2 CPUs it tripled the
            wall time of ``put()`` (benchmarks/backpack_skyline.py). Raise it if the encoder
            cannot keep up (e.g. 1080p on a slow CPU).
        key_interval_s: seconds between key frames (at least one frame apart).

    Returns:
        ``"videoconvert ! video/x-raw,format=I420 ! x264enc ... ! <caps>"``.
    """
    key_interval = max(1, round(key_interval_s * float(fps)))
    if threads is None:
        threads = max(1, min(2, (os.cpu_count() or 2) // 2))
    return (
        "videoconvert ! video/x-raw,format=I420 ! "
        f"x264enc tune=zerolatency speed-preset={speed_preset} bitrate={int(bitrate_kbps)} "
        f"key-int-max={key_interval} bframes=0 threads={int(threads)} ! {caps}"
    )
