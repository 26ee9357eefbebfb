"""The control socket's wire format: data only, size-capped, schema-checked (runner side).

A frame on the app <-> runner Unix socket (the simulated SDK's ``panoramasdk/_client.py``
writes and reads the same)::

    uint32 N (big-endian)    bytes that follow, N <= MAX_MESSAGE_BYTES (64 MiB)
    uint32 H (big-endian)    JSON header bytes, H <= MAX_HEADER_BYTES (4 MiB), H <= N - 4
    H bytes                  UTF-8 JSON object: the message (dict/list/str/int/float/bool/null)
    N - 4 - H bytes          blob region: raw bytes the header references

A bytes value of a message travels as ``{"$blob": [offset, length]}`` into the blob region
(offsets 64-byte aligned). A numpy array is ``{"dtype", "shape", "data": blob}`` inline or
``{"dtype", "shape", "arena", "offset"}`` in the session's CallArena; ``dtype`` is a numpy
type string from :data:`DTYPES` (plain numbers only). Both lengths are checked as they arrive,
before anything is allocated for the rest; the blob region is received as it comes, so memory
follows the bytes the peer really sent. Nothing is unpickled or evaluated.

Every message from an app is checked against the JSON schema of its ``op`` (:data:`SCHEMAS`)
and its inline arrays against their blob sizes; anything else is a :class:`ProtocolError`.

A message from the runner may carry file descriptors (``SCM_RIGHTS``, at most :data:`MAX_FDS`)
attached to its first byte: the shared memory of frame rings and call arenas; its ``fds`` field
names them, in order (a ring's or an arena's ``name``). Descriptors an app sends are never
read (the runner reads with ``recv``, and the kernel closes them).
"""

from __future__ import annotations

import json
import socket
import struct
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

_WORD = struct.Struct(">I")
#: A whole frame (after its first length word), bytes.
MAX_MESSAGE_BYTES = 64 << 20
#: The JSON header of a frame, bytes.
MAX_HEADER_BYTES = 4 << 20
#: Arrays up to this size travel inline on the socket; larger ones through a CallArena.
INLINE_BYTES = 1 << 16
#: One CallArena (``arena {size}``), bytes.
MAX_ARENA_BYTES = 1 << 30
#: All CallArenas of one run together, bytes.
MAX_ARENA_TOTAL = 2 << 30
#: Concurrent connections of one node after its hello (its threads and child processes each
#: hold one); one node at its limit leaves every other node its own.
MAX_NODE_CONNECTIONS = 32
#: Concurrent connections that have not said hello yet (all nodes together).
MAX_PENDING_CONNECTIONS = 16
#: Seconds a new connection has to say hello before it is closed.
HELLO_TIMEOUT_S = 5.0
#: Descriptors (frame rings, a call arena) attached to one message from the runner.
MAX_FDS = 16
#: Blob-region reads grow by at most this much at a time.
_CHUNK = 1 << 20

#: numpy type strings that may cross the socket: booleans, integers, floats, complex.
DTYPES = frozenset(
    order + code
    for code in ("i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16")
    for order in "<>"
) | {"|b1", "|i1", "|u1"}


class ProtocolError(ValueError):
    """A frame or message that breaks the wire format; the connection is then closed.

    Attributes:
        request_id: the message's ``id`` when the header could be read (for the error reply).
    """

    def __init__(self, reason: str, request_id: Any = None):
        super().__init__(reason)
        self.request_id = request_id


def align(size: int) -> int:
    """``size`` rounded up to 64 bytes (cache line; numpy alignment)."""
    return (size + 63) & ~63


