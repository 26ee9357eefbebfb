"""A model node's original framework artifact (MXNet, TensorFlow, PyTorch) converted to ONNX
once, checked, and cached; what SageMaker Neo did for the appliance.

:func:`convert_asset` runs the framework's converter script (``<framework>.SCRIPT``, in that
converter's isolated environment, :mod:`.envs`, as a subprocess: no framework is ever imported
into panorama-cli) on the unpacked model, with the descriptor's inputs. The script writes the
ONNX and checks it: a random float32 input of each descriptor shape through the original
framework and through onnxruntime, relative max error ``max|a - b| / max(max|a|, 1e-12)`` per
output, the worst of all outputs; above :data:`MAX_REL_ERROR` the conversion is refused.

Cache: ``<cache>/<key>/model.onnx`` + ``meta.json`` (below), ``key`` = sha256 of the asset's
sha256, the converter's name, ``VERSION`` and requirements, and the inputs. Built in a
temporary folder under a file lock (``.<key>.lock``, left in place) and published by one
rename: a failed or interrupted conversion leaves no entry, two runs never convert the same
asset twice. Default cache:
``$PANORAMA_CLI_CONVERTED_DIR``, else ``$XDG_CACHE_HOME/panorama-cli/converted``.

meta.json::

    {"framework": "mxnet", "framework_version": "1.9.1", "converter": "mxnet",
     "converter_version": "1", "requirements": [str], "inputs": [{"name", "shape"}],
     "output_names": [str], "max_rel_error": float, "checked": str | null,
     "seconds": float,
     "source_sha256": str, "created": float (Unix time)}
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from panorama_cli.errors import UserError

log = logging.getLogger(__name__)

Notify = Callable[[str, dict[str, object]], None]
#: The largest relative max error a conversion may show in its check.
MAX_REL_ERROR = 1e-3
#: Framework (the descriptor's ``framework``, lower case) -> converter module in this package.
CONVERTERS = {
    "mxnet": "mxnet",
    "tensorflow": "tensorflow",
    "keras": "tensorflow",
    "pytorch": "pytorch",
}
#: Names the descriptor's framework is written in, for messages.
SHOWN = {"mxnet": "MXNet", "tensorflow": "TensorFlow", "keras": "Keras", "pytorch": "PyTorch"}
_SEED = 20240531


@dataclass(frozen=True)
class Conversion:
    """One converted model.

    Attributes:
        onnx: the cached ``model.onnx``.
        framework / framework_version: e.g. ``"mxnet"``, ``"1.9.1"``.
        converter / converter_version: the converter module's ``NAME`` and ``VERSION``.
        seconds: how long the conversion (with its check) took when it ran, in seconds; the
            environment's build is not counted.
        max_rel_error: the check's worst relative max error over the outputs.
        output_names: the ONNX outputs, in the framework's order.
        cached: True when this call found it in the cache (nothing ran).
        checked: where the check compared, when not the outputs: a detector's ranking
            operator (NMS, top-k) reorders near-equal scores of a random input, so the script
            may compare the ranking's input instead and say so here (e.g. "the input of
            box_nms (...; after box_nms: 1.1)"); None when the outputs matched.
    """

    onnx: Path
    framework: str
    framework_version: str
    converter: str
    converter_version: str
    seconds: float
    max_rel_error: float
    output_names: list[str]
    cached: bool
    checked: str | None = None

    def summary(self) -> dict[str, object]:
        """What report.json's ``models.<node>.conversion`` holds."""
        return {
            "framework": self.framework,
            "framework_version": self.framework_version,
            "converter": f"{self.converter} {self.converter_version}",
            "seconds": round(self.seconds, 3),
            "cached": self.cached,
            "max_rel_error": self.max_rel_error,
            "checked": self.checked or "outputs",
            "onnx": str(self.onnx),
        }


def default_cache_dir() -> Path:
    """Where conversions are cached (see the module docstring)."""
    from panorama_cli.localrun.models.convert.envs import user_cache

    override = os.environ.get("PANORAMA_CLI_CONVERTED_DIR")
    return Path(override) if override else user_cache() / "converted"


