"""Model nodes for ``panorama-cli run``: load each ml-model node once, run it for ``node.call``.

On the device a model node runs outside the app's container and ``call`` reaches it; here the
runner loads it (:func:`load_model`) before the app starts, so a model problem is one line
before any frame, and serves calls through :meth:`ModelNode.run`:

- inputs: a dict ``{input name: ndarray}``, a bare ndarray (one-input models), or a media /
  H×W×3 uint8 image (resized to the input's spatial size, NCHW/NHWC float, pixel values
  0-255 unchanged: the runner's convention, the SDK reference does not define one);
- names are the descriptor's (``mlModelDescriptor.inputs``), which is what the app's code
  uses on the device (Neo keeps them); when the model file names its inputs differently, they
  are matched by position;
- an array with the expected shape's element count is reshaped to it; values are cast to the
  model's input dtype;
- outputs: a tuple of ndarrays in the model's output order;
- one call at a time per model (a lock: "one inference thread per model"); per-call latency
  kept for the report (:attr:`ModelNode.stats`).

Every model runs as ONNX in onnxruntime (CPU, or CUDA with ``--device cuda``): an MXNet,
TensorFlow or PyTorch artifact is converted once (:mod:`panorama_cli.localrun.models.convert`,
cached by the archive's sha256) and its check kept in :attr:`ModelNode.conversion`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from panorama_cli.errors import UserError
from panorama_cli.localrun.models import model_archive
from panorama_cli.localrun.report import TimingStats

if TYPE_CHECKING:
    import numpy as np

    from panorama_cli.project.appgraph import Node
    from panorama_cli.project.project import Package


class ModelCallError(UserError, ValueError):
    """Inputs that do not fit the model (names, element count, type); one line."""


class ModelNode:
    """A loaded model of one ml-model node; :meth:`run` is thread-safe.

    Attributes:
        name: the node's name.
        backend: runtime, e.g. ``"onnxruntime-cpu"``, ``"torch-cpu"``, ``"tensorflow-cpu"``.
        input_names: the names ``call`` takes, in model order.
        input_shapes: expected shape per input (-1 = any size along that axis).
        input_dtypes: numpy dtype per input (values are cast to it).
        output_names: output names in the order of the returned tuple.
        impl: the backend object (``impl.session`` is the onnxruntime session for ONNX).
        conversion: how the model became ONNX (a
            :class:`~panorama_cli.localrun.models.convert.Conversion`), None for an ONNX asset.
    """

    conversion: Any = None

    def __init__(
        self,
        name: str,
        impl: Any,
        *,
        names: tuple[str, ...] = (),
        shapes: Mapping[str, tuple[int, ...]] | None = None,
    ) -> None:
        import numpy as np

        self.name = name
        self.impl = impl
        self.backend: str = impl.name
        model_names = tuple(impl.input_names)
        names = names or model_names
        if len(names) != len(model_names):
            raise UserError(
                f"model node {name}: descriptor.json declares inputs {', '.join(names)} but "
                f"the model has {', '.join(model_names) or 'none'}",
                hint="fix mlModelDescriptor.inputs or pass the matching --model file",
            )
        self.input_names: tuple[str, ...] = names
        if set(names) == set(model_names):  # the same names (a converted model): by name
            self._to_model = {n: n for n in names}
        else:  # the model file names them differently: by position
            self._to_model = dict(zip(names, model_names, strict=True))
        self._identity = all(a == b for a, b in self._to_model.items())
        self.input_dtypes: dict[str, np.dtype] = {
            n: np.dtype(impl.input_dtypes[m]) for n, m in self._to_model.items()
        }
        self.input_shapes: dict[str, tuple[int, ...]] = {}
        for app_name, model_name in self._to_model.items():
            model_shape = tuple(impl.input_shapes.get(model_name, ()))
            given = tuple((shapes or {}).get(app_name, ()))
            if given and model_shape and -1 not in model_shape:
                if math.prod(given) != math.prod(model_shape):
                    raise UserError(
                        f"model node {name}: descriptor.json gives input {app_name} shape "
                        f"{list(given)}, the model takes {list(model_shape)}",
                        hint="fix mlModelDescriptor.inputs[].shape",
                    )
            self.input_shapes[app_name] = given or model_shape
        self._sizes = {
            n: (math.prod(s) if s and -1 not in s else None) for n, s in self.input_shapes.items()
        }
        self._lock = threading.Lock()
        self._latency_ms = TimingStats()  # bounded memory, however many calls

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(self.impl.output_names)

    # -- inputs ----------------------------------------------------------------------------
    def _error(self, message: str) -> ModelCallError:
        return ModelCallError(f"model node {self.name}: {message}")

    def _check(self, name: str, value: Any) -> np.ndarray:
        import numpy as np

        array_ = value if type(value) is np.ndarray else np.asarray(value)
        shape = self.input_shapes[name]
        if array_.shape != shape:
            size = self._sizes[name]
            if size is not None:
                if array_.size != size:
                    raise self._error(
                        f"input {name} has shape {list(array_.shape)} ({array_.size} elements); "
                        f"the model takes {list(shape)} ({size})"
                    )
                array_ = array_.reshape(shape)
        dtype = self.input_dtypes[name]
        if array_.dtype != dtype:
            array_ = array_.astype(dtype)
        return array_

    def image_input(self, image: np.ndarray) -> np.ndarray:
        """An H×W×3 uint8 BGR image as this one-input model's tensor: resized to the input's
        spatial size (NCHW when the shape's axis 1 is 3, else NHWC), model dtype, values 0-255.

        Raises:
            ModelCallError: the model has several inputs or no fixed 4-D image shape.
        """
        import cv2
        import numpy as np

        shape = self.input_shapes[self.input_names[0]]
        if len(self.input_names) != 1 or len(shape) != 4 or -1 in shape[1:]:
            raise self._error(
                f"a media/image input needs a one-input model of fixed 4-D shape "
                f"(inputs: {', '.join(self.input_names)}); pass a dict of arrays"
            )
        nchw = shape[1] == 3
        height, width = (shape[2], shape[3]) if nchw else (shape[1], shape[2])
        resized = cv2.resize(np.asarray(image), (width, height), interpolation=cv2.INTER_LINEAR)
        tensor = resized.transpose(2, 0, 1) if nchw else resized
        return np.ascontiguousarray(
            tensor[np.newaxis], dtype=self.input_dtypes[self.input_names[0]]
        )

    def _feed(self, inputs: Any) -> dict[str, Any]:
        import numpy as np

        if isinstance(inputs, np.ndarray):
            if len(self.input_names) != 1:
                raise self._error(
                    f"takes {len(self.input_names)} inputs ({', '.join(self.input_names)}); "
                    "pass a dict {name: array}"
                )
            if inputs.dtype == np.uint8 and inputs.ndim == 3 and inputs.shape[2] == 3:
                if self._sizes[self.input_names[0]] != inputs.size:
                    inputs = self.image_input(inputs)
            return {self.input_names[0]: self._check(self.input_names[0], inputs)}
        if isinstance(inputs, Mapping):
            if inputs.keys() != self._to_model.keys():
                given = ", ".join(sorted(map(str, inputs))) or "none"
                raise self._error(
                    f"inputs {given} do not match the model's inputs {', '.join(self.input_names)}"
                )
            return {n: self._check(n, v) for n, v in inputs.items()}
        image = getattr(inputs, "image", None)
        if isinstance(image, np.ndarray):  # a panoramasdk media
            return {self.input_names[0]: self.image_input(image)}
        raise self._error(
            f"inputs must be a dict of arrays, an array or a media, not {type(inputs).__name__}"
        )

    # -- calls -----------------------------------------------------------------------------
    def run(self, inputs: Any, timeout: float | None = None) -> tuple[np.ndarray, ...]:
        """Runs the model once.

        Args:
            inputs: ``{name: ndarray}``, an ndarray (one-input models) or a media/image.
            timeout: seconds to wait for another call on this model to finish.

        Returns:
            The outputs, a tuple of ndarrays in the model's output order.

        Raises:
            ModelCallError: wrong input names, element count, or input type.
            TimeoutError: the model stayed busy for ``timeout`` seconds.
        """
        start = time.perf_counter()
        feed = self._feed(inputs)
        if not self._identity:
            feed = {self._to_model[n]: v for n, v in feed.items()}
        prepared = time.perf_counter() - start
        if not self._lock.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
            raise TimeoutError(f"model node {self.name}: busy for more than {timeout:g} s")
        try:
            start = time.perf_counter()  # waiting for another call is not this call's latency
            outputs = self.impl.run(feed)
            self._latency_ms.add((prepared + time.perf_counter() - start) * 1000.0)
        finally:
            self._lock.release()
        return outputs

    __call__ = run

    @property
    def conversion_info(self) -> dict[str, Any] | None:
        """report.json's ``conversion`` entry (framework, converter, seconds, cached,
        max_rel_error, ...), None for a model that was ONNX already."""
        return None if self.conversion is None else dict(self.conversion.summary())

    @property
    def stats(self) -> dict[str, Any]:
        """``{"backend", "calls", "mean_ms", "p50_ms", "p95_ms"}`` over every call so far
        (milliseconds checking/converting the inputs plus running the model; time spent
        waiting for another call on the same model is not counted)."""
        summary = self._latency_ms.summary()
        return {
            "backend": self.backend,
            "calls": int(summary["count"]),
            "mean_ms": float(summary["mean"]),
            "p50_ms": float(summary["p50"]),
            "p95_ms": float(summary["p95"]),
        }


def _unsupported(kind: str, node: str, label: str) -> UserError:
    if kind == model_archive.NEO:
        what = "a SageMaker Neo-compiled model, which runs only on the device"
    else:
        what = f"a {kind} model, which this runner does not run"
    return UserError(
        f"model node {node}: {label} is {what}",
        hint=f"export the original model to ONNX and pass --model {node}=model.onnx",
    )


def _silent(event: str, data: dict[str, Any]) -> None:
    pass


def find_model(
    name: str, package: Package | None, model_path: Path | None, cache_dir: Path
) -> tuple[model_archive.ModelFile, Path, str | None]:
    """The model file of node ``name``: ``--model`` (a file, folder or archive) or the
    package's asset archive (unpacked into ``cache_dir``).

    Returns:
        (what was found, the source to convert from: the archive, or the file or folder
        given, the archive's sha256 or None).

    Raises:
        UserError: no model, a missing/changed/unsafe archive, nothing recognisable inside.
    """
    if model_path is not None:
        model_path = Path(model_path)
        label = str(model_path)
        if model_path.is_file() and model_path.name.endswith((".tar.gz", ".tgz", ".tar")):
            from panorama_cli.project.assets import sha256_file

            sha256 = sha256_file(model_path)
            folder = model_archive.unpack_archive(model_path, sha256, cache_dir, label=label)
            return model_archive.find_model_file(folder, label), folder, sha256
        found = model_archive.find_model_file(model_path, f"model node {name}: {label}")
        source = found.path
        if found.kind == model_archive.MXNET and found.path.is_file():
            source = found.path.parent  # the symbol file and its params beside it
        return found, source, None
    asset = package.model_asset() if package is not None else None
    if asset is None:
        raise UserError(
            f"model node {name}: no model file (its package has no model asset here)",
            hint=f"pass --model {name}=PATH (.onnx, TorchScript .pt, SavedModel folder)",
        )
    archive, sha256 = asset
    label = f"assets/{archive.name}"
    folder = model_archive.unpack_archive(archive, sha256, cache_dir, label=label)
    return model_archive.find_model_file(folder, f"model node {name}: {label}"), folder, sha256


def load_model(
    node: Node,
    package: Package | None,
    *,
    model_path: Path | None,
    cache_dir: Path,
    device: str = "cpu",
    notify: Any = None,
    convert_cache: Path | None = None,
) -> ModelNode:
    """Load the model of one ml-model node.

    Args:
        node: the graph's model node (its ``name`` names it in messages and calls).
        package: its local package (descriptor: input names and shapes; asset archive), or
            None for a package that is not in the project.
        model_path: ``--model NODE=PATH``: an .onnx / TorchScript file, a SavedModel folder,
            an MXNet export's folder, or a .tar.gz archive of one; wins over the package's
            model asset.
        cache_dir: where asset archives are unpacked, one ``<sha256>/`` folder each.
        device: "cpu" or "cuda".
        notify: receives ("note", {"text"}) events while a model is converted (the first
            time only); default silent.
        convert_cache: the conversion cache (default
            :func:`panorama_cli.localrun.models.convert.default_cache_dir`).

    Returns:
        The loaded :class:`ModelNode` (``conversion`` set for a converted model).

    Raises:
        UserError: no model (neither --model nor an asset archive), a missing/broken/unsafe
            archive, a model that cannot run here (Neo, TFLite: how to export to ONNX), a
            conversion that failed (files missing, input names the model lacks, an operator
            its exporter lacks, a check above 1e-3), or a descriptor that does not match.
    """
    name = node.name
    descriptor = package.model_descriptor if package is not None else None
    names = tuple(i.name for i in descriptor.inputs) if descriptor else ()
    shapes = {i.name: tuple(i.shape) for i in descriptor.inputs} if descriptor else {}
    found, source, sha256 = find_model(name, package, model_path, cache_dir)
    from panorama_cli.localrun.models import model_backends

    label = f"model node {name} ({found.path.name})"
    conversion = None
    onnx_path = found.path
    if found.kind != model_archive.ONNX:
        framework = model_archive.FRAMEWORK_OF.get(found.kind)
        if framework is None:
            raise _unsupported(found.kind, name, found.path.name)
        from panorama_cli.localrun.models.convert import convert_asset

        conversion = convert_asset(
            source,
            framework,
            [(i.name, i.shape) for i in descriptor.inputs] if descriptor else [],
            notify=notify or _silent,
            cache_dir=convert_cache,
            sha256=sha256,
            label=f"model {name}",
        )
        onnx_path = conversion.onnx
    impl = model_backends.OnnxBackend(onnx_path, label, device)
    model = ModelNode(name, impl, names=names, shapes=shapes)
    model.conversion = conversion
    return model
