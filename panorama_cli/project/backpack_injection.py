"""backpack inside container packages: a pinned copy in ``src/backpack/`` with a version stamp.

``create-package --type Container`` copies the backpack package that ships with panorama-cli
(the whole ``backpack/`` folder, ``data/`` included, without ``__pycache__``) to
``<package>/src/backpack/``. The Dockerfile's ``COPY src /panorama`` puts it next to the
application, so ``import backpack`` works in the image without pip (base images need not
have it) and without network access at build time.

The copy carries a stamp, ``src/backpack/INJECTED.json``::

    {"backpackVersion": "0.1.0", "contentSha256": "<64 hex>", "injectedBy": "panorama-cli 0.1.0"}

``contentSha256`` is the sha256 over the copied files (sorted relative paths and their
sha256s, the stamp itself excluded), so a copy is "current" exactly when it has the same
content as the backpack this panorama-cli ships, whatever the version number says. Versions are
shown as ``<backpackVersion>+<first 12 hex of contentSha256>``. ``update-backpack`` refreshes a
copy atomically and refuses to overwrite a copy that was edited after injection unless forced.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from panorama_cli import __version__
from panorama_cli.errors import UserError
from panorama_cli.project.manifests import Transaction, dumps
from panorama_cli.project.problems import WARNING, Problem

log = logging.getLogger(__name__)

#: The copy's folder inside a package, and its stamp file (inside the copy).
TARGET = Path("src") / "backpack"
STAMP = "INJECTED.json"
_SKIP_DIRS = {"__pycache__"}
_SKIP_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class BackpackVersion:
    """A backpack copy's identity.

    Attributes:
        version: ``backpack.__version__`` of the copied source.
        sha256: content hash (64 hex) of the copied files, see the module docstring.
    """

    version: str
    sha256: str

    @property
    def label(self) -> str:
        """``<version>+<first 12 hex of sha256>``, as the commands print it."""
        return f"{self.version}+{self.sha256[:12]}"


def source_dir() -> Path:
    """The folder of the ``backpack`` package shipped with panorama-cli (not imported).

    Raises:
        UserError: the installation has no backpack package.
    """
    spec = importlib.util.find_spec("backpack")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "panorama-cli's installation has no backpack package",
            hint="reinstall panorama-cli (./install.sh), or use --no-backpack",
        )
    return Path(next(iter(spec.submodule_search_locations)))


def collect(folder: Path) -> dict[str, bytes]:
    """Files of a backpack folder: POSIX relative path -> bytes.

    ``__pycache__`` folders, ``*.pyc`` / ``*.pyo`` and the stamp are left out; symlinks are
    followed (their content is copied).
    """
    files: dict[str, bytes] = {}
    for path in sorted(Path(folder).rglob("*")):
        rel = path.relative_to(folder)
        if _SKIP_DIRS.intersection(rel.parts) or path.suffix in _SKIP_SUFFIXES:
            continue
        if rel.as_posix() == STAMP or not path.is_file():
            continue
        files[rel.as_posix()] = path.read_bytes()
    return files


def content_sha256(files: dict[str, bytes]) -> str:
    """sha256 (hex) over sorted ``<relpath>\\0<sha256 of bytes>\\n`` lines of ``files``."""
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(f"{rel}\0{hashlib.sha256(files[rel]).hexdigest()}\n".encode())
    return digest.hexdigest()


def _version_of(files: dict[str, bytes]) -> str:
    """``__version__`` assigned in ``__init__.py`` (read without importing), else "unknown"."""
    try:
        tree = ast.parse(files.get("__init__.py", b"").decode("utf-8"))
    except (SyntaxError, UnicodeDecodeError):
        return "unknown"
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets
        ):
            try:
                return str(ast.literal_eval(node.value))
            except ValueError:
                return "unknown"
    return "unknown"


def bundled() -> tuple[BackpackVersion, dict[str, bytes]]:
    """The shipped backpack: its identity and its files (relative to the backpack folder)."""
    files = collect(source_dir())
    if "__init__.py" not in files:
        raise UserError(
            f"{source_dir()} has no __init__.py", hint="reinstall panorama-cli (./install.sh)"
        )
    return BackpackVersion(_version_of(files), content_sha256(files)), files


def stamp_text(version: BackpackVersion) -> str:
    """The JSON text of ``INJECTED.json`` for ``version``."""
    return dumps(
        {
            "backpackVersion": version.version,
            "contentSha256": version.sha256,
            "injectedBy": f"panorama-cli {__version__}",
        }
    )


def package_files() -> dict[str, bytes]:
    """The files create-package writes for backpack, relative to the package folder."""
    version, files = bundled()
    out = {(TARGET / rel).as_posix(): data for rel, data in files.items()}
    out[(TARGET / STAMP).as_posix()] = stamp_text(version).encode("utf-8")
    return out


def read_stamp(package_folder: Path) -> BackpackVersion | None:
    """The stamped version of the package's copy; None when there is no (readable) stamp."""
    try:
        data = json.loads((Path(package_folder) / TARGET / STAMP).read_text(encoding="utf-8"))
        return BackpackVersion(str(data["backpackVersion"]), str(data["contentSha256"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class BackpackUpdate:
    """What update-backpack did.

    Attributes:
        folder: the package's ``src/backpack`` folder.
        old: the stamped version before (None: there was no copy).
        new: the version now in the package.
        changed: False when the copy was current already (nothing written).
    """

    folder: Path
    old: BackpackVersion | None
    new: BackpackVersion
    changed: bool


def update_backpack(package_folder: Path, *, force: bool = False) -> BackpackUpdate:
    """Replace the package's ``src/backpack`` with the shipped backpack, atomically.

    The new copy is written beside the old one, then swapped in with two renames (rolled back
    on failure); the old copy is deleted only afterwards. A copy that is current is left
    alone.

    Args:
        package_folder: a container package folder.
        force: replace a copy that has no stamp or was edited after it was injected.

    Raises:
        UserError: not a container package, an edited/unstamped copy without ``force``, the
            shipped backpack is missing, or ``src/`` / ``src/backpack`` is a symlink (writes
            could land outside the project). The package is unchanged then.
    """
    package_folder = Path(package_folder)
    if not (package_folder / "Dockerfile").is_file() and not (package_folder / "src").is_dir():
        raise UserError(
            f"{package_folder} is not a container package (no Dockerfile, no src/)",
            hint="pass the folder of a package made by create-package --type Container",
        )
    target = package_folder / TARGET
    for part in (target.parent, target):  # src/ and src/backpack/
        if part.is_symlink():
            raise UserError(
                f"{part} is a symlink; refusing to write through it (it may lead out of the "
                "project)",
                hint="replace the link with a real folder (e.g. cp -rL) and re-run",
            )
    new, files = bundled()
    old = read_stamp(package_folder)
    if target.exists():
        on_disk = content_sha256(collect(target)) if target.is_dir() else None
        if old is None or on_disk != old.sha256:
            if not force:
                what = "has no stamp" if old is None else "was edited after it was injected"
                raise UserError(
                    f"{target} {what}; refusing to overwrite it",
                    hint="keep your changes elsewhere, or re-run with --force to replace it",
                )
        elif old.sha256 == new.sha256:
            return BackpackUpdate(target, old, new, changed=False)
    staging = target.parent / ".backpack.updating"
    retired = target.parent / ".backpack.replaced"
    for leftover in (staging, retired):
        _remove(leftover)
    try:
        for rel, data in files.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        (staging / STAMP).write_text(stamp_text(new), encoding="utf-8")
        tx = Transaction()
        if target.exists() or target.is_symlink():
            tx.rename(target, retired)
        tx.rename(staging, target)
        tx.commit()
    finally:
        _remove(staging)
    _remove(retired)
    return BackpackUpdate(target, old, new, changed=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def outdated(package_folder: Path) -> tuple[BackpackVersion, BackpackVersion] | None:
    """``(stamped, shipped)`` when the package's stamped copy differs from the shipped one.

    None when the package has no stamped copy, when it is current, or when panorama-cli has
    no backpack to compare with. Used by ``validate`` for a warning; never raises.
    """
    stamped = read_stamp(package_folder)
    if stamped is None:
        return None
    try:
        shipped, _ = bundled()
    except (UserError, OSError):
        return None
    return None if shipped.sha256 == stamped.sha256 else (stamped, shipped)


def stale_problem(package_folder: Path, rel_folder: str) -> Problem | None:
    """A ``validate`` warning when the package's backpack copy is not the shipped one.

    Args:
        package_folder: the package folder; rel_folder: the same, as reported (project-relative).
    """
    stamp_file = f"{rel_folder}/{TARGET.as_posix()}/{STAMP}"
    stamped_copy = read_stamp(package_folder)
    target = package_folder / TARGET
    if stamped_copy is not None and target.is_dir() and not target.is_symlink():
        if content_sha256(collect(target)) != stamped_copy.sha256:
            return Problem(
                stamp_file,
                "/contentSha256",
                f"backpack in {rel_folder}/{TARGET.as_posix()} was edited after it was "
                "injected (its files no longer match its stamp)",
                "keep your changes in your own modules, or `panorama-cli update-backpack "
                f"--package-path {rel_folder} --force` to restore it",
                WARNING,
            )
    found = outdated(package_folder)
    if found is None:
        return None
    stamped, shipped = found
    return Problem(
        stamp_file,
        "/contentSha256",
        f"backpack {stamped.label} in the package is not the backpack {shipped.label} "
        "that this panorama-cli ships",
        f"run `panorama-cli update-backpack --package-path {rel_folder}`",
        WARNING,
    )
