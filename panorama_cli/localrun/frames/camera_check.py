"""``panorama-cli serve --check``: open each camera once, read one frame, tell what it is.

:func:`check_camera` opens a SOURCE as :func:`.sources.open_source` would (an ``rtsp://`` URL
with the check's timeout for open and read, no reconnect), reads one frame and closes it; it
never raises. The open runs on a daemon thread, so a camera that does not answer costs at most
``timeout_s``. :func:`format_check_line` is the one line printed per camera.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from panorama_cli.localrun.frames.frame import redact_uri

log = logging.getLogger(__name__)


@dataclass
class CameraCheck:
    """What one camera check found.

    Attributes:
        reachable: the source opened and delivered a frame.
        width, height: the frame's size in pixels (None when unreachable).
        fps: frames per second the source reports (live streams that report none: 15).
        codec: the stream's codec (``h264``, ``hevc``, a file's FOURCC such as ``XVID``, an
            image sequence's extension, ``raw`` for GStreamer), None if unknown.
        error: why it is not reachable, one line, passwords redacted (None when reachable).
        uri: the SOURCE, passwords redacted.
        seconds: how long the check took.
    """

    reachable: bool
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    codec: str | None = None
    error: str | None = None
    uri: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The check as a JSON-ready dict."""
        return asdict(self)


def _open(spec: str, timeout_s: float) -> Any:
    from panorama_cli.localrun.frames.sources import open_source

    if spec.strip().lower().startswith(("rtsp://", "rtsps://")):
        from panorama_cli.localrun.frames.live_sources import RtspSource

        return RtspSource(
            spec.strip(), open_timeout=timeout_s, read_timeout=timeout_s, reconnect_for=0.0
        )
    return open_source(spec)


def _codec(source: Any) -> str | None:
    codec = getattr(source, "codec", None)
    if codec:
        return str(codec)
    paths = getattr(source, "paths", None)
    if paths:
        return str(paths[0].suffix.lstrip(".").lower()) or None
    if str(getattr(source, "uri", "")).startswith("gst:"):
        return "raw"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return redact_uri(text.splitlines()[0])


def check_camera(spec: str, timeout_s: float = 10.0) -> CameraCheck:
    """Open ``spec`` once, read one frame, close it.

    Args:
        spec: a ``--camera`` SOURCE (file, image folder/glob, ``rtsp://``, ``/dev/videoN``,
            ``gst:...``).
        timeout_s: seconds the whole check may take (open and first frame).

    Returns:
        A :class:`CameraCheck`; ``reachable`` False with ``error`` when the source cannot be
        opened, delivers no frame, or does not answer within ``timeout_s``. Never raises.
    """
    uri = redact_uri(spec.strip())
    started = time.monotonic()
    found: list[CameraCheck] = []  # the worker's finding (a check that timed out leaves it)

    def work() -> None:
        source = None
        try:
            source = _open(spec, timeout_s)
            frame = source.read()
            if frame is None:
                raise RuntimeError(f"{uri}: opens but delivers no frame")
            height, width = frame.image.shape[:2]
            fps = float(source.fps) if getattr(source, "fps", None) else None
            check = CameraCheck(True, int(width), int(height), fps, _codec(source), uri=uri)
        except Exception as exc:  # noqa: BLE001 - every failure is a finding
            check = CameraCheck(False, error=_first_line(exc), uri=uri)
        finally:
            if source is not None:
                try:
                    source.close()
                except Exception:  # noqa: BLE001 - closing a broken camera
                    log.debug("%s: close failed", uri, exc_info=True)
        found.append(check)

    worker = threading.Thread(target=work, name=f"check-{uri}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive() or not found:  # it closes what it opened when it returns
        check = CameraCheck(False, error=f"{uri}: no frame within {timeout_s:g} s", uri=uri)
    else:
        check = found[0]
    check.seconds = round(time.monotonic() - started, 3)
    return check


def format_check_line(name: str, check: CameraCheck) -> str:
    """One line for ``serve --check``, e.g.
    ``front: rtsp://u:***@cam/x  reachable  1920x1080  25 fps  h264`` or
    ``front: UNREACHABLE  rtsp://u:***@cam/x: cannot open the RTSP stream (...)``."""
    if not check.reachable:
        return f"{name}: UNREACHABLE  {check.error}"
    fps = "? fps" if check.fps is None else f"{check.fps:g} fps"
    return (
        f"{name}: {check.uri}  reachable  {check.width}x{check.height}  {fps}  "
        f"{check.codec or 'unknown codec'}"
    )
