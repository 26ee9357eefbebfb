"""serve's ``--record DIR``: each HDMI stream as segmented H.264 mp4 files, oldest deleted.

One GStreamer pipeline per stream (backpack's :class:`backpack._appsrc.AppSrcPipeline`):
``appsrc ! videoconvert ! x264enc tune=zerolatency ! h264parse ! splitmuxsink``. splitmuxsink
starts a new file ``DIR/<stream>/<stream>-NNNNN.mp4`` every ``segment_s`` seconds (it asks the
encoder for a keyframe there) or ``segment_bytes`` bytes, and keeps at most ``max_files`` (its
``max-files``: the file number wraps at ``max_files``, so the oldest segment is deleted and its
name reused; order by mtime). Each segment is a fragmented mp4 (mp4mux ``fragment-duration``
:data:`FRAGMENT_MS`: ``ftyp``, ``moov``, then one ``moof``+``mdat`` per fragment) written
unbuffered, and a key frame comes every :data:`KEY_S` (splitmuxsink holds a GOP before muxing
it), so after a SIGKILL of serve every finished segment plays and the current one plays up to
its last whole fragment: at most ~2 s of video is lost, not the segment.
splitmuxsink creates its muxer when the pipeline is parsed (linking requests its pad), so the
fragment length is set on that muxer (``muxer-added`` for any made later); a ``muxer`` object
given afterwards would be ignored. Frames come in through a non-blocking appsrc holding at most
one second of frames; beyond that they are dropped and counted, never queued without bound.

The ``--record`` folder is the operator's and outside what apps can write (serve refuses one
inside the state folder's ``storage/`` or ``logs/``); even so a stream folder that is a link is
refused and only regular files count as segments.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from panorama_cli.errors import UserError
from panorama_cli.localrun import safe_files

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

_STREAM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
#: Fragment length inside each segment (ms).
FRAGMENT_MS = 1000
#: Seconds between key frames. splitmuxsink holds a whole GOP before the muxer gets it (it
#: splits at key frames), so a SIGKILL loses at most KEY_S + FRAGMENT_MS of a segment: 2 s.
KEY_S = 1.0


def _fragmented(muxer: Any) -> None:
    """Make splitmuxsink's mp4mux write :data:`FRAGMENT_MS` fragments (before its first file)."""
    muxer.set_property("fragment-duration", FRAGMENT_MS)


def _unbuffered(sink: Any) -> None:
    """Each fragment reaches the file whole when muxed, not after 64 KiB of stdio buffer."""
    if sink.find_property("buffer-mode") is not None:
        sink.set_property("buffer-mode", 2)  # unbuffered


