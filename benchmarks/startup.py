"""Start-up time of ``panorama-cli --help`` next to a bare ``python -c pass`` (same run).

Target: ``panorama-cli --help`` at most 0.3 s. Run: ``.venv/bin/python benchmarks/startup.py``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

RUNS = 15
TARGET_S = 0.3


def measure(argv: list[str]) -> list[float]:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    base = measure([sys.executable, "-c", "pass"])
    cli = measure([sys.executable, "-m", "panorama_cli", "--help"])
    cmd = measure([sys.executable, "-m", "panorama_cli", "validate", "--help"])
    rows = [("python -c pass", base), ("panorama-cli --help", cli), ("validate --help", cmd)]
    print(f"{'command':24} {'median s':>9} {'min s':>7}")
    for name, times in rows:
        print(f"{name:24} {statistics.median(times):9.3f} {min(times):7.3f}")
    median = statistics.median(cli)
    print(
        f"--help / bare python: {median / statistics.median(base):.1f}x; "
        f"target {TARGET_S:.2f} s: {'met' if median <= TARGET_S else 'MISSED'} ({median:.3f} s)"
    )
    return 0 if median <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
