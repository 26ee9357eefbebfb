"""The project model: where a Panorama application project lives and what it holds.

A project is a folder holding ``assets/``, ``graphs/<name>/graph.json`` and ``packages/``
(the upstream panorama-cli layout). Commands work from any sub-folder: :meth:`Project.discover`
walks up to the project root. Node packages live in ``packages/<account>-<name>-<version>/``
with a ``package.json`` (nodePackage manifest) and usually a ``descriptor.json``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from panorama_cli import descriptors, names, schemas
from panorama_cli.errors import UserError
from panorama_cli.manifests import load_json
from panorama_cli.node_kinds import CATEGORY_KINDS, NodeKind
from panorama_cli.problems import relative

log = logging.getLogger(__name__)

PROJECT_DIRS = ("assets", "graphs", "packages")
SETTINGS_FILE = ".panorama-cli.json"


@dataclass(frozen=True)
class RuntimeEntry:
    """How a container package starts: descriptor.json ``runtimeDescriptor.entry``.

    Attributes:
        interpreter: ``entry.path``, the program that runs the entry, e.g. ``python3``, ``bash``.
        entry: ``entry.name``, the absolute path of the entry inside the container, e.g.
            ``/panorama/app.py`` (the Dockerfile copies ``src/`` to ``/panorama/``).
    """

    interpreter: str
    entry: str


@dataclass(frozen=True)
class ModelInput:
    """One input tensor of a model: ``mlModelDescriptor.inputs[i]``, e.g. (1, 3, 224, 224)."""

    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelDescriptor:
    """descriptor.json ``mlModelDescriptor``: framework (PYTORCH, TENSORFLOW, MXNET, ONNX...),
    input tensors in declaration order, and ``precisionMode`` (e.g. FP16) when given."""

    framework: str
    inputs: tuple[ModelInput, ...]
    precision_mode: str | None = None


@dataclass
class Package:
    """A local node package folder.

    Reading never changes :attr:`data`: :meth:`assets` and :meth:`interfaces` return the lists
    in the manifest (or a new empty list when there is none); writers use :meth:`add_asset` and
    :meth:`add_interface`.

    Attributes:
        folder: ``packages/<account>-<name>-<version>``.
        data: the parsed package.json (nodePackage manifest), key order kept.
    """

    folder: Path
    data: dict[str, Any] = field(repr=False)

    @property
    def manifest_path(self) -> Path:
        return self.folder / "package.json"

    @property
    def descriptor_path(self) -> Path:
        return self.folder / "descriptor.json"

    @property
    def body(self) -> dict[str, Any]:
        """The ``nodePackage`` object."""
        body = self.data.get("nodePackage") if isinstance(self.data, dict) else None
        return body if isinstance(body, dict) else {}

    def _folder_parts(self) -> tuple[str, str, str] | None:
        """(account, name, version) read from a folder named ``<account>-<name>-<version>``."""
        account, sep, rest = self.folder.name.partition("-")
        name, sep2, version = rest.rpartition("-")
        if not (sep and sep2 and name) or not names.ACCOUNT_ID.matches(account):
            return None
        if not names.PACKAGE_VERSION.matches(version) or not names.PACKAGE_NAME.matches(name):
            return None
        return account, name, version

    @property
    def name(self) -> str:
        """``nodePackage.name``; when package.json omits it (the schema allows that), the name
        part of the folder name ``<account>-<name>-<version>``; else ""."""
        name = self.body.get("name")
        if isinstance(name, str) and name:
            return name
        parts = self._folder_parts()
        return parts[1] if parts else ""

    @property
    def version(self) -> str:
        """``nodePackage.version``, else the version part of the folder name, else ""."""
        version = self.body.get("version")
        if isinstance(version, str) and version:
            return version
        parts = self._folder_parts()
        return parts[2] if parts else ""

    @property
    def names_from_folder(self) -> bool:
        """Whether package.json omits name or version (they then come from the folder name)."""
        return not self.body.get("name") or not self.body.get("version")

    @property
    def account(self) -> str | None:
        """Account id from the folder name ``<account>-<name>-<version>``, else None."""
        suffix = f"-{self.name}-{self.version}"
        folder = self.folder.name
        if self.name and folder.endswith(suffix) and len(folder) > len(suffix):
            return folder[: -len(suffix)]
        return None

    def assets(self) -> list[dict[str, Any]]:
        """``nodePackage.assets`` (a new empty list when absent; reading adds nothing)."""
        found = self.body.get("assets")
        return [a for a in found if isinstance(a, dict)] if isinstance(found, list) else []

    def interfaces(self) -> list[dict[str, Any]]:
        """``nodePackage.interfaces`` (a new empty list when absent; reading adds nothing)."""
        found = self.body.get("interfaces")
        return [i for i in found if isinstance(i, dict)] if isinstance(found, list) else []

    def interface(self, name: str) -> dict[str, Any] | None:
        return next((i for i in self.interfaces() if i.get("name") == name), None)

    def asset(self, name: str) -> dict[str, Any] | None:
        return next((a for a in self.assets() if a.get("name") == name), None)

    def asset_uris(self) -> list[str]:
        """Every ``assetUri`` / ``descriptorUri`` of the non-``system`` implementations, in
        manifest order, without duplicates (file names in the project's assets/)."""
        found: list[str] = []
        for asset in self.assets():
            for impl in asset.get("implementations", []) or []:
                if not isinstance(impl, dict) or impl.get("type") == "system":
                    continue
                for key in ("assetUri", "descriptorUri"):
                    uri = impl.get(key)
                    if isinstance(uri, str) and uri and uri not in found:
                        found.append(uri)
        return found

    # -- writers -----------------------------------------------------------------------------
    def add_asset(self, asset: dict[str, Any]) -> None:
        """Append ``asset`` to ``nodePackage.assets`` (created when absent)."""
        self.data["nodePackage"].setdefault("assets", []).append(asset)

    def add_interface(self, interface: dict[str, Any]) -> None:
        """Append ``interface`` to ``nodePackage.interfaces`` (created when absent)."""
        self.data["nodePackage"].setdefault("interfaces", []).append(interface)

    # -- what the package is -----------------------------------------------------------------
    def descriptor(self) -> dict[str, Any] | None:
        """The package's asset descriptor: ``descriptor.json`` in the folder, else the first
        ``descriptorUri`` of its assets found in the project's assets/; None when there is
        none or it does not parse (``validate`` reports why)."""
        candidates = [self.descriptor_path]
        assets_dir = self.folder.parent.parent / "assets"
        for asset in self.assets():
            for impl in asset.get("implementations", []) or []:
                uri = impl.get("descriptorUri") if isinstance(impl, dict) else None
                if isinstance(uri, str) and uri and "/" not in uri and uri not in (".", ".."):
                    candidates.append(assets_dir / uri)
        for path in candidates:
            if not path.is_file():
                continue
            try:
                data = load_json(path)
            except UserError as exc:
                log.debug("descriptor %s unreadable: %s", path, exc)
                return None
            return data if isinstance(data, dict) else None
        return None

    @property
    def kind(self) -> NodeKind:
        """What the package implements: MODEL (mlModelDescriptor), BUSINESS_LOGIC
        (runtimeDescriptor or a Dockerfile), else from its first interface's category
        (media_source -> CAMERA, media_sink -> DATA_SINK, ...), else UNKNOWN."""
        descriptor = self.descriptor() or {}
        if descriptors.MODEL in descriptor:
            return NodeKind.MODEL
        if descriptors.RUNTIME in descriptor or (self.folder / "Dockerfile").is_file():
            return NodeKind.BUSINESS_LOGIC
        for interface in self.interfaces():
            kind = CATEGORY_KINDS.get(str(interface.get("category")))
            if kind is not None:
                return kind
        return NodeKind.UNKNOWN

    @property
    def runtime_entry(self) -> RuntimeEntry | None:
        """``runtimeDescriptor.entry`` as (interpreter, absolute entry path), e.g.
        ``("python3", "/panorama/app.py")``; None for a package without one."""
        runtime = (self.descriptor() or {}).get(descriptors.RUNTIME)
        entry = runtime.get("entry") if isinstance(runtime, dict) else None
        if not isinstance(entry, dict):
            return None
        path, name = entry.get("path"), entry.get("name")
        if not isinstance(path, str) or not isinstance(name, str):
            return None
        return RuntimeEntry(path, name)

    @property
    def model_descriptor(self) -> ModelDescriptor | None:
        """``mlModelDescriptor`` (framework, input names and shapes); None when absent."""
        model = (self.descriptor() or {}).get(descriptors.MODEL)
        if not isinstance(model, dict):
            return None
        inputs = []
        for tensor in model.get("inputs") or []:
            if isinstance(tensor, dict):
                shape = tensor.get("shape") or []
                inputs.append(
                    ModelInput(
                        str(tensor.get("name", "")),
                        tuple(int(d) for d in shape if isinstance(d, int)),
                    )
                )
        precision = model.get("precisionMode")
        return ModelDescriptor(
            str(model.get("framework", "")),
            tuple(inputs),
            precision if isinstance(precision, str) else None,
        )

    def model_asset(self) -> tuple[Path, str] | None:
        """The model archive add-raw-model stored: (``assets/<sha256>.tar.gz``, sha256 hex),
        from the first implementation of type ``model`` with an ``assetUri``; None otherwise.
        The file may be missing (``validate`` reports that)."""
        assets_dir = self.folder.parent.parent / "assets"
        for asset in self.assets():
            for impl in asset.get("implementations", []) or []:
                if not isinstance(impl, dict) or impl.get("type") != "model":
                    continue
                uri = impl.get("assetUri")
                if isinstance(uri, str) and uri and "/" not in uri and uri not in (".", ".."):
                    return assets_dir / uri, uri.split(".", 1)[0]
        return None


class Project:
    """A project root and accessors for its graph and packages.

    Args:
        root: the folder holding assets/, graphs/ and packages/.
    """

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.assets_dir = self.root / "assets"
        self.graphs_dir = self.root / "graphs"
        self.packages_dir = self.root / "packages"

    # -- discovery ---------------------------------------------------------------------------
    @classmethod
    def discover(cls, start: Path | None = None) -> Project:
        """Walk up from ``start`` (default: the current folder) to the project root.

        Raises:
            UserError: no folder up to / holds assets/, graphs/ and packages/.
        """
        here = Path(start or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            if all((folder / d).is_dir() for d in PROJECT_DIRS):
                log.debug("project root %s", folder)
                return cls(folder)
        raise UserError(
            f"{here} is not inside a Panorama project "
            "(no folder above holds assets/, graphs/, packages/)",
            hint="run `panorama-cli init-project --name <name>` or cd into a project",
        )

    def rel(self, path: Path) -> str:
        """``path`` relative to the project root, for messages."""
        return relative(path, self.root)

    # -- graph -------------------------------------------------------------------------------
    @property
    def graph_path(self) -> Path:
        """``graphs/<name>/graph.json``: the only one, or the one named like the project folder.

        Raises:
            UserError: none, or several with none named like the project.
        """
        found = sorted(self.graphs_dir.glob("*/graph.json"))
        if len(found) == 1:
            return found[0]
        preferred = self.graphs_dir / self.root.name / "graph.json"
        if preferred in found:
            return preferred
        if not found:
            raise UserError(
                f"{self.rel(self.graphs_dir)}: no graphs/<name>/graph.json in this project",
                hint="restore graph.json or re-create the project with init-project",
            )
        raise UserError(
            f"several application graphs: {', '.join(self.rel(p) for p in found)}",
            hint=f"keep one, or name its folder graphs/{self.root.name}/",
        )

    def load_graph(self) -> dict[str, Any]:
        """Parse graph.json (malformed JSON -> UserError with file:line:col)."""
        data: dict[str, Any] = load_json(self.graph_path)
        return data

    def load_graph_for_update(self) -> dict[str, Any]:
        """Parse graph.json and refuse to edit it when it is not schema-valid."""
        return self._checked(self.graph_path, schemas.GRAPH)

    def _checked(self, path: Path, kind: str) -> dict[str, Any]:
        data = load_json(path)
        problems = schemas.check(kind, data, self.rel(path))
        if problems:
            raise UserError(
                f"refusing to change {problems[0].line()}",
                hint="fix the manifest first (`panorama-cli validate` lists every problem)",
            )
        checked: dict[str, Any] = data
        return checked

    def graph_accounts(self, graph: dict[str, Any] | None = None) -> list[str]:
        """Accounts used in graph package names, in order of appearance (``panorama`` excluded)."""
        graph = graph if graph is not None else self.load_graph()
        seen: list[str] = []
        for pkg in graph.get("nodeGraph", {}).get("packages", []) or []:
            parts = (
                names.split_package_ref(str(pkg.get("name", ""))) if isinstance(pkg, dict) else None
            )
            if parts and parts[0] != names.PANORAMA_ACCOUNT and parts[0] not in seen:
                seen.append(parts[0])
        return seen

    # -- packages ----------------------------------------------------------------------------
    def package_folders(self) -> list[Path]:
        """Folders under packages/ that hold a package.json, sorted by name.

        Hidden folders (``.<name>.creating`` staging left by a killed create-package) are
        never packages.
        """
        if not self.packages_dir.is_dir():
            return []
        return sorted(
            p.parent
            for p in self.packages_dir.glob("*/package.json")
            if not p.parent.name.startswith(".")
        )

    def load_package(self, folder: Path, *, for_update: bool = False) -> Package:
        """Load the package in ``folder`` (schema-checked when ``for_update``).

        Raises:
            UserError: no package.json, malformed JSON, or (for_update) schema-invalid.
        """
        folder = Path(folder).resolve()
        manifest = folder / "package.json"
        if not manifest.is_file():
            raise UserError(
                f"{self.rel(folder)}: no package.json here",
                hint="pass the folder of a node package, e.g. packages/<account>-<name>-<version>",
            )
        data = self._checked(manifest, schemas.PACKAGE) if for_update else load_json(manifest)
        return Package(folder, data)

    def package_for_path(self, path: str | Path) -> Package:
        """Resolve a --package-path / --packages-path value (relative to the cwd or the root)."""
        candidate = Path(path)
        if not candidate.is_absolute() and not candidate.exists():
            candidate = self.root / candidate
        candidate = candidate.resolve()
        if self.packages_dir.resolve() not in candidate.parents:
            raise UserError(
                f"{path}: not a package folder of this project",
                hint=f"use a folder under {self.rel(self.packages_dir)}/",
            )
        return self.load_package(candidate, for_update=True)

    def read_settings(self) -> dict[str, Any]:
        """Project settings written by init-project (``.panorama-cli.json``); {} if none.

        Raises:
            UserError: the file is not a JSON object, or ``accountId`` is not a string.
        """
        path = self.root / SETTINGS_FILE
        if not os.path.lexists(path):
            return {}
        data = load_json(path)
        if not isinstance(data, dict):
            raise UserError(
                f"{SETTINGS_FILE}: settings must be a JSON object",
                hint='e.g. {"accountId": "123456789012"}',
            )
        account = data.get("accountId")
        if account is not None and not isinstance(account, str):
            raise UserError(
                f"{SETTINGS_FILE}#/accountId: must be a string, not {type(account).__name__}",
                hint='write it in quotes, e.g. "accountId": "123456789012"',
            )
        return data


def resolve_account_id(
    explicit: str | None,
    project: Project | None,
    lookup: Callable[[], str] | None,
) -> str:
    """Choose the account id for package names and folders.

    Order: ``explicit`` (--account-id), env PANORAMA_ACCOUNT_ID, the account already used in
    the project's graph.json, the project's settings, then ``lookup()`` (STS GetCallerIdentity).

    Raises:
        UserError: none of them gives one, or the value is not a valid account id.
    """
    candidate = explicit or os.environ.get("PANORAMA_ACCOUNT_ID")
    if not candidate and project is not None:
        try:
            accounts = project.graph_accounts()
        except UserError:
            accounts = []
        candidate = accounts[0] if accounts else project.read_settings().get("accountId")
    if not candidate and lookup is not None:
        candidate = lookup()
    if not candidate:
        raise UserError(
            "no account id",
            hint="pass --account-id 123456789012, set PANORAMA_ACCOUNT_ID, or configure AWS "
            "credentials so STS can tell it",
        )
    return names.check(names.ACCOUNT_ID, str(candidate))
