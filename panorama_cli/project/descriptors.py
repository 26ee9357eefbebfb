"""Asset descriptors (descriptor.json): ``runtimeDescriptor`` (container) and
``mlModelDescriptor`` (model), per the manifest schema ver_2021-01-01 assetDescriptor.

One set of checks serves ``validate`` (which lists every problem) and the commands that
turn a descriptor into an asset (which refuse on the first one).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from panorama_cli.errors import UserError
from panorama_cli.project import schemas
from panorama_cli.project.manifests import decode, loads, read_regular
from panorama_cli.project.problems import Problem

log = logging.getLogger(__name__)

RUNTIME = "runtimeDescriptor"
MODEL = "mlModelDescriptor"
ENTRY_PLACEHOLDER = "<entry_file_name_under_src>"


def entry_name(data: Any) -> str | None:
    """``runtimeDescriptor.entry.name`` (e.g. ``/panorama/app.py``), or None."""
    runtime = data.get(RUNTIME) if isinstance(data, dict) else None
    entry = runtime.get("entry") if isinstance(runtime, dict) else None
    name = entry.get("name") if isinstance(entry, dict) else None
    return name if isinstance(name, str) else None


def _placeholders(data: Any, file: str) -> list[Problem]:
    found = []
    model = data.get(MODEL) if isinstance(data, dict) else None
    if isinstance(model, dict):
        if model.get("framework", "") == "":
            found.append(
                Problem(
                    file,
                    f"/{MODEL}/framework",
                    "model framework is empty",
                    "set PYTORCH, TENSORFLOW or MXNET",
                )
            )
        inputs = model.get("inputs")
        for i, tensor in enumerate(inputs if isinstance(inputs, list) else []):
            if isinstance(tensor, dict) and (tensor.get("name") == "" or tensor.get("shape") == []):
                found.append(
                    Problem(
                        file,
                        f"/{MODEL}/inputs/{i}",
                        "model input name or shape is empty",
                        'fill in e.g. {"name": "data", "shape": [1, 3, 224, 224]}',
                    )
                )
    name = entry_name(data)
    if name is not None and ENTRY_PLACEHOLDER in name:
        found.append(
            Problem(
                file,
                f"/{RUNTIME}/entry/name",
                "entry file is still a placeholder",
                "name the file under src/, e.g. /panorama/app.py",
            )
        )
    return found


def problems(data: Any, file: str) -> list[Problem]:
    """Placeholders left, then schema violations not already explained by a placeholder."""
    found = _placeholders(data, file)
    taken = [p.pointer for p in found]
    for problem in schemas.check(schemas.DESCRIPTOR, data, file):
        if not any(problem.pointer.startswith(t) for t in taken):
            found.append(problem)
    return found


def read_for_asset(path: Path, where: str, kind: str) -> tuple[bytes, dict[str, Any]]:
    """Read a descriptor that is about to become an asset; refuse anything unfinished.

    Args:
        path: the descriptor.json file.
        where: its name for messages (relative to the project root).
        kind: RUNTIME or MODEL, the top-level key it must have.

    Returns:
        (the file's bytes unchanged — their sha256 names the descriptor asset, the parsed JSON).

    Raises:
        UserError: missing or unreadable, malformed JSON (file:line:col), the wrong kind,
            a placeholder left, or a schema violation (file#pointer).
    """
    try:
        raw = read_regular(path, where)  # a FIFO or /dev/zero is refused, not read
    except UserError as exc:
        raise UserError(exc.message, hint=f"a {kind} descriptor.json is needed here") from None
    data = loads(decode(raw, where), where)
    if not isinstance(data, dict) or kind not in data:
        raise UserError(
            f"{where}: not a {kind} descriptor (no {kind})",
            hint="pass the descriptor.json of the right kind of package",
        )
    found = problems(data, where)
    if found:
        raise UserError(found[0].line(), hint="fix the descriptor and re-run")
    return raw, data
