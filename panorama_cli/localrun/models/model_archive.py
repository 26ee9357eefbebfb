"""Model files for ``panorama-cli run``: the asset archive unpacked once, and what is inside.

A model node's package names its model archive in package.json (``assets/<sha256>.tar.gz``, as
add-raw-model stored it). :func:`unpack_archive` extracts it once into ``<cache>/<sha256>/``:
the archive's sha256 is checked, members go through tarfile's ``data`` filter (PEP 706: no
absolute paths, no ``..``, no links leaving the folder, no device files; an equivalent check on
Pythons without it), extraction happens in a temporary folder renamed into place, under a file
lock, so concurrent runs and interrupted extractions never leave a half-filled cache entry;
a missing, changed or broken archive leaves nothing (no lock file, no cache folder).
Extraction is bounded: at most :data:`MAX_MEMBERS` members and :data:`MAX_BYTES` bytes
unpacked in all (checked from each member's header before it is written, so a tar bomb
stops before it fills the disk).

:func:`find_model_file` then says which runtime the folder (or a ``--model`` path) needs.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from panorama_cli.errors import UserError

#: What :func:`find_model_file` recognises, by kind.
ONNX, TORCHSCRIPT, SAVEDMODEL, GRAPHDEF, MXNET, NEO, TFLITE, KERAS = (
    "onnx", "torchscript", "savedmodel", "graphdef", "mxnet", "neo", "tflite", "keras",
)  # fmt: skip
#: Kind -> the framework whose converter (:mod:`.convert`) makes it ONNX.
FRAMEWORK_OF = {
    TORCHSCRIPT: "pytorch",
    SAVEDMODEL: "tensorflow",
    GRAPHDEF: "tensorflow",
    KERAS: "tensorflow",
    MXNET: "mxnet",
}
#: The most members and unpacked bytes a model archive may hold.
MAX_MEMBERS = 10_000
MAX_BYTES = 16 << 30
#: Files that mark a SageMaker Neo-compiled artifact (DLR / TVM runtime).
NEO_MARKERS = (
    "compiled.so",
    "compiled_model.json",
    "compiled.params",
    "libdlr.so",
    "compiled.meta",
)


@dataclass(frozen=True)
class ModelFile:
    """A model found on disk.

    Attributes:
        kind: ONNX (runs as it is); TORCHSCRIPT, SAVEDMODEL, GRAPHDEF, MXNET, KERAS (converted
            to ONNX first, :data:`FRAMEWORK_OF`); NEO, TFLITE (cannot run here).
        path: the file (or the SavedModel folder).
    """

    kind: str
    path: Path


def _check_member(member: tarfile.TarInfo, dest: Path) -> None:
    """The PEP 706 ``data`` filter's main rules, for Pythons without ``tarfile.data_filter``."""
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts:
        raise tarfile.TarError(f"member {member.name!r} leaves the extraction folder")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise tarfile.TarError(f"member {member.name!r} is a special file")
    if member.issym() or member.islnk():
        base = dest / name.parent if member.issym() else dest
        target = os.path.normpath(base / member.linkname)
        if PurePosixPath(member.linkname).is_absolute() or not (
            target == str(dest) or target.startswith(str(dest) + os.sep)
        ):
            raise tarfile.TarError(f"link {member.name!r} points outside the extraction folder")


def extract_checked(archive: Path, dest: Path, label: str) -> None:
    """Extract ``archive`` into the existing folder ``dest`` with the checks of
    :func:`unpack_archive` (data filter, member and size caps), no cache, no sha256.

    Raises:
        UserError: not a tar archive, unsafe or too big.
    """
    _extract(archive, dest, label)


def _extract(archive: Path, dest: Path, label: str) -> None:
    """One pass over the archive: each member checked (filter, caps), then written."""
    members = 0
    unpacked = 0
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                members += 1
                unpacked += max(member.size, 0) if member.isfile() else 0
                if members > MAX_MEMBERS or unpacked > MAX_BYTES:
                    raise UserError(
                        f"{label}: more than {MAX_MEMBERS} members or {MAX_BYTES >> 20} MiB "
                        "unpacked; refusing to extract it",
                        hint="a model archive holds the model's files only",
                    )
                if hasattr(tarfile, "data_filter"):
                    tar.extract(member, dest, filter="data")
                else:  # Python < 3.10.12 / 3.11.4
                    _check_member(member, dest)
                    tar.extract(member, dest)  # noqa: S202 - checked above
    except tarfile.ReadError as exc:
        raise UserError(f"{label}: not a tar archive ({exc})") from None
    except (tarfile.TarError, OSError) as exc:
        raise UserError(
            f"{label}: unsafe or broken archive ({exc})",
            hint="re-create it with `tar czf model.tar.gz <model files>` and add-raw-model",
        ) from None


