"""The official manifest JSON Schemas (../shared/conformance/manifest-schema) as a test oracle."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from tests.support.paths import OFFICIAL_SCHEMAS
from tests.support.shared import require

GRAPH = "nodeGraph.schema.json"
PACKAGE = "nodePackage.schema.json"
DESCRIPTOR = "assetDescriptor.schema.json"
OVERRIDES = "nodeGraphOverrides.schema.json"


@cache
def validator(name: str):
    """A Draft-07 validator for the official schema ``name`` with its relative $refs resolved."""
    import jsonschema
    from referencing import Registry, Resource

    require(OFFICIAL_SCHEMAS)  # skips (fails under CI=true) the calling test without ../shared

    resources = []
    for path in OFFICIAL_SCHEMAS.rglob("*.json"):
        uri = "file://" + str(path)
        resources.append((uri, Resource.from_contents(json.loads(path.read_text()))))
    registry = Registry().with_resources(resources)
    root = OFFICIAL_SCHEMAS / name
    schema = {"$ref": "file://" + str(root)}
    return jsonschema.Draft7Validator(schema, registry=registry)


def errors(name: str, document) -> list[str]:
    """Messages of the official schema ``name`` for ``document`` (empty when valid).

    Without ../shared the calling test is skipped (CI=true: failed), see tests.support.shared.
    """
    return [e.message for e in validator(name).iter_errors(document)]


def kind_of(path: Path) -> str | None:
    """Which official schema applies to a manifest file, by name and top-level key."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        return None
    for key, name in (
        ("nodeGraph", GRAPH),
        ("nodePackage", PACKAGE),
        ("nodeGraphOverrides", OVERRIDES),
        ("mlModelDescriptor", DESCRIPTOR),
        ("runtimeDescriptor", DESCRIPTOR),
    ):
        if key in data:
            return name
    return None