# -- frames ------------------------------------------------------------------------------------
def encode(message: dict[str, Any]) -> bytes:
    """``message`` as one frame; bytes-like values anywhere in it become blobs.

    Raises:
        TypeError: a value JSON cannot hold (numpy scalars and paths are converted).
        ValueError: the frame would be over :data:`MAX_MESSAGE_BYTES`.
    """
    blobs: list[bytes | bytearray | memoryview] = []
    size = 0

    def default(value: Any) -> Any:
        nonlocal size
        if isinstance(value, bytes | bytearray | memoryview):
            start = size
            blobs.append(value)
            length = memoryview(value).nbytes
            size = align(start + length)
            return {"$blob": [start, length]}
        if hasattr(value, "item") and getattr(value, "shape", None) == ():  # numpy scalar
            return value.item()
        if hasattr(value, "__fspath__"):
            return str(value.__fspath__())
        raise TypeError(f"{type(value).__name__} cannot travel on the control socket")

    header = json.dumps(message, separators=(",", ":"), default=default).encode()
    parts: list[Any] = [b"", _WORD.pack(len(header)), header]
    offset = 0
    for blob in blobs:
        view = memoryview(blob).cast("B")
        parts.append(view)
        offset += view.nbytes
        parts.append(bytes(align(offset) - offset))
        offset = align(offset)
    total = 4 + len(header) + offset
    if total > MAX_MESSAGE_BYTES or len(header) > MAX_HEADER_BYTES:
        raise ValueError(f"a message of {total} bytes is over the control socket's limit")
    parts[0] = _WORD.pack(total)
    return b"".join(parts)


def _recv_exact(sock: socket.socket, size: int) -> bytearray | None:
    """Exactly ``size`` bytes (None when the peer closed at once); the buffer grows as bytes
    arrive, at most :data:`_CHUNK` ahead of them.

    Raises:
        ConnectionError: the peer closed mid-frame (an app killed while sending: not a bad
            message).
    """
    buffer = bytearray(min(size, _CHUNK))
    got = 0
    while got < size:
        if got == len(buffer):
            buffer.extend(bytes(min(size - got, len(buffer), _CHUNK * 16)))
        count = sock.recv_into(memoryview(buffer)[got:])
        if not count:
            if got == 0:
                return None
            raise ConnectionError(f"the connection closed {size - got} bytes before a frame's end")
        got += count
    return buffer


def read_frame(
    sock: socket.socket, limit: int = MAX_MESSAGE_BYTES
) -> tuple[bytes, bytearray] | None:
    """The next frame's (JSON header, blob region); None when the peer closed between frames.

    Args:
        limit: the largest frame taken, bytes (at most :data:`MAX_MESSAGE_BYTES`).

    Raises:
        ProtocolError: a length over its cap (nothing allocated for it).
        OSError: the socket failed, or the peer closed inside a frame (ConnectionError).
    """
    first = _recv_exact(sock, 4)
    if first is None:
        return None
    (total,) = _WORD.unpack(first)
    limit = min(limit, MAX_MESSAGE_BYTES)
    if total > limit:
        raise ProtocolError(f"a frame of {total} bytes (the limit is {limit})")
    if total < 4:
        raise ProtocolError(f"a frame of {total} bytes (too short for its header length)")
    second = _recv_exact(sock, 4)
    if second is None:
        raise ConnectionError("the connection closed inside a frame")
    (header_size,) = _WORD.unpack(second)
    if header_size > MAX_HEADER_BYTES or header_size > total - 4:
        raise ProtocolError(
            f"a JSON header of {header_size} bytes in a frame of {total} "
            f"(the limit is {MAX_HEADER_BYTES})"
        )
    header = _recv_exact(sock, header_size) if header_size else bytearray()
    body = _recv_exact(sock, total - 4 - header_size) if total - 4 - header_size else bytearray()
    if header is None or body is None:
        raise ConnectionError("the connection closed inside a frame")
    return bytes(header), body


def _number(text: str) -> int | float:
    """A JSON number with a fraction or exponent: an int when it is whole (``1.0``, ``1e3``),
    so that fields the schemas type as integers (JSON Schema counts 1.0 as one) are ints."""
    value = float(text)
    return int(value) if value.is_integer() else value