def converter_for(framework: str, label: str) -> ModuleType:
    """The converter module of ``framework`` (``MXNET``, ``mxnet``, ...).

    Raises:
        UserError: no converter for that framework in this panorama-cli.
    """
    key = framework.strip().lower()
    module = CONVERTERS.get(key)
    shown = SHOWN.get(key, framework)
    if module is not None:
        try:
            return importlib.import_module(f"{__name__}.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{module}":
                raise
    known = sorted({SHOWN[k] for k, m in CONVERTERS.items() if _exists(m)})
    raise UserError(
        f"{label}: this panorama-cli has no converter for {shown} models "
        f"(it converts {', '.join(known) or 'none'})",
        hint="export the model to ONNX yourself and pass --model NODE=model.onnx",
    )


def _exists(module: str) -> bool:
    return (Path(__file__).parent / f"{module}.py").is_file()


def _label(converter: ModuleType) -> str:
    explicit = getattr(converter, "LABEL", None)
    if explicit:
        return str(explicit)
    name = str(converter.NAME)
    for requirement in converter.REQUIREMENTS:
        if "==" in requirement:
            return f"{SHOWN.get(name, name)} {requirement.split('==', 1)[1]}"
    return SHOWN.get(name, name)


def source_sha256(source: Path) -> str:
    """sha256 of a model file, or of a folder's tree (relative paths and contents)."""
    from panorama_cli.project.assets import sha256_file

    if source.is_file():
        return sha256_file(source)
    digest = hashlib.sha256()
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(source)).encode() + b"\0")
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def cache_key(
    sha256: str, converter: ModuleType, inputs: Sequence[tuple[str, Sequence[int]]]
) -> str:
    """The cache folder name (24 hex digits) of ``sha256`` converted by ``converter``."""
    data = json.dumps(
        {
            "source": sha256,
            "converter": converter.NAME,
            "version": converter.VERSION,
            "requirements": sorted(converter.REQUIREMENTS),
            "inputs": [[n, list(s)] for n, s in inputs],
        },
        sort_keys=True,
    )
    return hashlib.sha256(data.encode()).hexdigest()[:24]


def convert_asset(
    source: Path,
    framework: str,
    inputs: Sequence[tuple[str, Sequence[int]]],
    *,
    notify: Notify,
    cache_dir: Path | None = None,
    sha256: str | None = None,
    label: str | None = None,
) -> Conversion:
    """The ONNX of a framework model, converted and checked once (see the module docstring).

    Args:
        source: a model archive (.tar.gz, unpacked into a temporary folder), an unpacked
            folder, or one model file (a TorchScript ``.pt``, ...).
        framework: ``"mxnet"``, ``"tensorflow"``, ``"pytorch"`` (any case).
        inputs: the descriptor's inputs, (name, shape) in order, e.g. ``[("data", [1, 3,
            512, 512])]``; each shape fixed (no -1).
        notify: receives ("note", {"text"}) events: the environment's build, "converting
            model ... first time only", the check's error.
        cache_dir: default :func:`default_cache_dir`.
        sha256: the source's sha256 when known (an add-raw-model archive's name).
        label: how messages name the model (default: the source's path).

    Returns:
        The :class:`Conversion` (``cached`` tells whether anything ran).

    Raises:
        UserError: no converter for the framework, no inputs, the environment cannot be
            built, the converter's own one-line error (files missing, unknown input names,
            an operator the exporter lacks), or a check above :data:`MAX_REL_ERROR`.
    """
    label = label or str(source)
    converter = converter_for(framework, label)
    inputs = [(str(n), [int(d) for d in s]) for n, s in inputs]
    if not inputs or any(not s or min(s) < 1 for _, s in inputs):
        raise UserError(
            f"{label}: converting a {SHOWN.get(converter.NAME, converter.NAME)} model needs "
            "each input's name and fixed shape (mlModelDescriptor.inputs)",
            hint='e.g. "inputs": [{"name": "data", "shape": [1, 3, 512, 512]}]',
        )
    if not source.exists():
        raise UserError(f"{label}: no such model file or folder")
    sha256 = sha256 or source_sha256(source)
    key = cache_key(sha256, converter, inputs)
    root = cache_dir or default_cache_dir()
    target = root / key
    found = _cached(target)
    if found is not None:
        return found
    from filelock import FileLock

    root.mkdir(parents=True, exist_ok=True)
    # the lock file stays (empty): unlinking it would let a third run lock a new file while
    # a second still holds the old one, and both convert (and clean up) at once
    with FileLock(str(root / f".{key}.lock")):
        found = _cached(target)  # another run converted it while we waited
        if found is not None:
            return found
        for stale in root.glob(f".tmp-{key[:12]}-*"):  # an interrupted conversion's
            shutil.rmtree(stale, ignore_errors=True)
        if target.exists():  # an entry someone damaged (meta.json or model.onnx gone)
            shutil.rmtree(target, ignore_errors=True)
        python = _ensure_env(converter, notify)
        notify(
            "note",
            {"text": f"converting {label} ({_label(converter)} -> ONNX), first time only"},
        )
        meta = _convert(converter, python, source, sha256, inputs, target, label)
    conversion = _from_meta(target, meta, cached=False)
    notify(
        "note",
        {
            "text": f"{label}: converted in {conversion.seconds:.1f} s, check on a random "
            f"input: max relative error {conversion.max_rel_error:.2g}"
            + (f" at {conversion.checked}" if conversion.checked else "")
            + f" (cached in {target})"
        },
    )
    return conversion


