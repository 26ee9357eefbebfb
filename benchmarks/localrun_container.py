"""`panorama-cli run --in-container` against host mode: same app, same video, side by side.

    DOCKER_HOST=unix:///... .venv/bin/python benchmarks/localrun_container.py
        [--frames 150] [--rounds 3] [--arm64-frames 0]

The app is a pass-through (``put(get())`` plus one write to storage per frame, no HDMI). It
runs from the package's src/ in host mode (bubblewrap sandbox, this Python) and in its
linux/amd64 image (FROM the local Debian base, python3 + Debian's numpy) with
``--in-container``, ``--fast`` for ``--frames`` frames of vtest.avi, ``--rounds`` times
interleaved. Printed side by side (best of the rounds):

- **container start**: create + start of the container (the runner's debug line), seconds;
- **start-up**: run start to the first frame delivered (report.json ``startup_s``);
- **per frame**: wall time between the first and the last frame delivered / frames, ms;
- **get**: the app's mean ``get()`` as it measured it (waiting for decode included), ms;

with the container/host ratio. ``--arm64-frames N`` adds an arm64 image under qemu.

Needs Docker (DOCKER_HOST), the local base images (tests/support/base_images.py), apt access
from builds (python3-numpy), ../shared/data/vtest.avi, bubblewrap (or root).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VIDEO = ROOT.parent / "shared" / "data" / "vtest.avi"
APP = """
import panoramasdk

node = panoramasdk.node()
count = 0
while True:
    streams = node.inputs.video_in.get()
    node.outputs.video_out.put(streams)
    count += 1
    with open("/opt/aws/panorama/storage/count", "w") as f:
        f.write(str(count))
"""
DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends python3-numpy \\
    && rm -rf /var/lib/apt/lists/*
COPY src /panorama
"""


class _StartTimes(logging.Handler):
    """Collects the container_app debug line 'container ... running after X s'."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.values: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        found = re.search(r"running after ([0-9.]+) s", record.getMessage())
        if found:
            self.values.append(float(found.group(1)))


def make_project(parent: Path) -> Path:
    """A project: one camera -> the pass-through app (no HDMI); its package has a Dockerfile."""
    from tests.localrun.helpers import ACCOUNT, PACKAGE
    from tests.localrun.helpers import make_project as helper

    root = helper(parent, textwrap.dedent(APP), params={}, hdmi=False)
    (root / "packages" / f"{ACCOUNT}-{PACKAGE}-1.0" / "Dockerfile").write_text(DOCKERFILE)
    return root


def build(root: Path, arch: str) -> str:
    from panorama_cli.build import docker_engine
    from tests.localrun.helpers import ACCOUNT, PACKAGE
    from tests.support.base_images import BASE_IMAGES

    tag = f"panorama-cli-bench/passthrough:{arch}"
    docker_engine.build_image(
        root / "packages" / f"{ACCOUNT}-{PACKAGE}-1.0",
        tag=tag,
        platform=f"linux/{arch}",
        build_args={"BASE_IMAGE": BASE_IMAGES[arch]},
    )
    return tag


def one_run(root: Path, out: Path, frames: int, image: str | None) -> dict[str, Any]:
    from panorama_cli.localrun import RunOptions, run_application
    from panorama_cli.project.project import Project

    options = RunOptions(
        cameras={"front_camera": str(VIDEO)},
        frames=frames,
        fast=True,
        output_dir=out,
        grace_s=1.0,
        in_container=image is not None,
        images={"": image} if image else {},
    )
    report = run_application(Project.discover(root), options).report
    camera = report["cameras"]["front_camera"]
    node = report["nodes"]["code_node"]
    assert camera["frames"] == frames, report
    return {
        "startup_s": report["startup_s"],
        "frame_ms": 1000.0 / camera["fps"],
        "get_ms": node["get_ms"]["mean"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--arm64-frames", type=int, default=0)
    args = parser.parse_args()
    times = _StartTimes()
    logger = logging.getLogger("panorama_cli.localrun.apps.container_app")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(times)
    results: dict[str, list[dict[str, Any]]] = {"host": [], "container": [], "arm64": []}
    starts: dict[str, list[float]] = {"container": [], "arm64": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = make_project(Path(tmp))
        images = {"container": build(root, "amd64")}
        if args.arm64_frames:
            images["arm64"] = build(root, "arm64")
        for index in range(args.rounds):
            for mode in ("host", *images):
                frames = args.arm64_frames if mode == "arm64" else args.frames
                out = Path(tmp) / f"{mode}-{index}"
                results[mode].append(one_run(root, out, frames, images.get(mode)))
                if mode != "host":
                    starts[mode].append(times.values[-1])
    best = {m: {k: min(r[k] for r in rs) for k in rs[0]} for m, rs in results.items() if rs}
    for mode, values in starts.items():
        if values:
            best[mode]["container_start_s"] = min(values)
    rows = [
        ("container start (s)", "container_start_s", 3),
        ("start-up to first frame (s)", "startup_s", 3),
        ("per frame (ms)", "frame_ms", 2),
        ("app get() mean (ms)", "get_ms", 3),
    ]
    modes = [m for m in ("host", "container", "arm64") if m in best]
    print(f"pass-through, {args.frames} frames of vtest.avi --fast, best of {args.rounds}")
    print(f"{'':30}" + "".join(f"{m:>12}" for m in modes) + f"{'ratio':>10}")
    for label, key, digits in rows:
        cells = [best[m].get(key) for m in modes]
        text = "".join(f"{'-':>12}" if c is None else f"{c:>12.{digits}f}" for c in cells)
        host, container = best["host"].get(key), best["container"].get(key)
        ratio = f"{container / host:>10.2f}" if host and container else f"{'':>10}"
        print(f"{label:30}{text}{ratio}")
    print(json.dumps(best, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
