"""``panorama-cli export`` of an unchanged project: no image rebuilt, and how long it takes.

    DOCKER_HOST=... .venv/bin/python benchmarks/fleet_export.py [--target compose] [--repeat 5]

Makes the people-counter sample (YOLOX-nano from ../shared), builds its container on the local
base image (``panorama-cli base-image --platform linux/amd64``'s), exports once (images built
as needed), then ``--repeat`` more times with nothing changed: each must build nothing; prints
the wall time of each run (a child process, CLI start-up included). Goal: under 2 s.
Exit status 1 when an unchanged export rebuilt an image or took 2 s or more.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VIDEO = ROOT.parent / "shared" / "data" / "vtest.avi"
YOLOX = ROOT.parent / "shared" / "models" / "yolox_nano" / "yolox_nano.onnx"
BASE = "panorama-cli/base:bookworm-amd64"


def _cli(cwd: Path, *args: str) -> tuple[float, str]:
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "panorama_cli", *args], cwd=cwd,
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"panorama-cli {' '.join(args)} failed:\n{done.stderr}")
    return time.monotonic() - t0, done.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="compose", choices=["compose", "kubernetes"])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _cli(work, "init-project", "--sample", "people-counter", "--model", str(YOLOX))
        project = work / "people-counter"
        _cli(project, "build-container", "--container-asset-name", "code_asset",
             "--package-path", "packages/123456789012-people_counter-1.0",
             "--platform", "linux/amd64", "--base-image", BASE)  # fmt: skip
        export = ["export", "--target", args.target, "--output-dir", str(work / "bundle"),
                  "--camera", f"front_camera={VIDEO}"]  # fmt: skip
        if args.target == "kubernetes":
            export += ["--device-name", "box-1"]
        first, _ = _cli(project, *export)
        print(f"first export: {first:.2f} s (images built as needed)")
        times, rebuilt = [], 0
        for _ in range(args.repeat):
            seconds, err = _cli(project, *export)
            times.append(seconds)
            rebuilt += "no image rebuilt" not in err
        median = statistics.median(times)
        print(f"unchanged export x{args.repeat}: median {median:.2f} s "
              f"(min {min(times):.2f}, max {max(times):.2f}), rebuilt {rebuilt} time(s)")  # fmt: skip
        return 0 if rebuilt == 0 and median < 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