def unpack_archive(
    archive: Path, sha256: str, cache_dir: Path, *, label: str | None = None
) -> Path:
    """Extract ``archive`` into ``cache_dir/<sha256>/`` unless that folder already exists.

    Args:
        archive: the ``.tar.gz`` (any tar compression tarfile reads).
        sha256: its expected hex sha256 (add-raw-model names the file after it).
        cache_dir: the cache root (created).
        label: how messages name the archive (default: its path).

    Returns:
        The folder holding the archive's files.

    Raises:
        UserError: the archive is missing, its content does not match ``sha256``, it is not a
            tar archive, or a member would land outside the folder.
    """
    from filelock import FileLock

    from panorama_cli.project.assets import sha256_file

    label = label or str(archive)
    sha256 = sha256.lower()
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise UserError(f"{label}: {sha256!r} is not a sha256 hex digest")
    target = cache_dir / sha256
    if target.is_dir():
        return target
    # checks that need no cache first: a refused archive leaves nothing behind
    if not archive.is_file():
        raise UserError(
            f"{label}: model archive missing", hint="run add-raw-model again, or pass --model"
        )
    actual = sha256_file(archive)
    if actual != sha256:
        raise UserError(
            f"{label}: content sha256 {actual[:12]}… does not match {sha256[:12]}…",
            hint="the archive changed after add-raw-model; run add-raw-model again",
        )
    made = make_dirs(cache_dir)
    lock_path = cache_dir / f".{sha256}.lock"
    try:
        with FileLock(str(lock_path)):
            try:
                if not target.is_dir():  # else another run unpacked it while we waited
                    _extract_into(archive, target, label)
            finally:
                # no lock file is left; a run that still waits on the unlinked one finds
                # the target there or extracts again into its own temporary folder
                lock_path.unlink(missing_ok=True)
    except BaseException:
        remove_made_dirs(made)  # the cache folders this call created, if still empty
        raise
    return target


def make_dirs(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents (like ``mkdir -p``).

    Returns the folders this call created, deepest first, for :func:`remove_made_dirs` to
    take back if the caller fails. Raises ``OSError`` when a folder cannot be created.
    Shared with :mod:`panorama_cli.localrun.apps.deps.venv` (its environment cache).
    """
    missing = []
    current = folder
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def remove_made_dirs(made: list[Path]) -> None:
    """Remove the folders :func:`make_dirs` returned (deepest first) while they are empty;
    stops at the first that is not (another run put something there). Never raises."""
    for folder in made:
        try:
            folder.rmdir()
        except OSError:
            break


def _extract_into(archive: Path, target: Path, label: str) -> None:
    """Extract into a temporary folder beside ``target``, then rename it into place."""
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name[:12]}-", dir=target.parent))
    try:
        _extract(archive, tmp, label)
        try:
            os.replace(tmp, target)
        except OSError as exc:
            if not target.is_dir():  # not another run's rename winning the race
                raise UserError(f"{label}: cannot unpack into {target}: {exc}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _classify(path: Path) -> str | None:
    name = path.name.lower()
    if path.is_dir():
        return SAVEDMODEL if (path / "saved_model.pb").is_file() else None
    if name.endswith(".onnx"):
        return ONNX
    if name.endswith((".pt", ".pth", ".torchscript")):
        return TORCHSCRIPT
    if name in NEO_MARKERS or name.endswith(".so"):
        return NEO
    if name.endswith("-symbol.json") or name.endswith(".params"):
        return MXNET
    if name.endswith(".tflite"):
        return TFLITE
    if name.endswith((".h5", ".keras")):
        return KERAS
    if name == "saved_model.pb":
        return SAVEDMODEL
    if name.endswith(".pb"):
        return GRAPHDEF
    return None


def find_model_file(path: Path, label: str) -> ModelFile:
    """What kind of model ``path`` (a file, or an unpacked archive folder) is.

    In a folder, a Neo marker wins (a compiled artifact), then one ``.onnx``, one TorchScript
    file, one SavedModel folder (``saved_model.pb``), a frozen GraphDef ``.pb``, MXNet files,
    ``.tflite``, Keras files.

    Raises:
        UserError: nothing recognisable, or several candidates of the winning kind.
    """
    if path.is_file() or (path.is_dir() and (path / "saved_model.pb").is_file()):
        kind = _classify(path)
        if kind == SAVEDMODEL and path.is_file():
            return ModelFile(kind, path.parent)
        if kind is None:
            raise UserError(
                f"{label}: not a model file this runner knows (.onnx, TorchScript .pt/.pth, "
                "a SavedModel folder, a frozen GraphDef .pb, MXNet -symbol.json + .params)"
            )
        return ModelFile(kind, path)
    if not path.is_dir():
        raise UserError(f"{label}: no such model file or folder")
    found: dict[str, list[Path]] = {}
    for item in sorted(path.rglob("*")):
        kind = _classify(item)
        if kind is not None:
            found.setdefault(kind, []).append(
                item.parent if item.is_file() and kind == SAVEDMODEL else item
            )
    for kind in (NEO, ONNX, TORCHSCRIPT, SAVEDMODEL, GRAPHDEF, MXNET, TFLITE, KERAS):
        candidates = sorted(set(found.get(kind, [])), key=lambda p: (len(p.parts), str(p)))
        if not candidates:
            continue
        if kind in (NEO, MXNET):
            return ModelFile(kind, candidates[0])
        if len(candidates) > 1 and kind != SAVEDMODEL:
            names = ", ".join(str(p.relative_to(path)) for p in candidates)
            raise UserError(
                f"{label}: several {kind} models ({names})", hint="pass --model NODE=PATH"
            )
        return ModelFile(kind, candidates[0])
    listing = ", ".join(
        sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())[:8]
    )
    raise UserError(
        f"{label}: no model file inside ({listing or 'empty'})",
        hint="expected .onnx, TorchScript .pt/.pth, a SavedModel folder, a frozen GraphDef .pb "
        "or MXNet -symbol.json + .params; or pass --model",
    )
