"""A node package folder on disk: its manifest (package.json), descriptor and what they say.

``packages/<account>-<name>-<version>/`` holds ``package.json`` (nodePackage manifest, schema
ver_2021-01-01) and usually ``descriptor.json`` (``runtimeDescriptor`` for a container,
``mlModelDescriptor`` for a model). :class:`Package` answers what the package is (its kind, its
runtime entry, its model descriptor and archive) without ever changing the manifest on read;
writers use its explicit mutators and write the manifest through a Transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from panorama_cli.errors import UserError
from panorama_cli.project import descriptors, names
from panorama_cli.project.manifests import load_json
from panorama_cli.project.node_kinds import CATEGORY_KINDS, NodeKind

log = logging.getLogger(__name__)

#: The keys of a ``hardware_access`` requirement that list accelerators: the official schema's
#: and the one the official GPU samples use (the same shape, see schemas/nodePackage).
ACCELERATOR_KEYS = ("inferenceAccelerators", "nvAccelerators")


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

    def accelerators(self) -> list[str]:
        """The ``deviceType`` of every accelerator its container implementations ask for, in
        manifest order, e.g. ``["nvhost_gpu"]``: the items of ``inferenceAccelerators`` (the
        official schema's key) and ``nvAccelerators`` (the official GPU samples' key) of each
        ``hardware_access`` requirement; empty when it asks for none."""
        found: list[str] = []
        for asset in self.assets():
            for impl in asset.get("implementations", []) or []:
                requirements = impl.get("requirements") if isinstance(impl, dict) else None
                for requirement in requirements if isinstance(requirements, list) else []:
                    if not isinstance(requirement, dict):
                        continue
                    if requirement.get("type") != "hardware_access":
                        continue
                    for key in ACCELERATOR_KEYS:
                        items = requirement.get(key)
                        for item in items if isinstance(items, list) else []:
                            kind = item.get("deviceType") if isinstance(item, dict) else None
                            found.append(str(kind) if kind is not None else "unknown")
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
