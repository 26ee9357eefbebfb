"""A rebuild with nothing changed: ours vs the upstream method, side by side.

    DOCKER_HOST=unix:///run/panorama-ci/docker.sock \\
        python benchmarks/rebuild_unchanged.py [--base IMAGE] [--repeat N]

A container package (the starter app) FROM ``--base`` (default: the tests' local base image;
pass the 1 GB image of benchmarks/asset_pipeline.py for the large case) is built once with
``panorama-cli build-container``; then each method rebuilds it with nothing changed:

  ours      ``panorama-cli build-container`` again: docker build (every layer cached), the
            image id is the one the current asset was exported from, so nothing is exported
            and package.json is not written.
  upstream  docker build (cached) + ``docker create`` + ``docker export -o`` + ``gzip -1`` +
            sha256 of the whole .tar.gz in memory (what the original panorama-cli does on
            every build-container), and the asset it writes is a new file each time because
            the export carries the container's creation time.

Prints seconds (median of --repeat), the ratio, and whether each method's asset changed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ACCOUNT = "123456789012"
PACKAGE = f"packages/{ACCOUNT}-code-1.0"
UPSTREAM_TAG = "panorama-cli-bench/rebuild-upstream:1"


def cli(root: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "panorama_cli", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "PANORAMA_ACCOUNT_ID": ACCOUNT, "NO_COLOR": "1"},
    )
    if done.returncode != 0:
        raise SystemExit(f"panorama-cli {' '.join(args)} failed:\n{done.stderr}")
    return done.stderr


def upstream(root: Path, base: str, out: Path) -> tuple[float, str]:
    docker, gzip = shutil.which("docker"), shutil.which("gzip")
    if not docker or not gzip:
        raise SystemExit("the upstream method needs the docker CLI and gzip on PATH")
    t0 = time.perf_counter()
    tag = UPSTREAM_TAG
    subprocess.run(
        [
            docker,
            "build",
            "-q",
            "--build-arg",
            f"BASE_IMAGE={base}",
            "-t",
            tag,
            str(root / PACKAGE),
        ],
        check=True,
        capture_output=True,
    )
    cid = subprocess.run(
        [docker, "create", tag, "/bin/true"], check=True, capture_output=True, text=True
    ).stdout.strip()
    tar = out / "container.tar"
    try:
        subprocess.run([docker, "export", "-o", str(tar), cid], check=True)
    finally:
        subprocess.run([docker, "rm", "-f", cid], check=True, capture_output=True)
    subprocess.run([gzip, "-1", "-f", str(tar)], check=True)
    data = (out / "container.tar.gz").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    return time.perf_counter() - t0, sha


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="panorama-cli-test/base:bookworm-amd64")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rebuild-") as tmp:
        work = Path(tmp)
        os.environ["PANORAMA_CLI_CACHE"] = str(work / "cache")
        cli(work, "init-project", "--name", "app")
        root = work / "app"
        cli(root, "create-package", "--name", "code", "--no-backpack")
        build = ["build-container", "--container-asset-name", "code", "--package-path", PACKAGE,
                 "--platform", "linux/amd64", "--base-image", args.base]  # fmt: skip
        cli(root, *build)
        manifest = root / PACKAGE / "package.json"
        ours, ups, hashes = [], [], set()
        before = (manifest.read_bytes(), manifest.stat().st_mtime_ns)
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            cli(root, *build)
            ours.append(time.perf_counter() - t0)
            seconds, sha = upstream(root, args.base, work)
            ups.append(seconds)
            hashes.add(sha)
            time.sleep(1.1)  # a later second: upstream's export differs
        unchanged = (manifest.read_bytes(), manifest.stat().st_mtime_ns) == before
        subprocess.run(["docker", "rmi", UPSTREAM_TAG], capture_output=True, check=False)
    o, u = statistics.median(ours), statistics.median(ups)
    print(f"base image {args.base}, {args.repeat} rebuilds with nothing changed (median)")
    print(f"  ours      {o:6.2f} s   package.json untouched: {unchanged}")
    print(f"  upstream  {u:6.2f} s   distinct asset sha256s: {len(hashes)} of {args.repeat}")
    print(f"  ratio upstream/ours: {u / o:.1f}x")
    return 0 if unchanged and o < u else 1


if __name__ == "__main__":
    sys.exit(main())
