"""Derive the shipped Panorama service model from the one botocore last shipped.

The reference is ``../shared/reference/panorama-2019-07-24.service-2.json`` (botocore 1.43.0,
the last release with the ``panorama`` service). The shipped copy, under
``backpack/data/panorama/2019-07-24/``, keeps only the operations that panorama-cli and
backpack call (:data:`OPERATIONS`), the shapes they reach, and no documentation strings.

Regenerate after changing :data:`OPERATIONS`::

    python -m tests.support.service_model_tool --write

tests/cloud/test_service_model.py checks that the shipped files equal :func:`derive`'s output.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tests.support.paths import REPO, SHARED

REFERENCE_DIR = SHARED / "reference"
SHIPPED_DIR = REPO / "backpack" / "data" / "panorama" / "2019-07-24"

#: Operations called by panorama-cli (package-application, deploy, status) and by
#: backpack.autoidentity.
OPERATIONS = (
    "CreateApplicationInstance",
    "CreatePackage",
    "DeregisterPackageVersion",
    "DescribeApplicationInstance",
    "DescribeDevice",
    "DescribePackage",
    "DescribePackageVersion",
    "ListApplicationInstances",
    "ListPackages",
    "RegisterPackageVersion",
    "RemoveApplicationInstance",
)

#: Paginators added by us: operation -> result key (botocore's panorama paginators-1.json
#: was empty).
PAGINATED = {
    "ListApplicationInstances": "ApplicationInstances",
    "ListPackages": "Packages",
}

_DROP_KEYS = {"documentation", "documentationUrl"}


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if k not in _DROP_KEYS}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def _reachable_shapes(model: dict[str, Any]) -> set[str]:
    shapes = model["shapes"]
    todo: list[str] = []
    for name in OPERATIONS:
        op = model["operations"][name]
        for key in ("input", "output"):
            if key in op:
                todo.append(op[key]["shape"])
        todo.extend(err["shape"] for err in op.get("errors", []))
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        shape = shapes[name]
        refs = [m["shape"] for m in shape.get("members", {}).values()]
        for key in ("member", "key", "value"):
            if key in shape:
                refs.append(shape[key]["shape"])
        todo.extend(refs)
    return seen


def derive(reference_dir: Path = REFERENCE_DIR) -> dict[str, dict[str, Any]]:
    """Return ``{"service-2.json": model, "paginators-1.json": paginators}`` trimmed."""
    model = json.loads((reference_dir / "panorama-2019-07-24.service-2.json").read_text())
    paginators = json.loads((reference_dir / "panorama-2019-07-24.paginators-1.json").read_text())
    keep = _reachable_shapes(model)
    trimmed = {
        "version": model["version"],
        "metadata": model["metadata"],
        "operations": {n: model["operations"][n] for n in OPERATIONS},
        "shapes": {n: model["shapes"][n] for n in sorted(keep)},
    }
    pages = {n: p for n, p in paginators["pagination"].items() if n in OPERATIONS}
    # botocore shipped no paginators for panorama; ours follow the model's NextToken /
    # MaxResults members and the list member of each output.
    for name, result_key in PAGINATED.items():
        pages.setdefault(
            name,
            {
                "input_token": "NextToken",
                "output_token": "NextToken",
                "limit_key": "MaxResults",
                "result_key": result_key,
            },
        )
    return {
        "service-2.json": _strip(trimmed),
        "paginators-1.json": {"pagination": pages},
    }


def render(doc: dict[str, Any]) -> str:
    """The shipped files' exact text: compact JSON, sorted nowhere, one trailing newline."""
    return json.dumps(doc, indent=1, sort_keys=False) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the shipped files")
    args = parser.parse_args()
    files = derive()
    for name, doc in files.items():
        target = SHIPPED_DIR / name
        if args.write:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(render(doc))
            print(f"wrote {target} ({target.stat().st_size} bytes)")
        else:
            print(f"{name}: {len(render(doc))} bytes")


if __name__ == "__main__":
    main()
