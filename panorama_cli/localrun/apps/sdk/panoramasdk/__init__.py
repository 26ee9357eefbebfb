"""panoramasdk as simulated by ``panorama-cli run`` (the AWS Panorama Application SDK contract).

Classes (see ../shared/reference/panoramasdk-reference.md for the SDK's own documentation):

* :class:`node` - subclass it (``super().__init__()`` optional) or instantiate it; ``inputs``
  and ``outputs`` hold one :class:`port` per port the node's interface declares (package.json),
  connected or not; ``call`` runs a model node of the graph in the runner.
* :class:`port` - ``get(timeout=None)``: on a media input a list with one :class:`media` per
  connected camera (stable order), blocking, TimeoutError when ``timeout`` (seconds) expires;
  on a parameter input its typed value. ``put(list_or_tuple_of_media)``: to whatever the
  graph's edges connect; dropped on an unconnected output.
* :class:`media` - ``image`` is the frame (numpy uint8 HxWx3 BGR, writeable, the same array on
  every access; it lives in shared memory, so drawing on it reaches the output);
  ``add_label``/``add_rect`` store overlays (normalized [0, 1) coordinates) that the HDMI sink
  draws; the pixels do not change.

Runs on Python >= 3.7 with numpy; it talks to the runner through ``_client``.
"""

import time

from panoramasdk import _client

__all__ = ["media", "node", "port"]


class media(object):
    """One video frame of one camera stream.

    Attributes (read-only): image (HxWx3 uint8 BGR ndarray), is_cached (bool), stream_id
    (the camera node's name), stream_uri (the source, password redacted), time_stamp
    ((seconds, microseconds) ints).
    """

    def __init__(self, info):
        self._info = info
        self._image = None
        self._labels = list(info.get("labels", ()))
        self._rects = list(info.get("rects", ()))

    @property
    def image(self):
        if self._image is None:
            import numpy as np

            info = self._info
            shape = tuple(info["shape"])
            size = shape[0] * shape[1] * shape[2]
            buffer = _client.connection().buffer(info["ring"], info["offset"] + size)
            self._image = np.ndarray(shape, dtype=np.uint8, buffer=buffer, offset=info["offset"])
        return self._image

    def __getstate__(self):
        # sent to another app process (multiprocessing): it maps the same ring (inherited
        # over fork, else asked of the runner, which hands it to this node's processes only)
        state = dict(self.__dict__)
        state["_image"] = None
        return state

    @property
    def is_cached(self):
        return bool(self._info.get("is_cached", False))

    @property
    def stream_id(self):
        return self._info["stream_id"]

    @property
    def stream_uri(self):
        return self._info["stream_uri"]

    @property
    def time_stamp(self):
        return tuple(self._info["time_stamp"])

    def add_label(self, text, x, y):
        """Attach a text label at (x, y), normalized [0, 1) coordinates (metadata only)."""
        self._labels.append((str(text), float(x), float(y)))

    def add_rect(self, left, top, right, bottom):
        """Attach a rectangle, normalized [0, 1) coordinates (metadata only)."""
        self._rects.append((float(left), float(top), float(right), float(bottom)))

    def _wire(self):
        return {"ref": self._info["ref"], "labels": self._labels, "rects": self._rects}

    def __repr__(self):
        return "media(stream_id={!r}, time_stamp={!r})".format(self.stream_id, self.time_stamp)


