"""Cameras that never end, for ``panorama-cli serve``: :class:`ReconnectingSource` and
:func:`open_serve_source`.

A live camera (``rtsp://``, ``/dev/videoN``, a live ``gst:`` pipeline) that is down at start
or lost later is reopened through :func:`.sources.open_source` for ever, with capped
exponential backoff (tenacity: 0.5 s doubling to 30 s, plus up to 0.5 s of random jitter).
:meth:`ReconnectingSource.read` blocks meanwhile and returns None only after
:meth:`~ReconnectingSource.interrupt` or :meth:`~ReconnectingSource.close`; it never raises.
The inner :class:`~.live_sources.RtspSource` keeps its own immediate reconnect (one attempt,
``reconnect_for`` = 0), so a glitch costs no backoff; what it cannot fix at once comes here.

Each open runs on a short-lived helper thread, so an interrupt is prompt even while a camera
that does not answer holds ``av.open`` for its open timeout (10 s). ``run`` keeps its own
policy (a camera down at start fails the run): it never uses this module.

Files, image sequences and finite ``gst:`` pipelines are opened (and checked) at start, then
read through a :class:`ReconnectingSource` too (``live=False``: paced by their timestamps), so
a file replaced by garbage while serve runs makes the camera reconnect with a reason, never
an error in the app's ``get``.

What happens to a camera (lost, reconnected, cannot connect) is kept as one-line events in
:attr:`ReconnectingSource.events` (bounded), which serve writes to its log with the camera's
name; passwords are redacted.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from panorama_cli.localrun.frames.frame import (
    DEFAULT_LIVE_FPS,
    Frame,
    FrameSource,
    redact_uri,
)

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

#: Seconds before the first reopen, doubled after each failed one up to :data:`CAP_S`.
INITIAL_S = 0.5
#: Longest pause in seconds between two reopen attempts (before jitter).
CAP_S = 30.0
#: Seconds the inner RTSP source's immediate reconnect may take to open: a camera that hangs
#: (no packets, no reset) shows as lost about 13 s after its last packet (5 s read timeout,
#: then this open, whose probe also waits the read timeout); one that resets, at once.
QUICK_OPEN_S = 3.0
#: Events kept for serve's log at most (older ones dropped when nobody reads them).
MAX_EVENTS = 64
#: Seconds between two log lines about a camera that stays down for the same reason.
DOWN_REPEAT_S = 300.0
#: ``gst:`` launch strings with one of these read a live camera (else: finite, looped).
_LIVE_GST = re.compile(
    r"\b(rtspsrc|v4l2src|udpsrc|tcpclientsrc|souphttpsrc|srtsrc|nvarguscamerasrc|"
    r"libcamerasrc|nvv4l2camerasrc)\b|is-live\s*=\s*(true|1)\b|rtsps?://",
    re.IGNORECASE,
)


class Interrupted(Exception):
    """An open was abandoned because the source was interrupted or closed."""


def is_live_spec(spec: str) -> bool:
    """Whether a SOURCE names a live camera: ``rtsp(s)://``, ``/dev/videoN`` or a ``gst:``
    launch string with a live source element (``rtspsrc``, ``v4l2src``, ``is-live=true``...)."""
    spec = spec.strip()
    lowered = spec.lower()
    if lowered.startswith(("rtsp://", "rtsps://")) or re.fullmatch(r"/dev/video\d+", spec):
        return True
    return lowered.startswith("gst:") and _LIVE_GST.search(spec) is not None


def _open_live(spec: str) -> FrameSource:
    """``open_source(spec)``; an RTSP source gets one immediate reconnect of its own."""
    from panorama_cli.localrun.frames.sources import open_source

    source = open_source(spec)
    if hasattr(source, "reconnect_for"):
        source.reconnect_for = 0.0  # one immediate attempt; the backoff is ours
        source.open_timeout = min(source.open_timeout, QUICK_OPEN_S)
    return source


class ReconnectingSource:
    """A live camera read for ever: reopened with capped exponential backoff when it is down
    at start or lost (its read raised or returned None).

    Args:
        spec: the SOURCE string (``rtsp://...``, ``/dev/videoN``, ``gst:...``).
        initial_s: seconds before the first reopen attempt, doubled after each failure.
        cap_s: longest pause between attempts in seconds (before jitter).
        jitter_s: up to this many random seconds added to each pause (default: ``initial_s``).
        opener: opens the camera once (default: ``open_source`` with an immediate RTSP
            reconnect); raises on failure.
        start_wait_s: seconds the constructor waits for the first connection (so ``fps`` and
            ``size`` are known when the camera is up); a camera that is down costs at most
            this, and :meth:`read` goes on trying.
        first: an already open source to read first (a file checked at start); ``opener``
            opens the next ones.
        live: whether the source paces itself (cameras) or is paced by its timestamps (files).

    Attributes:
        uri: display form, password redacted. live: as given (True for cameras).
        fps: the camera's frames per second once connected (``DEFAULT_LIVE_FPS`` before).
        size: ``(width, height)`` in pixels of the current connection, None until the first;
            it may change at a reconnect (the frames tell their own shape).
        connected: True between a successful open and the next loss.
        reconnects: losses after at least one frame that were followed by a successful reopen
            (including the inner RTSP source's immediate ones).
        last_error: the last failure (open or read), one line, passwords redacted; None
            until one happens.
        frames: frames delivered by :meth:`read`.
        events: ``(level, text)`` one-line events (``lost (why); reconnecting``,
            ``reconnected (2 so far)``, ``cannot connect (why); retrying``), oldest first,
            at most :data:`MAX_EVENTS`; the reader pops them (serve logs them).
    """

    def __init__(
        self,
        spec: str,
        *,
        initial_s: float = INITIAL_S,
        cap_s: float = CAP_S,
        jitter_s: float | None = None,
        opener: Callable[[str], FrameSource] = _open_live,
        start_wait_s: float = 3.0,
        first: FrameSource | None = None,
        live: bool = True,
    ) -> None:
        self._spec = spec
        self.live = live
        self.events: collections.deque[tuple[str, str]] = collections.deque(maxlen=MAX_EVENTS)
        self._down_said: tuple[str, float] | None = None  # (reason, when) last said
        self.uri = redact_uri(spec.strip())
        self.initial_s, self.cap_s = initial_s, cap_s
        self.jitter_s = initial_s if jitter_s is None else jitter_s
        self._opener = opener
        self.fps = DEFAULT_LIVE_FPS
        self.size: tuple[int, int] | None = None
        self.connected = False
        self.reconnects = 0
        self.last_error: str | None = None
        self.frames = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._source: Any = None  # the open inner source (touched by the reading thread)
        self._pending: _Opening | None = None if first is not None else _Opening(self, opener)
        self._reading = False
        self._closed = False
        self._had_frame = False  # a frame came over the current connection
        self._lost = False  # a connection with frames was lost: the next open is a reconnect
        self._inner_reconnects = 0
        self._t0: float | None = None  # monotonic time of the first frame ever
        self._base = 0.0  # output pts of this connection's first frame
        self._first_pts: float | None = None  # inner pts of this connection's first frame
        self._last_pts = -1.0
        if first is not None:
            self._adopt(first)
        elif self._pending is not None and self._pending.wait(start_wait_s):
            try:
                self._take(self._pending)
            except Exception as exc:  # noqa: BLE001 - down at start: read() goes on trying
                self.last_error = _reason(exc)
                self._down(self.last_error, "down at start")

    @property
    def notes(self) -> list[str]:
        """The current inner source's notes (e.g. unreadable images skipped)."""
        return list(getattr(self._source, "notes", ()) or ())

    def _event(self, level: str, text: str) -> None:
        log.info("%s: %s", self.uri, text)  # serve logs it with the camera's name
        self.events.append((level, text))

    def _down(self, why: str, what: str = "cannot connect") -> None:
        """An open failed: an event when the reason is new or every :data:`DOWN_REPEAT_S`."""
        now = time.monotonic()
        said = self._down_said
        if said is not None and said[0] == why and now - said[1] < DOWN_REPEAT_S:
            return
        self._down_said = (why, now)
        self._event("warning", f"{what} ({why}); retrying")

    # -- reading --------------------------------------------------------------------------
    def read(self, out: np.ndarray | None = None) -> Frame | None:
        """The next frame; blocks while the camera is away (reopening with backoff).

        Args:
            out: passed to the inner source (see :class:`~.frame.FrameSource`).

        Returns:
            A frame whose pts (seconds) keeps growing across reconnects (the wall clock spans
            an outage), index counting every frame delivered; None only after
            :meth:`interrupt` or :meth:`close`.
        """
        with self._lock:
            if self._stopping.is_set():
                return None
            self._reading = True
        try:
            while not self._stopping.is_set():
                if self._source is None and not self._reopen():
                    return None
                try:
                    frame = self._source.read(out)
                except Exception as exc:  # noqa: BLE001 - a camera never ends serve
                    self._drop(_reason(exc))
                    continue
                if frame is None:
                    if not self._stopping.is_set():
                        self._drop("the stream ended")
                    continue
                return self._restamp(frame)
            return None
        finally:
            with self._lock:
                self._reading = False
                if self._closed:
                    self._close_inner()

    def _reopen(self) -> bool:
        """Opens the camera, retrying with backoff; False when interrupted or closed."""
        from tenacity import (
            Retrying,
            retry_if_exception_type,
            stop_when_event_set,
            wait_exponential,
            wait_random,
        )

        retrying = Retrying(
            retry=retry_if_exception_type(Exception),
            wait=wait_exponential(multiplier=self.initial_s, max=self.cap_s)
            + wait_random(0, self.jitter_s),
            stop=stop_when_event_set(self._stopping),
            sleep=self._stopping.wait,
            before_sleep=self._note_retry,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    opening, self._pending = self._pending, None
                    opening = opening or _Opening(self, self._opener)
                    opening.wait(None, self._stopping)
                    self._take(opening)
        except Exception:  # noqa: BLE001 - only when stopping
            return False
        return self._source is not None

    def _take(self, opening: _Opening) -> None:
        """Adopts a finished open (raises what it raised, Interrupted when stopping)."""
        source = opening.result()
        if source is None:
            raise Interrupted(self.uri)
        self._pending = None
        self._adopt(source)

    def _adopt(self, source: Any) -> None:
        """Reads from ``source`` (just opened) from now on."""
        self._source = source
        self._inner_reconnects = getattr(source, "reconnects", 0)
        self.fps = float(getattr(source, "fps", 0) or DEFAULT_LIVE_FPS)
        self.size = getattr(source, "size", None) or self.size
        self._first_pts = None
        self._had_frame = False
        if self._lost:
            self._lost = False
            self.reconnects += 1
            self._event("info", f"reconnected ({self.reconnects} so far)")
        elif self._down_said is not None:
            self._event("info", "connected")
        self._down_said = None
        self.connected = True

    def _note_retry(self, state: Any) -> None:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        if exc is not None and not isinstance(exc, Interrupted):
            self.last_error = _reason(exc)
            self._down(self.last_error)
        log.debug(
            "%s: down (%s); next attempt in %.1f s",
            self.uri,
            self.last_error,
            state.next_action.sleep if state.next_action else 0.0,
        )

    def _drop(self, why: str) -> None:
        """The current connection is lost: closed, and the next open counts as a reconnect
        when it had delivered a frame."""
        self.last_error = redact_uri(why)
        self._event("warning", f"lost ({self.last_error}); reconnecting")
        self._down_said = (self.last_error, time.monotonic())
        self.connected = False
        self._lost = self._lost or self._had_frame
        with self._lock:
            self._close_inner()

    def _restamp(self, frame: Frame) -> Frame:
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        inner_reconnects = getattr(self._source, "reconnects", 0)
        if inner_reconnects != self._inner_reconnects:  # the inner source's own reconnect
            self.reconnects += inner_reconnects - self._inner_reconnects
            self._inner_reconnects = inner_reconnects
            self._event("info", f"stream lost and reconnected at once ({self.reconnects} so far)")
        if self._first_pts is None:
            self._first_pts = frame.pts
            self._base = max(now - self._t0, self._last_pts + 1e-6)
        pts = max(self._base + (frame.pts - self._first_pts), self._last_pts + 1e-6)
        self._last_pts = pts
        self._had_frame = True
        self.connected = True
        self.size = (int(frame.image.shape[1]), int(frame.image.shape[0]))
        result = Frame(frame.image, pts, self.frames)
        self.frames += 1
        return result

    # -- stopping ---------------------------------------------------------------------------
    def interrupt(self) -> None:
        """From any thread: a blocked :meth:`read` returns None soon (at once in a backoff
        pause or an open; within the inner source's read timeout, 5 s for RTSP, while it
        waits for a packet), and so do later reads."""
        self._stopping.set()
        source = self._source
        interrupt = getattr(source, "interrupt", None)
        if interrupt is not None:
            interrupt()

    def close(self) -> None:
        """Interrupts and releases the camera; idempotent, safe from any thread (a read in
        progress closes the inner source when it returns)."""
        self.interrupt()
        with self._lock:
            self._closed = True
            self.connected = False
            if not self._reading:
                self._close_inner()
            pending, self._pending = self._pending, None
        if pending is not None:
            pending.abandon()

    def _close_inner(self) -> None:
        """Closes the inner source (hold ``_lock``)."""
        source, self._source = self._source, None
        if source is not None:
            try:
                source.close()
            except Exception:  # noqa: BLE001 - closing a broken camera
                log.debug("%s: close failed", self.uri, exc_info=True)


class _Opening:
    """One open attempt on a daemon thread; abandoned results are closed when they come."""

    def __init__(self, owner: ReconnectingSource, opener: Callable[[str], FrameSource]) -> None:
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._source: Any = None
        self._error: BaseException | None = None
        self._abandoned = False
        self._uri = owner.uri
        spec = owner._spec
        threading.Thread(
            target=self._run, args=(opener, spec), name=f"open-{owner.uri}", daemon=True
        ).start()

    def _run(self, opener: Callable[[str], FrameSource], spec: str) -> None:
        try:
            source: Any = opener(spec)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader
            self._error = exc
            source = None
        with self._lock:
            self._source = source
            abandoned = self._abandoned
            self._done.set()
        if abandoned and source is not None:
            source.close()

    def wait(self, timeout: float | None, stop: threading.Event | None = None) -> bool:
        """Waits up to ``timeout`` seconds (None: until done or ``stop`` is set)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._done.is_set():
            if stop is not None and stop.is_set():
                self.abandon()
                raise Interrupted(self._uri)
            left = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
            if left <= 0:
                return False
            self._done.wait(left)
        return True

    def result(self) -> Any:
        """The opened source (None when abandoned); raises what the open raised."""
        if self._error is not None:
            raise self._error
        with self._lock:
            return None if self._abandoned else self._source

    def abandon(self) -> None:
        """The source, when it opens, is closed at once."""
        with self._lock:
            self._abandoned = True
            source = self._source if self._done.is_set() else None
            self._source = None
        if source is not None:
            source.close()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return redact_uri(text.splitlines()[0])


def open_serve_source(spec: str) -> FrameSource:
    """The frame source ``serve`` reads a ``--camera`` SOURCE from: never ends by itself.

    Video files, image files/folders/globs and finite ``gst:`` pipelines loop
    (``open_source(spec, loop=True)``, opened here), read through a :class:`ReconnectingSource`
    with ``live=False`` (a file that breaks later is reopened with backoff, never an error);
    live cameras (:func:`is_live_spec`) are a :class:`ReconnectingSource`, which also starts
    when the camera is down.

    Raises:
        UserError: a file source that cannot be opened (missing, unreadable: bad input), an
            empty or unsupported SOURCE, a live ``gst:`` launch string that does not parse
            (checked without opening the camera).
    """
    from panorama_cli.localrun.frames.sources import open_source

    if is_live_spec(spec):
        if spec.strip().lower().startswith("gst:"):
            from panorama_cli.localrun.frames.gst_source import check_launch

            check_launch(spec.strip()[4:].strip())
        return ReconnectingSource(spec)
    first = open_source(spec, loop=True)
    return ReconnectingSource(spec, opener=_open_looping, first=first, live=False)


def _open_looping(spec: str) -> FrameSource:
    """A file source opened again after it broke (looping, as at start)."""
    from panorama_cli.localrun.frames.sources import open_source

    return open_source(spec, loop=True)
