"""import-application: move an application to another account id.

Rewrites the account in package folder names (``<account>-<name>-<version>``), in graph
package names (``<account>::<name>``; ``panorama::`` packages stay) and in node interfaces,
in graph.json and in its override files (beside it and in ``deployment_overrides/``). Override
*templates* (files with ``{placeholders}``, such as the official samples' override_template.json
with ``"{YourCameraName}_node"``) are rewritten as text: every 12-digit account id written as
one (``<account>::``, or an account the application uses, digits not part of a longer number)
becomes the new account, placeholders stay, nothing else is checked; one note says so. Other
JSON that is not an override manifest is skipped with a note. A package.json without name or
version keeps the ones its folder name gives. With a placeholder account such as
123456789012 it anonymizes an application before it goes to git.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from panorama_cli.errors import UserError
from panorama_cli.project import names, schemas
from panorama_cli.project.appgraph import is_override_template, override_candidates
from panorama_cli.project.manifests import Transaction, load_json
from panorama_cli.project.project import Project

log = logging.getLogger(__name__)

#: A 12-digit number that is not part of a longer run of digits.
_ACCOUNT = re.compile(r"(?<![0-9])[0-9]{12}(?![0-9])")


@dataclass
class ImportResult:
    """What import-application changed (paths relative to the project root)."""

    account: str
    renamed: list[tuple[str, str]] = field(default_factory=list)
    rewritten: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. override templates skipped

    @property
    def changed(self) -> bool:
        return bool(self.renamed or self.rewritten)


def _rewrite_ref(value: str, account: str) -> str:
    parts = names.split_package_ref(value)
    if parts is None or parts[0] == names.PANORAMA_ACCOUNT:
        return value
    return f"{account}::{parts[1]}"


def _rewrite_manifest(body: dict[str, Any], account: str) -> bool:
    changed = False
    for item in body.get("packages", []) or []:
        new = _rewrite_ref(item["name"], account)
        changed |= new != item["name"]
        item["name"] = new
    for node in body.get("nodes", []) or []:
        new = _rewrite_ref(node["interface"], account)
        changed |= new != node["interface"]
        node["interface"] = new
    return changed


def _accounts_in(project: Project, graph: dict[str, Any]) -> set[str]:
    """The account ids graph.json's package references and the package folders use."""
    found = set()
    for item in graph["nodeGraph"].get("packages", []) or []:
        parts = names.split_package_ref(str(item.get("name", "")))
        if parts is not None and parts[0] != names.PANORAMA_ACCOUNT:
            found.add(parts[0])
    for folder in project.package_folders():
        found.update(_ACCOUNT.findall(folder.name.split("-", 1)[0]))
    return found


def _rewrite_template(
    project: Project,
    path: Path,
    account: str,
    old_accounts: set[str],
    why: str,
    tx: Transaction,
    result: ImportResult,
) -> None:
    """Rewrite the account ids of an override template as text (see the module doc)."""
    text = path.read_text(encoding="utf-8")
    count = 0

    def swap(match: re.Match[str]) -> str:
        nonlocal count
        is_ref = text.startswith("::", match.end())
        if match.group(0) == account or not (is_ref or match.group(0) in old_accounts):
            return match.group(0)
        count += 1
        return account

    new = _ACCOUNT.sub(swap, text)
    rel = project.rel(path)
    done = f"{count} account id{'' if count == 1 else 's'} rewritten" if count else "no account id"
    result.notes.append(f"{rel}: {why}: {done}, nothing else checked")
    if new != text:
        tx.write(path, new)
        result.rewritten.append(rel)


def import_application(project: Project, account: str) -> ImportResult:
    """Rewrite the project to ``account``.

    Raises:
        UserError: invalid account id, a manifest malformed / schema-invalid, or a target
            folder exists. Nothing is changed then.
    """
    names.check(names.USER_ACCOUNT_ID, account)
    result = ImportResult(account)
    tx = Transaction()
    graph_path = project.graph_path
    graph = project.load_graph_for_update()
    old_accounts = _accounts_in(project, graph)
    if _rewrite_manifest(graph["nodeGraph"], account):
        tx.write_json(graph_path, graph)
        result.rewritten.append(project.rel(graph_path))
    for override in override_candidates(project):
        why = is_override_template(override)
        if why is not None and "{placeholders}" in why:
            _rewrite_template(project, override, account, old_accounts, why, tx, result)
            continue
        if why is not None:
            result.notes.append(f"{project.rel(override)}: skipped, {why}")
            continue
        data = load_json(override)
        problems = schemas.check(schemas.OVERRIDES, data, project.rel(override))
        if problems:
            raise UserError(
                f"refusing to change {problems[0].line()}", hint="fix the override file first"
            )
        if _rewrite_manifest(data["nodeGraphOverrides"], account):
            tx.write_json(override, data)
            result.rewritten.append(project.rel(override))
    for folder in project.package_folders():
        package = project.load_package(folder, for_update=True)
        if not package.name or not package.version:
            raise UserError(
                f"{project.rel(package.manifest_path)}: no name/version, and the folder is not "
                "named <account>-<name>-<version>",
                hint='add "name" and "version" to nodePackage',
            )
        target = folder.with_name(names.package_folder_name(account, package.name, package.version))
        if target.name == folder.name:
            continue
        if target.exists():
            raise UserError(
                f"{project.rel(target)} already exists", hint="remove one of the two copies"
            )
        log.debug("rename %s -> %s", folder.name, target.name)
        tx.rename(folder, target)
        result.renamed.append((project.rel(folder), project.rel(target)))
    tx.commit()
    return result
