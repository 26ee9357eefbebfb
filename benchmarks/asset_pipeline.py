"""Container asset pipeline: ours (one streaming pass) vs the upstream method, side by side.

    DOCKER_HOST=unix:///run/pcli-docker/docker.sock \\
        python benchmarks/asset_pipeline.py [--base IMAGE] [--repeat N] [--workdir DIR]

Builds (once; reused afterwards) a local image of at least 1 GB: the local Debian base image
plus a layer of realistic, partly compressible data made inside the build without network
(copies of /usr, generated log text, random bytes). Then it runs each method in its own
fresh child process and measures wall time and peak RSS:

  ours      export_filesystem() -> assets.store_stream(): export, gzip (ISA-L, 2 threads,
            level 1) and sha256 of the compressed bytes in one pass, straight into assets/.
  upstream  ``docker create`` + ``docker export -o file.tar``, ``gzip -1 file.tar``, then
            sha256 of the whole .tar.gz read into memory in Python (what the original
            panorama-cli does).
  floor     export_filesystem() -> sha256 only (no compression, no disk): the engine's
            export speed, the lower bound for any method.

Peak RSS of a method is the largest VmHWM (/proc/<pid>/status) of its processes, which run
one after the other: for upstream the Python process, the docker CLI and gzip (sampled every
10 ms while they run). VmHWM is used rather than ru_maxrss from wait4/RUSAGE_CHILDREN because
Linux carries the forking parent's high-water mark into a child's ru_maxrss at exec, which
would charge the benchmark driver's own memory to every method. The page cache is warmed by
one export first so both methods read the image from memory alike.
"""

from __future__ import annotations

import argparse
import hashlib
import json
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

DEFAULT_BASE = "panorama-cli-test/base:bookworm-amd64"
DEFAULT_IMAGE = "panorama-cli-bench/asset-pipeline:1g"
DATA_VERSION = "1"
MIN_IMAGE_BYTES = 1_000_000_000

TARGET_SPEEDUP = 3.5
TARGET_RSS_MB = 64.0
TARGET_SIZE_RATIO = 1.10

DOCKERFILE = f"""\
ARG BASE
FROM ${{BASE}}
LABEL org.panorama-cli.bench.data-version="{DATA_VERSION}"
COPY make_data.py /tmp/make_data.py
RUN ["python3", "/tmp/make_data.py", "/data"]
"""

# Runs inside the image build (python3 of the base image), no network needed.
MAKE_DATA = r"""
import os, random, shutil, sys
dest = sys.argv[1]
os.makedirs(dest)
for i in range(4):                                   # ~4 x 166 MB of real binaries/text
    shutil.copytree("/usr", f"{dest}/usr-copy-{i}", symlinks=True)
rng = random.Random(42)
words = ("frame camera inference tensor model panorama edge latency people count "
         "INFO WARN DEBUG node graph buffer stream rtsp decode encode").split()
with open(f"{dest}/app.log", "w") as f:              # 64 MiB of log-like text
    n = 0
    while n < 64 << 20:
        line = f"2021-11-{rng.randint(1, 30):02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d} " \
               + " ".join(rng.choice(words) for _ in range(12)) + f" {rng.random():.6f}\n"
        n += f.write(line)
with open(f"{dest}/weights.bin", "wb") as f:         # 192 MiB of incompressible bytes
    for _ in range(192):
        f.write(os.urandom(1 << 20))
"""


# --------------------------------------------------------------------------- workers (children)


def worker_ours(image: str, out_dir: Path, threads: int, level: int, chunk: int) -> dict:
    from panorama_cli.build import docker_engine
    from panorama_cli.project import assets

    assets.GZIP_THREADS = threads
    assets.GZIP_LEVEL = level
    client = docker_engine.connect()
    consumed = [0]

    def progress(n: int) -> None:
        consumed[0] += n

    t0 = time.perf_counter()
    with docker_engine.export_filesystem(image, client=client, chunk_size=chunk) as chunks:
        asset = assets.store_stream(chunks, out_dir, progress=progress)
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "size": asset.size,
        "sha256": asset.sha256,
        "path": str(asset.path),
        "input_bytes": consumed[0],
        "procs": {"python": _hwm_kb()},
    }


def worker_floor(image: str, chunk: int) -> dict:
    from panorama_cli.build import docker_engine

    client = docker_engine.connect()
    hasher = hashlib.sha256()
    n = 0
    t0 = time.perf_counter()
    with docker_engine.export_filesystem(image, client=client, chunk_size=chunk) as chunks:
        for c in chunks:
            hasher.update(c)
            n += len(c)
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "size": n,
        "input_bytes": n,
        "procs": {"python": _hwm_kb()},
    }