class port(object):
    """One input or output port of this node (see the module docstring)."""

    def __init__(self, name, direction, spec):
        self.name = name
        self.direction = direction
        self.type = spec.get("type", "media")
        self.connected = bool(spec.get("connected"))
        self._value = spec.get("value")

    def get(self, timeout=None):
        """The next media list (media input) or the parameter's value (parameter input).

        Raises:
            TimeoutError: no frame within ``timeout`` seconds.
            RuntimeError: called on an output port.
        """
        if self.direction != "input":
            raise RuntimeError("port {} is an output: use put()".format(self.name))
        if self.type != "media":
            return self._value
        connection = _client.connection()
        start = time.perf_counter()
        try:
            reply = connection.request(
                {"op": "get", "port": self.name, "timeout": _seconds(timeout)}
            )
        except KeyboardInterrupt:
            raise KeyboardInterrupt() from None  # the app's frames, not the socket's
        frames = [media(info) for info in reply["media"]]
        connection.record("get", time.perf_counter() - start)
        return frames

    def put(self, data):
        """Send a list or tuple of media to what this output's edges connect.

        Raises:
            TypeError: ``data`` is not a list/tuple of media objects.
            RuntimeError: called on an input port.
        """
        if self.direction != "output":
            raise RuntimeError("port {} is an input: use get()".format(self.name))
        if not isinstance(data, (list, tuple)):
            raise TypeError(
                "port.put() takes a list or tuple of media, not {}".format(type(data).__name__)
            )
        for item in data:
            if not isinstance(item, media):
                raise TypeError(
                    "port.put(): every item must be a media object, not {}".format(
                        type(item).__name__
                    )
                )
        if not self.connected:
            return
        connection = _client.connection()
        start = time.perf_counter()
        connection.post({"op": "put", "port": self.name, "media": [m._wire() for m in data]})
        connection.record("put", time.perf_counter() - start)

    def __repr__(self):
        return "port({!r}, {}, {})".format(self.name, self.direction, self.type)


class _Ports(object):
    """``node.inputs`` / ``node.outputs``: one attribute per declared port."""

    def __init__(self, node_name, direction, ports, where):
        self.__dict__.update(ports)
        object.__setattr__(self, "_panorama_meta", (node_name, direction, where))

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        node_name, direction, where = self.__dict__["_panorama_meta"]
        declared = sorted(k for k in self.__dict__ if k != "_panorama_meta")
        raise AttributeError(
            "node {} has no {} port {!r}: the interface in {} declares {}".format(
                node_name, direction, name, where, ", ".join(declared) or "none"
            )
        )

    def __iter__(self):
        return iter([v for k, v in self.__dict__.items() if k != "_panorama_meta"])

    def __len__(self):
        return len(self.__dict__) - 1

    def __contains__(self, name):
        return name in self.__dict__ and name != "_panorama_meta"


def _attach(instance):
    if "inputs" in instance.__dict__ and "outputs" in instance.__dict__:
        return
    connection = _client.connection()
    hello = connection.hello
    where = hello.get("package_json", "package.json")
    for direction in ("input", "output"):
        specs = hello[direction + "s"]
        ports = {name: port(name, direction, spec) for name, spec in specs.items()}
        instance.__dict__[direction + "s"] = _Ports(hello["node"], direction, ports, where)


#: Arrays up to this size travel inline on the socket; larger ones through shared memory.
_INLINE_BYTES = 1 << 16


def _align(size):
    return (size + 63) & ~63


def _seconds(timeout):
    """A timeout as the runner takes it: None or seconds >= 0 (a float)."""
    return None if timeout is None else max(0.0, float(timeout))


def _pack_inputs(arrays, connection):
    """Model inputs on the wire: {"dtype", "shape", "data": bytes} inline, or {"dtype",
    "shape", "arena", "offset"} in the runner's shared-memory arena; never numpy pickles, so
    the runner's numpy version need not match the app's."""
    import numpy as np

    arrays = [(key, np.ascontiguousarray(value)) for key, value in arrays]
    for _, array in arrays:
        if array.dtype.str not in _client.DTYPES:
            raise TypeError(
                "node.call(): arrays of {} cannot be model inputs (numbers and booleans "
                "only)".format(array.dtype)
            )
    large = sum(_align(a.nbytes) for _, a in arrays if a.nbytes > _INLINE_BYTES)
    if large:
        name, size = connection.arena_for(large)
        buffer = connection.buffer(name, size)
    offset, packed = 0, {}
    for key, array in arrays:
        shape = [int(d) for d in array.shape]
        if array.nbytes <= _INLINE_BYTES:
            packed[key] = {"dtype": array.dtype.str, "shape": shape, "data": array.tobytes()}
            continue
        np.ndarray(shape, dtype=array.dtype, buffer=buffer, offset=offset)[...] = array
        packed[key] = {"dtype": array.dtype.str, "shape": shape, "arena": name, "offset": offset}
        offset += _align(array.nbytes)
    return packed


