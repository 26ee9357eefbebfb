"""The runner's answers to the SDK: frames in, media out along the graph's edges, model calls.

:class:`Router` is the :class:`~panorama_cli.localrun.frames.channel.ControlServer` handler. A
``get`` on a media input takes the next frame of every producer the edges connect (a camera
feed, or another business-logic node's output queue) and answers with where its pixels are in
that port's :class:`~panorama_cli.localrun.frames.ring.FrameRing`: a camera that feeds one port
decodes straight into the ring's slots (no copy); otherwise the frame is copied in. A ``put``
routes the media references to data sinks (one encoder thread per stream) or to the input
queues of downstream nodes. A ``call`` runs the model node in this process. When a node asks
for a frame that will never come (its inputs ended), the router tells the engine instead of
answering; the engine then stops that node.

A node reaches only the rings whose frames were delivered to it: a ring's descriptor is
attached to the first ``get`` reply on a connection that references it (or sent on ``ring``),
and ``put`` or ``call`` naming a ring the node was never given is not followed.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

from panorama_cli.errors import UserError
from panorama_cli.localrun.frames.channel import (
    INLINE_BYTES,
    CallArena,
    Session,
    align,
    arena_ref,
    array_end,
    pack_array,
    unpack_array,
)
from panorama_cli.localrun.frames.feeds import CameraFeed, Ended, NodeStats, SinkWorker
from panorama_cli.localrun.frames.ring import FrameRing
from panorama_cli.localrun.frames.wire import MAX_ARENA_BYTES, MAX_ARENA_TOTAL, MAX_FDS

if TYPE_CHECKING:
    import numpy as np

    from panorama_cli.localrun.plan import RunPlan

_POLL_S = 0.2
#: A delivered frame's pixels stay valid until this many more frames reach the same port.
RING_SLOTS = 8


class Router:
    """Answers the SDK's messages for one run (see the module docstring).

    Args:
        plan: the run plan.
        feeds: camera node -> its feed.
        models: model node -> loaded model (``run(inputs) -> tuple``).
        make_sink: stream_id, fps -> a sink with ``write(image, rects, labels)`` / ``close()``.
        on_inputs_ended: called with a node name when it asks for a frame that will not come.
        on_first_frame: called once, when the first frame is delivered.
        keep_frames: keep a copy of every HDMI frame (the Python API's ``keep_frames``).
        on_hello: called with a node name and the pid it gave (its own PID namespace's) when
            its process connects (each restart too).
        on_bye: called with a node name when a connection of that node closes.
    """

    def __init__(
        self,
        plan: RunPlan,
        feeds: dict[str, CameraFeed],
        models: dict[str, Any],
        make_sink: Callable[[str, float], Any],
        on_inputs_ended: Callable[[str], None],
        on_first_frame: Callable[[], None],
        keep_frames: bool = False,
        on_hello: Callable[[str, int | None], None] | None = None,
        on_bye: Callable[[str], None] | None = None,
    ):
        self.plan = plan
        self._on_hello = on_hello
        self._on_bye = on_bye
        self.feeds = feeds
        self.models = models
        self.stop = threading.Event()
        self.stats = {b.node.name: NodeStats() for b in plan.business}
        self.sinks: dict[str, SinkWorker] = {}
        self.kept: dict[str, list[Any]] | None = {} if keep_frames else None
        self._make_sink = make_sink
        self._on_inputs_ended = on_inputs_ended
        self._on_first_frame = on_first_frame
        self._first = threading.Event()
        self._lock = threading.Lock()
        self._rings: dict[tuple[str, str, str], FrameRing] = {}
        self._by_name: dict[str, FrameRing] = {}
        self._granted: dict[str, set[str]] = {}  # node -> names of rings delivered to it
        self._business = {b.node.name: b for b in plan.business}
        self._queues: dict[tuple[str, str], queue.Queue[Any]] = {}
        self._producers: dict[tuple[str, str], list[tuple[str, str | None]]] = {}
        self._ended_nodes: set[str] = set()
        self._start_wall = time.time()
        self._arenas: dict[Session, CallArena] = {}
        self._callers: dict[str, set[str]] = {}  # model node -> nodes that called it
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="localrun-call")
        for b in plan.business:
            for port, spec in b.inputs.items():
                if spec["type"] == "media":
                    self._queues[(b.node.name, port)] = queue.Queue()

    # -- lifecycle ---------------------------------------------------------------------------
    def replace_plan(self, plan: RunPlan) -> None:
        """A plan with the same nodes and edges but new inputs (serve's SIGHUP): nodes that
        connect from now on get the new values."""
        self.plan = plan
        self._business = {b.node.name: b for b in plan.business}

    def node_ended(self, node: str) -> None:
        """``node``'s process has ended: downstream nodes drain its queue, then end."""
        with self._lock:
            self._ended_nodes.add(node)

    def close(self) -> dict[str, dict[str, Any]]:
        """Flush the sinks (returns stream_id -> {frames, path}) and free the rings."""
        self.stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        hdmi = {stream: worker.close() for stream, worker in self.sinks.items()}
        for ring in self._by_name.values():
            ring.close()
        with self._lock:
            arenas, self._arenas = list(self._arenas.values()), {}
        for arena in arenas:
            arena.close()
        return hdmi

    def model_callers(self) -> dict[str, list[str]]:
        """Model node -> the business-logic nodes that have called it (``node.call``), sorted."""
        with self._lock:
            return {model: sorted(nodes) for model, nodes in self._callers.items()}

    def sink_errors(self) -> list[BaseException]:
        return [w.error for w in self.sinks.values() if w.error is not None]

    # -- messages ----------------------------------------------------------------------------
    def __call__(self, session: Session, message: dict[str, Any]) -> None:
        op = message.get("op")
        if session.node is not None:
            self.stats[session.node].add(message.get("stats"))
        if op == "hello":
            self._hello(session, message)
        elif op == "get":
            self._get(session, message)
        elif op == "put":
            self._put(session, message)
        elif op == "call":
            self._call(session, message)
        elif op == "arena":
            self._arena(session, message)
        elif op == "ring":
            self._ring_again(session, message)
        elif op != "stats":
            session.reply(message, error="runtime", message=f"unknown request {op!r}")

    def _hello(self, session: Session, message: dict[str, Any]) -> None:
        # session.node is the node the ControlServer admitted (its token), never the name sent
        business = self._business.get(session.node or "")
        if business is None:
            session.reply(
                message, error="runtime", message=f"{session.node!r} is not a business-logic node"
            )
            return
        if self._on_hello is not None:
            self._on_hello(business.node.name, session.pid)
        session.reply(
            message,
            node=business.node.name,
            inputs=business.inputs,
            outputs=business.outputs,
            models=[m.name for m in self.plan.models],
            package_json=business.package_json,
        )

    def _get(self, session: Session, message: dict[str, Any]) -> None:
        node, port = session.node or "", str(message.get("port"))
        timeout = message.get("timeout")
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        producers = self._producers.get((node, port))
        if producers is None:
            producers = self._producers[(node, port)] = self.plan.media_producers(node, port)
        media = []
        try:
            if not producers:
                self._wait_unconnected(deadline)
            for producer, _producer_port in producers:
                if producer in self.feeds:
                    media.append(self._camera_media(node, port, producer, deadline))
                else:
                    media.append(self._queued_media(node, port, deadline))
        except TimeoutError as exc:
            session.reply(message, error="timeout", message=str(exc))
            return
        except Ended:
            self._on_inputs_ended(node)
            return  # no answer: the engine stops the node now
        except UserError as exc:  # a broken source
            session.reply(message, error="runtime", message=str(exc))
            self._on_inputs_ended(node)
            return
        if not self._first.is_set():
            self._first.set()
            self._on_first_frame()
        self._grant(node, media)
        new = [m["ring"] for m in media if m["ring"] not in session.sent]
        if not new:
            session.reply(message, media=media)
            return
        rings = [(name, self._by_name[name]) for name in dict.fromkeys(new)][:MAX_FDS]
        session.reply_with(message, rings, media=media)

    def _grant(self, node: str, media: list[dict[str, Any]]) -> None:
        """``node`` may map, put and call with the rings of ``media`` (delivered to it)."""
        granted = self._granted.get(node)
        if granted is None:
            with self._lock:
                granted = self._granted.setdefault(node, set())
        for item in media:
            if item["ring"] not in granted:
                with self._lock:
                    granted.add(item["ring"])

    def _node_ring(self, node: str | None, name: str) -> FrameRing | None:
        """Ring ``name`` when its frames were delivered to ``node``, else None."""
        if name not in self._granted.get(node or "", ()):
            return None
        return self._by_name.get(name)

    def _ring_again(self, session: Session, message: dict[str, Any]) -> None:
        """``ring {ring}``: the descriptor of a ring delivered to this node, for a connection
        that was not sent it (another thread's or a child process's)."""
        name = str(message.get("ring"))
        ring = self._node_ring(session.node, name)
        if ring is None or ring.closed:
            session.reply(message, error="value", message=f"no frame ring {name[:80]!r} here")
            return
        session.reply_with(message, [(name, ring)], ring=name)

    def _wait_unconnected(self, deadline: float | None) -> None:
        while not self.stop.wait(_POLL_S):
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError("no camera is connected to this input")
        raise Ended()

    def _ring(self, key: tuple[str, str, str], shape: tuple[int, ...], extra: int = 0) -> FrameRing:
        """``key``'s ring for frames of ``shape``; a new one when the size changed. ``extra``:
        slots beyond :data:`RING_SLOTS` (kept by a replacement ring)."""
        ring = self._rings.get(key)
        if ring is None or ring.shape != tuple(shape):
            if ring is not None:
                extra = max(extra, ring.slots - RING_SLOTS)
            ring = FrameRing(shape, slots=RING_SLOTS + extra, stream=key[0])
            with self._lock:
                self._rings[key] = ring
                self._by_name[ring.name] = ring
        return ring

    def _decode_into_ring(self, key: tuple[str, str, str], feed: CameraFeed) -> None:
        """Before a camera that feeds only this port starts: its reader decodes into the
        port's ring (slots for the frames it reads ahead, too), so frames are not copied."""
        size = getattr(feed.camera.source, "size", None)
        if feed.started or feed.sole_consumer() != key[1:] or not size:
            return
        camera = feed.camera
        shape = (int(size[1]), int(size[0]), 3)
        self._ring(key, shape, extra=camera.lead)

        def claim() -> np.ndarray | None:
            ring = self._rings.get(key)
            return None if ring is None else ring.claim_view()

        def unclaim(image: np.ndarray) -> None:
            ring = self._rings.get(key)
            if ring is not None:
                ring.unclaim(image)

        camera.read_into(claim, unclaim)

    def _camera_media(
        self, node: str, port: str, camera: str, deadline: float | None
    ) -> dict[str, Any]:
        import numpy as np

        feed = self.feeds[camera]
        key = (camera, node, port)
        if key not in self._rings:
            self._decode_into_ring(key, feed)
        frame = feed.next((node, port), deadline, self.stop)
        image = frame.image
        ring = self._ring(key, image.shape)
        slot = ring.slot_of(image)
        if slot is None:  # not decoded into the ring: copy
            image = np.ascontiguousarray(image, dtype=np.uint8)
            slot = ring.write(image)
        stamp = self._start_wall + float(frame.pts)
        seconds = int(stamp)
        time_stamp = (seconds, int((stamp - seconds) * 1e6))
        ring.stamps[slot] = time_stamp
        return {
            "ring": ring.name,
            "offset": ring.offset(slot),
            "shape": image.shape,
            "ref": (ring.name, slot),
            "stream_id": camera,
            "stream_uri": feed.uri,
            "time_stamp": time_stamp,
            "is_cached": False,  # a get never repeats a frame: it waits for a new one
            "labels": [],
            "rects": [],
        }

    def start_clock(self) -> None:
        """The run's start time (wall clock) that frame time stamps are offset by."""
        self._start_wall = time.time()

    def _queued_media(self, node: str, port: str, deadline: float | None) -> dict[str, Any]:
        pending = self._queues[(node, port)]
        upstream = {p for p, _ in self.plan.media_producers(node, port) if p not in self.feeds}
        while not self.stop.is_set():
            try:
                return pending.get(timeout=_POLL_S)
            except queue.Empty:
                pass
            with self._lock:
                if upstream <= self._ended_nodes and pending.empty():
                    raise Ended()
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError("no frame from the upstream node")
        raise Ended()

    def _put(self, session: Session, message: dict[str, Any]) -> None:
        node, port = session.node or "", str(message.get("port"))
        for edge in self.plan.graph.edges_from(node, port):
            target = edge.consumer_node
            for item in message.get("media", ()):
                ring = self._node_ring(node, item["ref"][0])
                slot = item["ref"][1]
                if ring is None or not 0 <= slot < ring.slots:
                    continue
                if target in self.plan.sinks:
                    self._to_sink(ring, slot, item)
                elif (target, edge.consumer_port) in self._queues:
                    self._queues[(target, edge.consumer_port)].put(self._forward(ring, item))

    def _to_sink(self, ring: FrameRing, slot: int, item: dict[str, Any]) -> None:
        stream = ring.stream
        worker = self.sinks.get(stream)
        if worker is None:
            feed = self.feeds.get(stream)
            keep = None
            if self.kept is not None:
                keep = self.kept.setdefault(stream, [])
            worker = SinkWorker(self._make_sink(stream, feed.fps if feed else 10.0), keep)
            self.sinks[stream] = worker
        # the sink skips malformed overlays itself (one warning), never ends the stream
        worker.submit(ring, slot, item.get("rects") or [], item.get("labels") or [])

    def _forward(self, ring: FrameRing, item: dict[str, Any]) -> dict[str, Any]:
        name, slot = item["ref"]
        stream = ring.stream
        feed = self.feeds.get(stream)
        return {
            "ring": name,
            "offset": ring.offset(slot),
            "shape": ring.shape,
            "ref": (name, slot),
            "stream_id": stream,
            "stream_uri": feed.uri if feed else stream,
            "time_stamp": ring.stamps[slot],
            "is_cached": False,
            "labels": list(item.get("labels", ())),
            "rects": list(item.get("rects", ())),
        }

    def _call(self, session: Session, message: dict[str, Any]) -> None:
        name = message.get("model")
        model = self.models.get(name)
        if model is None:
            session.reply(
                message,
                error="value",
                message=f"{name!r} is not a model node (model nodes: "
                f"{', '.join(self.models) or 'none'})",
            )
            return
        if session.node is not None and session.node not in self._callers.get(name, ()):
            with self._lock:
                self._callers.setdefault(name, set()).add(session.node)
        inputs = message.get("inputs") or {}
        if "media" in inputs:
            ring = self._node_ring(session.node, inputs["media"][0])
            if ring is None or not 0 <= inputs["media"][1] < ring.slots:
                session.reply(message, error="value", message="node.call(): not a frame")
                return
            payload: Any = ring.view(inputs["media"][1])
        else:
            arena = self._arenas.get(session)
            try:
                if "array" in inputs:
                    payload = unpack_array(inputs["array"], arena)
                else:
                    payload = {k: unpack_array(v, arena) for k, v in inputs["dict"].items()}
            except (ValueError, TypeError) as exc:
                session.reply(message, error="value", message=str(exc))
                return
        timeout = message.get("timeout")
        try:
            if timeout is None:
                outputs = model.run(payload)
            else:
                outputs = self._pool.submit(model.run, payload).result(timeout=float(timeout))
        except (FutureTimeout, TimeoutError):
            session.reply(message, error="timeout", message=f"model {name}: over {timeout} s")
            return
        except (UserError, ValueError, KeyError) as exc:
            session.reply(message, error="value", message=str(exc))
            return
        except TypeError as exc:
            session.reply(message, error="type", message=str(exc))
            return
        reply = self._pack_outputs(session, inputs, outputs)
        arena = reply.pop("_arena", None)
        if arena is None:
            session.reply(message, **reply)
        else:
            session.reply_with(message, [(arena.name, arena)], **reply)

    def _arena(self, session: Session, message: dict[str, Any]) -> None:
        """A (new, larger) CallArena for this session's large model inputs."""
        size = max(int(message.get("size", 0)), 1 << 20)
        try:
            arena = self._new_arena(session, size)
        except ValueError as exc:
            session.reply(message, error="value", message=str(exc))
            return
        session.reply_with(message, [(arena.name, arena)], name=arena.name, size=arena.size)

    def _new_arena(self, session: Session, size: int) -> CallArena:
        """Raises ValueError: over MAX_ARENA_BYTES, or the run's arenas over MAX_ARENA_TOTAL."""
        with self._lock:
            others = sum(a.size for s, a in self._arenas.items() if s is not session)
        if size > MAX_ARENA_BYTES or others + size > MAX_ARENA_TOTAL:
            raise ValueError(
                f"node.call(): {size} bytes of shared memory for model arrays is over the "
                f"runner's limit ({MAX_ARENA_BYTES} per process, {MAX_ARENA_TOTAL} per run)"
            )
        try:
            arena = CallArena(size)
        except OSError as exc:
            raise ValueError(f"node.call(): no shared memory for model arrays ({exc})") from None
        with self._lock:
            old = self._arenas.pop(session, None)
            self._arenas[session] = arena
        if old is not None:
            old.close()  # the app keeps its own mapping of it until it maps the new one
        return arena

    def session_closed(self, session: Session) -> None:
        """The app process closed its connection: free its arena."""
        with self._lock:
            arena = self._arenas.pop(session, None)
        if arena is not None:
            arena.close()
        if session.node and self._on_bye is not None:
            self._on_bye(session.node)

    def _pack_outputs(
        self, session: Session, inputs: dict[str, Any], outputs: Any
    ) -> dict[str, Any]:
        """Outputs inline when small, else in the session's arena after the inputs."""
        import numpy as np

        arrays = [np.ascontiguousarray(o) for o in outputs]
        large = sum(align(a.nbytes) for a in arrays if a.nbytes > INLINE_BYTES)
        if not large:
            return {"outputs": [pack_array(a) for a in arrays]}
        refs = [inputs["array"]] if "array" in inputs else list(inputs.get("dict", {}).values())
        start = max((array_end(ref) for ref in refs), default=0)  # the app's inputs first
        arena = self._arenas.get(session)
        reply: dict[str, Any] = {}
        if arena is None or start + large > arena.size:
            arena = self._new_arena(session, max(2 * large, 1 << 20))
            start = 0
            reply["arena"] = [arena.name, arena.size]
            reply["_arena"] = arena  # its descriptor goes with the reply
        packed = []
        for array in arrays:
            if array.nbytes <= INLINE_BYTES:
                packed.append(pack_array(array))
                continue
            arena.view(array.dtype.str, array.shape, start)[...] = array
            packed.append(arena_ref(array, arena.name, start))
            start += align(array.nbytes)
        reply["outputs"] = packed
        return reply