def parse(header: bytes) -> dict[str, Any]:
    """The JSON object of a header (NaN and Infinity, which Python writes for such floats,
    are read as floats: an app's overlay coordinates may be NaN).

    Raises:
        ProtocolError: not UTF-8 JSON, or not an object.
    """
    try:
        message = json.loads(header.decode("utf-8"), parse_float=_number)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"the header is not JSON ({str(exc)[:80]})") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"the header is a JSON {type(message).__name__}, not an object")
    return message


# -- messages from apps ------------------------------------------------------------------------
_INT = {"type": "integer", "minimum": 0, "maximum": (1 << 63) - 1}
_NAME = {"type": "string", "maxLength": 256}
_TOKEN = {"type": "string", "maxLength": 128}
_SECONDS = {"type": ["number", "null"], "minimum": 0}
_NUMBER = {"type": "number"}
_PAIR = {"type": "array", "minItems": 2, "additionalItems": False}
_REF = {**_PAIR, "items": [_NAME, _INT]}
_STATS = {
    "type": "array",
    "maxItems": 4096,
    "items": {**_PAIR, "items": [{"type": "string", "maxLength": 16}, _NUMBER]},
}
_DTYPE = {"type": "string", "enum": sorted(DTYPES)}
_SHAPE = {"type": "array", "maxItems": 32, "items": {**_INT, "maximum": 1 << 40}}
_BLOB = {
    "type": "object",
    "properties": {"$blob": {**_PAIR, "items": [_INT, _INT]}},
    "required": ["$blob"],
    "additionalProperties": False,
}
_ARRAY = {
    "type": "object",
    "properties": {"dtype": _DTYPE, "shape": _SHAPE, "data": _BLOB, "arena": _NAME, "offset": _INT},
    # and either data or arena + offset: check() sees to it (a oneOf here costs 12 us a call)
    "required": ["dtype", "shape"],
    "dependencies": {"arena": ["offset"], "offset": ["arena"]},
    "additionalProperties": False,
}
_MEDIA = {
    "type": "object",
    "properties": {
        "ref": _REF,
        "labels": {
            "type": "array",
            "items": {
                "type": "array",
                "items": [{"type": "string"}, _NUMBER, _NUMBER],
                "minItems": 3,
                "additionalItems": False,
            },
        },
        "rects": {
            "type": "array",
            "items": {"type": "array", "items": _NUMBER, "minItems": 4, "maxItems": 4},
        },
    },
    "required": ["ref"],
    "additionalProperties": False,
}
_INPUTS = {
    "type": "object",
    "properties": {
        "media": _REF,
        "array": _ARRAY,
        "dict": {"type": "object", "maxProperties": 1024, "additionalProperties": _ARRAY},
    },
    "minProperties": 1,
    "maxProperties": 1,
    "additionalProperties": False,
}


def _op(name: str, required: list[str], **fields: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"op": {"const": name}, "id": _INT, "stats": _STATS, **fields},
        "required": ["op", *required],
        "additionalProperties": False,
    }


#: op -> JSON schema (draft-07) of the messages an app may send.
SCHEMAS: dict[str, dict[str, Any]] = {
    # token: required by the runner (identity.token_matches), optional here so that a hello
    # without one gets a clear refusal rather than a schema error
    "hello": _op("hello", ["id", "node", "pid"], node=_NAME, pid=_INT, token=_TOKEN),
    "get": _op("get", ["id", "port"], port=_NAME, timeout=_SECONDS),
    "put": _op("put", ["port", "media"], port=_NAME, media={"type": "array", "items": _MEDIA}),
    "call": _op("call", ["id", "model", "inputs"], model=_NAME, timeout=_SECONDS, inputs=_INPUTS),
    "stats": _op("stats", ["stats"]),
    "arena": _op("arena", ["id", "size"], size=_INT),
    "ring": _op("ring", ["id", "ring"], ring=_NAME),
}


@cache
def _validators() -> dict[str, Any]:
    """op -> a validator compiled by fastjsonschema (the schemas become Python code: about
    40 times faster than jsonschema's interpreter on a ``put`` with overlays, once per frame)."""
    import fastjsonschema

    draft = "http://json-schema.org/draft-07/schema#"
    return {op: fastjsonschema.compile({"$schema": draft, **s}) for op, s in SCHEMAS.items()}