class Recorder:
    """Segmented mp4 recordings of serve's HDMI streams.

    Args:
        folder: the ``--record`` folder; each stream writes into ``folder/<stream>/``.
        segment_s: seconds per segment (rotated at the next keyframe after it).
        segment_bytes: bytes per segment (0 = no size limit).
        max_files: segments kept per stream; older ones are deleted (0 = keep all).
        bitrate_kbps: H.264 bit rate.
        live: True: buffers are stamped with the clock when pushed (real time); False: frame
            n is at n / fps (deterministic, for tests and offline input).

    Raises:
        UserError: the folder cannot be created.
    """

    def __init__(
        self,
        folder: Path,
        *,
        segment_s: float = 300.0,
        segment_bytes: int = 512 * 1024 * 1024,
        max_files: int = 48,
        bitrate_kbps: int = 2000,
        live: bool = True,
    ) -> None:
        if not segment_s > 0 or segment_bytes < 0 or max_files < 0:
            raise ValueError("segment_s must be > 0, segment_bytes and max_files >= 0")
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"--record {self.folder}: cannot create it: {exc.strerror}") from exc
        self.segment_s, self.segment_bytes, self.max_files = segment_s, segment_bytes, max_files
        self.bitrate_kbps = bitrate_kbps
        self.live = live
        self._pipelines: dict[str, Any] = {}
        self.pushed: dict[str, int] = {}
        self.dropped: dict[str, int] = {}
        self.errors: dict[str, str] = {}

    def add_stream(self, stream: str, fps: float, width: int, height: int) -> Path:
        """Start recording ``stream`` (frames ``height``×``width``×3 BGR at ``fps``).

        Returns:
            The stream's segment folder.

        Raises:
            ValueError: a stream id unfit for a file name. PipelineError (backpack): the
            pipeline cannot start.
        """
        from backpack._appsrc import AppSrcPipeline
        from backpack._gst import gst, h264_encoder

        if not _STREAM_ID.match(stream):
            raise ValueError(f"{stream!r} cannot name a recording folder")
        target = self.folder / stream
        target.mkdir(parents=True, exist_ok=True)
        try:  # a link there would have the segments written wherever it points
            os.close(safe_files.open_dir(self.folder, stream))
        except OSError as exc:
            raise ValueError(f"{target} is not a folder of its own: {exc.strerror}") from None
        gst("Recorder")
        location = str(target / f"{stream}-%05d.mp4")

        start_index = self._next_index(stream)

        def configure(pipeline: Any) -> None:
            split = pipeline.get_by_name("split")
            split.set_property("location", location)
            split.set_property("start-index", start_index)
            split.connect("muxer-added", lambda _split, muxer: _fragmented(muxer))
            split.connect("sink-added", lambda _split, sink: _unbuffered(sink))
            muxer = split.get_by_name("muxer")  # made when the description was linked
            if muxer is not None:
                _fragmented(muxer)

        description = (
            f"{h264_encoder(fps, self.bitrate_kbps, 'veryfast', threads=1, key_interval_s=KEY_S)}"
            " ! h264parse ! "
            f"splitmuxsink name=split max-size-time={int(self.segment_s * 1e9)} "
            f"max-size-bytes={int(self.segment_bytes)} max-files={int(self.max_files)}"
        )

        def on_error(text: str) -> None:
            self.errors[stream] = text
            log.error("recording %s failed: %s", stream, text)

        pipeline = AppSrcPipeline(
            description,
            fps,
            width,
            height,
            live=self.live,
            max_queued_frames=max(2, round(fps)),
            block=False,
            logger=log,
            on_error=on_error,
            configure=configure,
        )
        pipeline.start()
        self._pipelines[stream] = (pipeline, (height, width))
        self.pushed[stream] = self.dropped[stream] = 0
        return target

    def _next_index(self, stream: str) -> int:
        """The file number after the newest segment already there (a restarted serve or a
        SIGHUP reload goes on instead of overwriting segment 0)."""
        existing = self.segments(stream)
        if not existing:
            return 0
        try:
            index = int(existing[-1].stem.rsplit("-", 1)[1]) + 1
        except (IndexError, ValueError):
            return 0
        return index % self.max_files if self.max_files else index

    def push(self, stream: str, image: np.ndarray) -> bool:
        """Queue one drawn frame (H×W×3 BGR uint8); never blocks. False: dropped (queue
        full, failed pipeline or unknown stream)."""
        entry = self._pipelines.get(stream)
        if entry is None or stream in self.errors:
            return False
        pipeline, shape = entry
        import numpy as np

        if image.shape[:2] != shape:
            import cv2

            image = cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
        if pipeline.push(np.ascontiguousarray(image)):
            self.pushed[stream] += 1
            return True
        self.dropped[stream] += 1
        return False

    def segments(self, stream: str) -> list[Path]:
        """The stream's segment files, oldest first (by modification time: names wrap);
        regular files only (a link named like a segment is not one)."""
        try:
            with safe_files.opened_dir(self.folder, stream) as folder:
                files = safe_files.regular_files(folder)
        except (OSError, ValueError):
            return []
        found = [
            (info.st_mtime_ns, name)
            for name, info in files
            if name.startswith(f"{stream}-") and name.endswith(".mp4")
        ]
        return [self.folder / stream / name for _, name in sorted(found)]

    def close_stream(self, stream: str, timeout: float = 5.0) -> None:
        """End one stream's recording (finalizes its current segment); no-op if unknown."""
        entry = self._pipelines.pop(stream, None)
        if entry is not None:
            entry[0].stop(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """End every recording: end-of-stream finalizes the current segments (idempotent)."""
        pipelines, self._pipelines = self._pipelines, {}
        for pipeline, _shape in pipelines.values():
            pipeline.stop(timeout)
