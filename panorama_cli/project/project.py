"""The project model: where a Panorama application project lives and what it holds.

A project is a folder holding ``assets/``, ``graphs/<name>/graph.json`` and ``packages/``
(the upstream panorama-cli layout). Commands work from any sub-folder: :meth:`Project.discover`
walks up to the project root. Node packages live in ``packages/<account>-<name>-<version>/``
with a ``package.json`` (nodePackage manifest) and usually a ``descriptor.json``; see
:mod:`panorama_cli.project.node_package` for :class:`Package` (re-exported here).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from panorama_cli.errors import UserError
from panorama_cli.project import names, schemas
from panorama_cli.project.manifests import load_json
from panorama_cli.project.node_package import ModelDescriptor, ModelInput, Package, RuntimeEntry
from panorama_cli.project.problems import relative

__all__ = [
    "PROJECT_DIRS",
    "SETTINGS_FILE",
    "ModelDescriptor",
    "ModelInput",
    "Package",
    "Project",
    "RuntimeEntry",
    "resolve_account_id",
]

log = logging.getLogger(__name__)

PROJECT_DIRS = ("assets", "graphs", "packages")
SETTINGS_FILE = ".panorama-cli.json"


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
        if not candidate.exists():
            import difflib

            have = [p.name for p in self.package_folders()]
            close = difflib.get_close_matches(candidate.name, have, n=1, cutoff=0.6)
            listing = ", ".join(f"packages/{n}" for n in have) or "none"
            raise UserError(
                f"{path}: no such package folder",
                hint=f"did you mean packages/{close[0]}?" if close else f"packages: {listing}",
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
    message = "no account id: pass --account-id or set PANORAMA_ACCOUNT_ID"
    hint = (
        "e.g. --account-id 123456789012; `panorama-cli init-project --account-id "
        "123456789012` inside the project records it; the third way is AWS credentials (STS)"
    )
    given = explicit or os.environ.get("PANORAMA_ACCOUNT_ID", "").strip()
    if given:
        return names.check(names.USER_ACCOUNT_ID, given)
    if project is not None:
        try:
            accounts = project.graph_accounts()
        except UserError:
            accounts = []
        if accounts:
            return names.check(names.ACCOUNT_ID, accounts[0])
        stored = project.read_settings().get("accountId")
        if stored:
            return names.check(names.USER_ACCOUNT_ID, stored)
    if lookup is not None:
        try:
            found = lookup()
        except UserError as exc:
            raise UserError(message, hint=f"{hint}: {exc.message}") from None
        if found:
            return names.check(names.USER_ACCOUNT_ID, str(found))
    raise UserError(message, hint=hint)