def _ensure_env(converter: ModuleType, notify: Notify) -> str:
    from panorama_cli.localrun.models.convert.envs import ensure_env

    return ensure_env(str(converter.NAME), list(converter.REQUIREMENTS), notify)


def _cached(target: Path) -> Conversion | None:
    try:
        meta = json.loads((target / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if not (target / "model.onnx").is_file():
        return None
    return _from_meta(target, meta, cached=True)


def _from_meta(target: Path, meta: dict[str, object], *, cached: bool) -> Conversion:
    return Conversion(
        onnx=target / "model.onnx",
        framework=str(meta["framework"]),
        framework_version=str(meta["framework_version"]),
        converter=str(meta["converter"]),
        converter_version=str(meta["converter_version"]),
        seconds=float(meta["seconds"]),  # type: ignore[arg-type]
        max_rel_error=float(meta["max_rel_error"]),  # type: ignore[arg-type]
        output_names=[str(n) for n in meta["output_names"]],  # type: ignore[attr-defined]
        cached=cached,
        checked=str(meta["checked"]) if meta.get("checked") else None,
    )


def _convert(
    converter: ModuleType,
    python: str,
    source: Path,
    sha256: str,
    inputs: list[tuple[str, list[int]]],
    target: Path,
    label: str,
) -> dict[str, object]:
    """Run the script in a temporary folder beside ``target``; publish it by one rename."""
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name[:12]}-", dir=target.parent))
    try:
        model_dir = _model_dir(source, work, label)
        spec = {
            "model_dir": str(model_dir),
            "inputs": [{"name": n, "shape": s} for n, s in inputs],
            "output": str(work / "model.onnx"),
            "seed": _SEED,
        }
        (work / "spec.json").write_text(json.dumps(spec))
        start = time.monotonic()
        result = _run_script(python, Path(converter.SCRIPT), work / "spec.json", label)
        seconds = time.monotonic() - start
        error = float(result["max_rel_error"])
        if not error <= MAX_REL_ERROR:  # NaN too
            raise UserError(
                f"{label}: the converted model's outputs differ from "
                f"{_label(converter)}'s by {error:.3g} (relative; at most {MAX_REL_ERROR:g})",
                hint="export the model to ONNX yourself and pass --model NODE=model.onnx",
            )
        meta: dict[str, object] = {
            "framework": converter.NAME,
            "framework_version": str(result.get("framework_version", "")),
            "converter": converter.NAME,
            "converter_version": converter.VERSION,
            "requirements": list(converter.REQUIREMENTS),
            "inputs": spec["inputs"],
            "output_names": list(result.get("output_names") or []),  # type: ignore[call-overload]
            "max_rel_error": error,
            "checked": result.get("checked"),
            "seconds": round(seconds, 3),
            "source_sha256": sha256,
            "created": time.time(),
        }
        published = work / "published"
        published.mkdir()
        os.replace(work / "model.onnx", published / "model.onnx")
        (published / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        published.chmod(0o755)
        os.replace(published, target)  # one rename: the cache entry is whole or absent
        return meta
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _model_dir(source: Path, work: Path, label: str) -> Path:
    """The folder the script reads: ``source`` itself, the archive unpacked, or a folder
    holding only the one model file (a link to it)."""
    if source.is_dir():
        return source
    if source.name.endswith((".tar.gz", ".tgz", ".tar")):
        from panorama_cli.localrun.models import model_archive

        unpacked = work / "unpacked"
        unpacked.mkdir()
        model_archive.extract_checked(source, unpacked, label)
        return unpacked
    single = work / "model"
    single.mkdir()
    (single / source.name).symlink_to(source.resolve())
    return single


def _run_script(python: str, script: Path, spec: Path, label: str) -> dict[str, object]:
    """``python -I script spec``: its last stdout line is the JSON result."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    argv = [python, "-I", str(script), str(spec)]
    log.debug("%s: %s", label, argv)
    try:
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            env=env,
            cwd=spec.parent,
            check=False,
        )
    except OSError as exc:
        raise UserError(f"{label}: cannot start the converter {python}: {exc}") from None
    for line in proc.stderr.splitlines():
        log.debug("%s| %s", script.name, line)
    lines = proc.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else None
    except ValueError:
        result = None
    if not isinstance(result, dict) or "ok" not in result:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(
            f"{label}: the converter stopped (status {proc.returncode}): {last}",
            hint="its whole output: run with --debug",
        )
    if not result["ok"]:
        raise UserError(f"{label}: {result.get('error') or 'conversion failed'}")
    return result