def check(message: dict[str, Any], body: bytearray) -> dict[str, Any]:
    """``message`` (from :func:`parse`) checked, with its blobs put in place (memoryviews of
    ``body``).

    Raises:
        ProtocolError: an unknown op, a field missing or of the wrong type, a blob outside the
            blob region, an inline array whose bytes do not match its dtype and shape.
    """
    from fastjsonschema import JsonSchemaValueException

    request_id = message.get("id")
    op = message.get("op")
    validate = _validators().get(op) if isinstance(op, str) else None
    if validate is None:
        raise ProtocolError(f"unknown op {str(op)[:40]!r}", request_id)
    try:
        validate(message)
    except JsonSchemaValueException as exc:  # "data.port must be string"
        where = exc.message.removeprefix("data.").replace("data ", "the message ", 1)
        raise ProtocolError(f"{op}: {where[:200]}", request_id) from None
    if op == "put":  # overlays as the SDK made them: (left, top, right, bottom), (text, x, y)
        for media in message["media"]:
            for key in ("rects", "labels"):
                if key in media:
                    media[key] = [tuple(item) for item in media[key]]
    if op == "call":
        inputs = message["inputs"]
        arrays = [inputs["array"]] if "array" in inputs else list(inputs.get("dict", {}).values())
        for array in arrays:
            if ("data" in array) == ("arena" in array):
                raise ProtocolError("call: an array has data or arena + offset", request_id)
            if "data" in array:
                array["data"] = _blob(array, body, request_id)
    return message


def _blob(array: dict[str, Any], body: bytearray, request_id: Any) -> memoryview:
    start, length = array["data"]["$blob"]
    if start + length > len(body):
        raise ProtocolError(
            f"call: a blob at {start}+{length} outside the {len(body)} bytes sent", request_id
        )
    expected = nbytes(array["dtype"], array["shape"])
    if expected != length:
        raise ProtocolError(
            f"call: an array {array['dtype']} {array['shape']} of {expected} bytes sent "
            f"with {length}",
            request_id,
        )
    return memoryview(body)[start : start + length]


# -- arrays ------------------------------------------------------------------------------------
def nbytes(dtype: str, shape: list[int] | tuple[int, ...]) -> int:
    """Bytes of an array of ``dtype`` (one of :data:`DTYPES`) and ``shape``."""
    size = int(dtype.lstrip("<>|=")[1:])
    for dim in shape:
        size *= int(dim)
    return size


def pack_array(array: np.ndarray) -> dict[str, Any]:
    """An ndarray inline on the wire: ``{"dtype", "shape", "data": bytes}`` (the bytes travel
    as a blob). No numpy pickle, so the app's numpy need not match the runner's.

    Raises:
        TypeError: a dtype outside :data:`DTYPES` (objects, strings, records...).
    """
    import numpy as np

    array = np.ascontiguousarray(array)
    return {
        "dtype": checked_dtype(array.dtype.str),
        "shape": [int(d) for d in array.shape],
        "data": array.tobytes(),
    }


def arena_ref(array: np.ndarray, name: str, offset: int) -> dict[str, Any]:
    """The wire reference of ``array`` written at ``offset`` of CallArena ``name``."""
    return {
        "dtype": checked_dtype(array.dtype.str),
        "shape": [int(d) for d in array.shape],
        "arena": name,
        "offset": int(offset),
    }


def checked_dtype(dtype: str) -> str:
    """``dtype`` when it is in :data:`DTYPES`.

    Raises:
        TypeError: it is not.
    """
    if dtype not in DTYPES:
        raise TypeError(f"arrays of dtype {dtype!r} cannot cross the control socket")
    return dtype


def array_end(ref: dict[str, Any]) -> int:
    """The aligned end offset of an arena reference in its arena (0 for an inline array)."""
    if "arena" not in ref:
        return 0
    return align(int(ref["offset"]) + nbytes(ref["dtype"], ref["shape"]))