def _unpack(packed, connection):
    """An output array (a private, writeable copy)."""
    import numpy as np

    dtype, shape = np.dtype(packed["dtype"]), tuple(packed["shape"])
    if "data" in packed:
        return np.frombuffer(bytearray(packed["data"]), dtype=dtype).reshape(shape)
    name, offset = packed["arena"], packed["offset"]
    size = dtype.itemsize
    for dim in shape:
        size *= dim
    buffer = connection.buffer(name, offset + size)
    return np.array(np.ndarray(shape, dtype=dtype, buffer=buffer, offset=offset))


def _call_inputs(inputs, connection):
    import numpy as np

    if isinstance(inputs, media):
        return {"media": inputs._info["ref"]}
    if isinstance(inputs, np.ndarray):
        return {"array": _pack_inputs([("array", inputs)], connection)["array"]}
    if isinstance(inputs, dict):
        arrays = []
        for key, value in inputs.items():
            if isinstance(value, media):
                value = value.image
            if not isinstance(value, np.ndarray):
                raise TypeError(
                    "node.call(): input {!r} must be a numpy array, not {}".format(
                        key, type(value).__name__
                    )
                )
            arrays.append((str(key), value))
        return {"dict": _pack_inputs(arrays, connection)}
    raise TypeError(
        "node.call(): inputs must be a dict of numpy arrays, a numpy array or a media, not "
        "{}".format(type(inputs).__name__)
    )


class node(object):
    """The application's node (see the module docstring)."""

    def __new__(cls, *args, **kwargs):
        instance = object.__new__(cls)
        _attach(instance)
        return instance

    def __init__(self):
        _attach(self)

    def call(self, *args, **kwargs):
        """Run model node ``name`` on ``inputs``: ``call(inputs, name, time_out=None)`` or
        ``call(name, inputs)``.

        Args:
            inputs: ``{input_name: ndarray}``, a bare ndarray (one-input models) or a media.
            name: a model node of the application graph.
            time_out: seconds (None: wait for ever).

        Returns:
            A tuple of numpy arrays in the model's output order.

        Raises:
            ValueError: unknown model node, or input names/shapes the model does not take.
            TypeError: inputs of another type.
            TimeoutError: ``time_out`` expired.
        """
        name = kwargs.pop("name", None)
        inputs = kwargs.pop("inputs", kwargs.pop("input", None))
        time_out = kwargs.pop("time_out", kwargs.pop("timeout", None))
        if kwargs:
            raise TypeError("node.call() got unexpected arguments: " + ", ".join(sorted(kwargs)))
        for value in args:
            if isinstance(value, str) and name is None:
                name = value
            elif inputs is None:
                inputs = value
            elif time_out is None:
                time_out = value
            else:
                raise TypeError("node.call() takes inputs, name and time_out")
        if name is None or inputs is None:
            raise TypeError("node.call() needs a model node name and inputs")
        connection = _client.connection()
        models = connection.hello.get("models", [])
        if name not in models:
            raise ValueError(
                "node.call(): {!r} is not a model node of the application graph (model nodes: "
                "{})".format(name, ", ".join(models) or "none")
            )
        start = time.perf_counter()
        try:
            message = {"op": "call", "model": name, "timeout": _seconds(time_out)}
            message["inputs"] = _call_inputs(inputs, connection)
            reply = connection.request(message)
        except KeyboardInterrupt:
            raise KeyboardInterrupt() from None
        if reply.get("arena"):
            connection.use_arena(*reply["arena"])
        connection.record("call", time.perf_counter() - start)
        return tuple(_unpack(output, connection) for output in reply["outputs"])