def worker_upstream(image: str, out_dir: Path) -> dict:
    docker = shutil.which("docker")
    gzip = shutil.which("gzip")
    if not docker or not gzip:
        raise SystemExit("the upstream method needs the docker CLI and gzip on PATH")
    tar_path = out_dir / "container.tar"
    procs = {}
    t0 = time.perf_counter()
    cid = subprocess.run(
        [docker, "create", image, "/bin/true"], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        procs["docker export"] = _run_measured([docker, "export", "-o", str(tar_path), cid])
    finally:
        subprocess.run([docker, "rm", "-f", cid], check=True, capture_output=True)
    input_bytes = tar_path.stat().st_size
    procs["gzip -1"] = _run_measured([gzip, "-1", str(tar_path)])
    gz_path = out_dir / "container.tar.gz"
    with open(gz_path, "rb") as f:
        data = f.read()  # upstream: whole file in memory
    sha = hashlib.sha256(data).hexdigest()
    size = len(data)
    del data
    final = out_dir / f"{sha}.tar.gz"
    os.replace(gz_path, final)
    seconds = time.perf_counter() - t0
    procs["python"] = _hwm_kb()
    return {
        "seconds": seconds,
        "size": size,
        "sha256": sha,
        "path": str(final),
        "input_bytes": input_bytes,
        "procs": procs,
    }


def _hwm_kb(pid: int | str = "self") -> int:
    """Peak RSS (VmHWM, KiB) of a process's current memory map; 0 once it has exited.

    VmHWM starts afresh at exec, unlike ru_maxrss, which a child inherits from the
    process that forked it (so a big parent would inflate every child's figure).
    """
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _run_measured(argv: list[str]) -> int:
    """Run argv to completion; return its peak RSS in KiB, sampled from /proc every 10 ms."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _hwm_kb(proc.pid))
        time.sleep(0.01)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} exited with {proc.returncode}")
    return peak


# --------------------------------------------------------------------------- parent


def run_child(args: list[str]) -> tuple[dict, int]:
    """Run one worker in a fresh interpreter; return its report and the method's peak RSS.

    The peak (KiB) is the largest VmHWM of the method's processes, as the worker reports.
    """
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", *args]
    out = subprocess.run(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"worker {args[0]} failed with exit code {out.returncode}")
    report = json.loads(out.stdout)
    return report, max(report["procs"].values())


def ensure_image(client, image: str, base: str, rebuild: bool) -> int:
    import docker

    from panorama_cli.build import docker_engine

    try:
        img = client.images.get(image)
        labels = img.attrs.get("Config", {}).get("Labels") or {}
        if (
            not rebuild
            and labels.get("org.panorama-cli.bench.data-version") == DATA_VERSION
            and img.attrs["Size"] >= MIN_IMAGE_BYTES
        ):
            print(f"reusing {image} ({img.attrs['Size'] / 1e9:.2f} GB)")
            return img.attrs["Size"]
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.get(base)
    except docker.errors.ImageNotFound:
        raise SystemExit(
            f"base image {base} is missing; build it first: python -m tests.support.base_images "
            "--arch amd64 (or pass --base IMAGE)"
        ) from None
    print(f"building {image} FROM {base} (about a minute) ...")
    with tempfile.TemporaryDirectory(prefix="bench-ctx-") as ctx:
        Path(ctx, "Dockerfile").write_text(DOCKERFILE)
        Path(ctx, "make_data.py").write_text(MAKE_DATA)
        t0 = time.perf_counter()
        docker_engine.build_image(
            Path(ctx),
            tag=image,
            platform="linux/amd64",
            build_args={"BASE": base},
            client=client,
        )
    size = client.images.get(image).attrs["Size"]
    print(f"built {image}: {size / 1e9:.2f} GB in {time.perf_counter() - t0:.0f} s")
    if size < MIN_IMAGE_BYTES:
        raise SystemExit(f"{image} is only {size / 1e9:.2f} GB; expected >= 1 GB")
    return size


def gunzip_size(path: Path) -> int:
    from isal import igzip

    n = 0
    with igzip.open(path, "rb") as f:
        while block := f.read(1 << 20):
            n += len(block)
    return n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    parser.add_argument("--base", default=DEFAULT_BASE, help="local base image to build FROM")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each method (median)")
    parser.add_argument("--workdir", type=Path, default=None, help="where outputs go (temp)")
    parser.add_argument("--threads", type=int, default=None, help="ISA-L threads (ours)")
    parser.add_argument("--level", type=int, default=None, help="ISA-L level 0-3 (ours)")
    parser.add_argument("--chunk", type=int, default=None, help="export chunk bytes (ours)")
    parser.add_argument("--skip-upstream", action="store_true", help="tuning: ours only")
    parser.add_argument("--worker", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        kind, rest = args.worker[0], args.worker[1:]
        if kind == "ours":
            report = worker_ours(rest[0], Path(rest[1]), int(rest[2]), int(rest[3]), int(rest[4]))
        elif kind == "floor":
            report = worker_floor(rest[0], int(rest[1]))
        else:
            report = worker_upstream(rest[0], Path(rest[1]))
        print(json.dumps(report))
        return 0

    from panorama_cli.build import docker_engine
    from panorama_cli.project import assets

    threads = args.threads or assets.GZIP_THREADS
    level = assets.GZIP_LEVEL if args.level is None else args.level
    chunk = args.chunk or docker_engine.EXPORT_CHUNK

    client = docker_engine.connect()
    image_size = ensure_image(client, args.image, args.base, args.rebuild)

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="asset-bench-", dir="/tmp"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(
        f"outputs under {workdir}; CPUs: {os.cpu_count()}; ours: ISA-L level {level}, "
        f"{threads} threads, {chunk >> 10} KiB export chunks"
    )

    print("warming the page cache (one export, not measured) ...")
    run_child(["floor", args.image, str(chunk)])

    results: dict[str, list[tuple[dict, int]]] = {"ours": [], "upstream": [], "floor": []}
    try:
        for i in range(args.repeat):
            out = workdir / f"ours-{i}"
            out.mkdir()
            rep, rss = run_child(
                ["ours", args.image, str(out), str(threads), str(level), str(chunk)]
            )
            if gunzip_size(Path(rep["path"])) != rep["input_bytes"]:
                raise SystemExit("ours: gunzip of the stored asset != exported bytes")
            if assets.sha256_file(Path(rep["path"])) != rep["sha256"]:
                raise SystemExit("ours: sha256 of the stored file != its name")
            results["ours"].append((rep, rss))
            print(f"  ours     run {i + 1}: {rep['seconds']:6.1f} s  peak {rss / 1024:6.1f} MB")
            shutil.rmtree(out)

            if not args.skip_upstream:
                out = workdir / f"upstream-{i}"
                out.mkdir()
                rep, rss = run_child(["upstream", args.image, str(out)])
                results["upstream"].append((rep, rss))
                print(f"  upstream run {i + 1}: {rep['seconds']:6.1f} s  peak {rss / 1024:6.1f} MB")
                shutil.rmtree(out)

            rep, rss = run_child(["floor", args.image, str(chunk)])
            results["floor"].append((rep, rss))
            print(f"  floor    run {i + 1}: {rep['seconds']:6.1f} s  peak {rss / 1024:6.1f} MB")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    def med(kind: str, key: str) -> float:
        return statistics.median(r[key] for r, _ in results[kind])

    def peak(kind: str) -> float:
        return max(rss for _, rss in results[kind]) / 1024

    print()
    print(
        f"image {args.image}: {image_size / 1e9:.2f} GB, export stream "
        f"{med('floor', 'input_bytes') / 1e9:.2f} GB; median of {args.repeat} run(s)"
    )
    print()
    header = f"{'method':<44} {'wall s':>8} {'peak RSS MB':>12} {'output MB':>10}"
    print(header)
    print("-" * len(header))
    rows = [("ours: export -> igzip_threaded + sha256 -> file", "ours")]
    if results["upstream"]:
        rows.append(("upstream: docker export, gzip -1, sha256(read)", "upstream"))
    rows.append(("floor: export -> sha256 only (no output)", "floor"))
    for label, kind in rows:
        size = "-" if kind == "floor" else f"{med(kind, 'size') / 1e6:10.1f}"
        print(f"{label:<44} {med(kind, 'seconds'):8.1f} {peak(kind):12.1f} {size:>10}")
    if results["upstream"]:
        print()
        print(
            "upstream peak RSS by process (MB): "
            + ", ".join(
                f"{name} {max(r['procs'][name] for r, _ in results['upstream']) / 1024:.1f}"
                for name in results["upstream"][0][0]["procs"]
            )
        )
        speedup = med("upstream", "seconds") / med("ours", "seconds")
        size_ratio = med("ours", "size") / med("upstream", "size")
        ok = {
            "speed-up": speedup >= TARGET_SPEEDUP,
            "rss": peak("ours") <= TARGET_RSS_MB,
            "size": size_ratio <= TARGET_SIZE_RATIO,
        }
        print()
        print(
            f"speed-up (upstream / ours wall):  {speedup:5.2f}x   target >= {TARGET_SPEEDUP}x  "
            f"{'OK' if ok['speed-up'] else 'MISSED'}"
        )
        print(
            f"our peak RSS:                     {peak('ours'):5.1f} MB  target <= "
            f"{TARGET_RSS_MB:.0f} MB  {'OK' if ok['rss'] else 'MISSED'}"
        )
        print(
            f"size ratio (ours / gzip -1):      {size_ratio:5.3f}    target <= "
            f"{TARGET_SIZE_RATIO}    {'OK' if ok['size'] else 'MISSED'}"
        )
        print(
            f"ours vs export floor:             {med('ours', 'seconds') / med('floor', 'seconds'):5.2f}x "
            "of the time the engine needs just to export"
        )
        return 0 if all(ok.values()) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
