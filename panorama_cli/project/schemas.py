"""Schema checks of manifests against panorama-cli's own JSON Schemas (schemas/).

The schemas mirror the official manifest schema ver_2021-01-01 (nodeGraph, nodePackage,
assetDescriptor, nodeGraphOverrides); see each schema's description for where they differ.
jsonschema is imported on first use to keep CLI start-up fast.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import cache
from typing import Any

from panorama_cli.project.manifests import pointer
from panorama_cli.project.problems import Problem
from panorama_cli.resources import data_dir

log = logging.getLogger(__name__)

GRAPH = "nodeGraph"
PACKAGE = "nodePackage"
DESCRIPTOR = "descriptor"
OVERRIDES = "nodeGraphOverrides"

#: The key the official GPU samples use for a container's GPU. It belongs in a requirement of
#: type ``hardware_access`` (where the schema accepts it beside ``inferenceAccelerators``);
#: anywhere else it gets this specific message.
NV_ACCELERATORS = "nvAccelerators"
NV_ACCELERATORS_HELP = (
    "nvAccelerators (the container's GPU) belongs in a hardware_access requirement of the "
    "asset implementation, not here",
    "move it: the implementation's "
    '"requirements": [{"type": "hardware_access", "nvAccelerators": [{"deviceType": '
    '"nvhost_gpu", "sharedResourcePolicy": {"policy": "allow_all"}}]}] '
    "(inferenceAccelerators is the same, under the official schema's name)",
)


@cache
def _validator(kind: str) -> Any:
    import jsonschema

    schema = json.loads((data_dir("schemas") / f"{kind}.schema.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _message(error: Any) -> str:
    alternatives = error.validator_value if error.validator == "anyOf" else None
    if isinstance(alternatives, list) and all(
        isinstance(a, dict) and list(a) == ["required"] for a in alternatives
    ):  # e.g. a hardware_access requirement with neither accelerator key
        keys = [" and ".join(a["required"]) for a in alternatives]
        return f"{_short(error.instance)} needs {' or '.join(keys)}"
    if error.validator == "oneOf" and isinstance(error.instance, dict):
        kind = error.instance.get("interface", error.instance.get("type"))
        return f"{_short(error.instance)} matches none of the allowed forms" + (
            f" (its interface/type is {_short(kind)})" if kind is not None else ""
        )
    if error.validator in ("pattern", "enum", "const", "type", "maxLength", "minLength"):
        return f"value {_short(error.instance)} is invalid: {error.message.split(' is ')[-1]}"
    return str(error.message)


def check(kind: str, data: Any, file: str) -> list[Problem]:
    """Validate ``data`` against schema ``kind``; one Problem per schema violation.

    Args:
        kind: one of GRAPH, PACKAGE, DESCRIPTOR, OVERRIDES.
        data: the parsed manifest.
        file: the file name to report.
    """
    from jsonschema.exceptions import best_match

    problems: list[Problem] = []
    log.debug("schema check of %s as %s", file, kind)
    for error in sorted(_validator(kind).iter_errors(data), key=lambda e: list(e.absolute_path)):
        if error.context:
            error = _closest_alternative(error, best_match)
        where = pointer(*error.absolute_path)
        if _names_key(error, NV_ACCELERATORS):
            problems.append(
                Problem(file, pointer(*error.absolute_path, NV_ACCELERATORS), *NV_ACCELERATORS_HELP)
            )
            continue
        problems.append(
            Problem(
                file, where, _message(error), "see the manifest schema ver_2021-01-01 for the field"
            )
        )
    return problems


def _names_key(error: Any, key: str) -> bool:
    """Whether a schema error is an ``additionalProperties`` error about ``key``."""
    return (
        error.validator == "additionalProperties"
        and isinstance(error.instance, dict)
        and key in error.instance
    )


def _closest_alternative(error: Any, best_match: Callable[[Any], Any]) -> Any:
    """For a failed oneOf/anyOf, the error of the branch the document most likely meant.

    The branch with the fewest errors wins; on a tie, one whose errors are not about the
    discriminating constant (e.g. ``"type": "int32"``) wins.
    """
    branches: dict[int, list[Any]] = {}
    for sub in error.context:
        branches.setdefault(sub.schema_path[0], []).append(sub)

    def rank(item: tuple[int, list[Any]]) -> tuple[int, bool]:
        subs = item[1]
        return (len(subs), any(s.validator in ("const", "enum") for s in subs))

    _, chosen = min(branches.items(), key=rank)
    deepest = best_match(chosen)
    return deepest if deepest is not None else error
