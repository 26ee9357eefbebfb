"""backpack's per-frame costs in one run: timepiece, annotation rendering, SkyLine.put().

    .venv/bin/python benchmarks/backpack_runtime.py

Targets (issue 4): Ticker.tick() <= 1 µs mean; StopWatch enter+exit <= 3 µs; the OpenCV
annotation driver rendering 50 rectangles and 50 labels on a 1920x1080 frame <= 2 ms;
SkyLine.put() at 1280x720 adds <= 1 ms per frame to the caller beyond the pipeline's own
encoding. Each area's method is in its own module (benchmarks/backpack_timepiece.py,
backpack_annotation.py, backpack_skyline.py: see their docstrings); this script runs them one
after the other and prints every row with its target. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

AREAS = ("backpack_timepiece", "backpack_annotation", "backpack_skyline")


def main() -> int:
    import importlib

    rows: list[tuple[str, float, float, str]] = []
    for area in AREAS:
        rows.extend(importlib.import_module(area).run())
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>9}  {'target':>9}  ratio")
    missed = 0
    for name, measured, target, unit in rows:
        ok = measured <= target
        missed += not ok
        print(
            f"{name:<{width}}  {measured:>6.3f} {unit:<2}  {target:>6.3f} {unit:<2}  "
            f"{measured / target:.2f}{'' if ok else '  MISSED'}"
        )
    print("all targets met" if not missed else f"{missed} target(s) missed")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
