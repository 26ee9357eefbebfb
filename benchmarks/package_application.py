"""package-application against local servers: no-change re-run, and a 1 GB upload.

    .venv/bin/python benchmarks/package_application.py [--size-mb 1024] [--repeat 3]

Servers, each in its own process on 127.0.0.1: moto (S3, STS) and the Panorama test server
of tests/support/panorama_server.py. Two measurements, printed side by side with targets:

  rerun     a 4-package application is packaged once, then ``panorama-cli
            package-application`` runs again as a fresh process with nothing changed:
            wall time (median) and the number of uploads (must be 0). Target <= 2 s.
  upload    one file of --size-mb MiB (incompressible) through
            panorama_cli.cloud.aws.s3_upload.upload_all (the code package-application uses), in a
            fresh child process: MB/s, the most UploadPart requests in flight at once (counted
            with botocore's before-send / response-received events; target >= 4) and the
            child's peak RSS (VmHWM; target <= 150 MB). Next to it, in the same run, a
            single-stream PutObject of the same file from a fresh child (what a plain
            ``aws s3api put-object`` does): MB/s and peak RSS. The multipart time is also
            split into sending the parts and CompleteMultipartUpload, which moto (one Python
            process) spends concatenating the parts; real S3 does not.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_RERUN_S = 2.0
TARGET_IN_FLIGHT = 4
TARGET_RSS_MB = 150.0
BUCKET = "panorama-bench-storage"
MiB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def aws_env(moto_url: str, panorama_url: str, config_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    (config_dir / "config").write_text("")
    (config_dir / "credentials").write_text("")
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=moto_url,
        AWS_ENDPOINT_URL_PANORAMA=panorama_url,
        AWS_CONFIG_FILE=str(config_dir / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(config_dir / "credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        NO_PROXY="127.0.0.1,localhost",
        PYTHONPATH=str(ROOT),
    )
    return env


SERVE_PANORAMA = """
import sys, time
from tests.support.panorama_server import PanoramaServer
server = PanoramaServer(bucket=sys.argv[1]).start()
print(server.endpoint_url, flush=True)
while True:
    time.sleep(3600)
"""


def start_servers(workdir: Path) -> tuple[list[subprocess.Popen], dict[str, str]]:
    moto_port = free_port()
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    panorama = subprocess.Popen(
        [sys.executable, "-c", SERVE_PANORAMA, BUCKET],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    panorama_url = panorama.stdout.readline().strip()
    wait_port(moto_port)
    env = aws_env(f"http://127.0.0.1:{moto_port}", panorama_url, workdir)
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket=BUCKET)
    return [moto, panorama], env


def cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "panorama_cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def bench_rerun(env: dict[str, str], workdir: Path, repeat: int) -> dict:
    from tests.support.cloud_project import make_app

    old = dict(os.environ)
    os.environ.update(env)
    try:
        root = make_app(workdir, packages=4, payload_size=256 * 1024)
    finally:
        os.environ.clear()
        os.environ.update(old)
    first = cli(env, root, "package-application", "--poll-interval", "0.1", "--json")
    if first.returncode != 0:
        raise RuntimeError(first.stderr)
    times, uploads = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        again = cli(env, root, "package-application", "--json")
        times.append(time.perf_counter() - start)
        if again.returncode != 0:
            raise RuntimeError(again.stderr)
        uploads.append(sum(p["uploaded_files"] for p in json.loads(again.stdout)["packages"]))
    return {"seconds": statistics.median(times), "uploads": max(uploads), "runs": times}


UPLOAD_CHILD = r"""
import json, sys, threading, time
from pathlib import Path
import boto3
from backpack.service_model import add_to_session
from panorama_cli.cloud.aws import s3_upload
from panorama_cli.cloud.aws.session import make_session

path, bucket, key, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
state = {"now": 0, "max": 0, "parts": 0}
lock = threading.Lock()

def before_send(**kwargs):
    with lock:
        state["now"] += 1
        state["parts"] += 1
        state["max"] = max(state["max"], state["now"])

def received(**kwargs):
    with lock:
        state["now"] -= 1

session = make_session()
events = session._session.get_component("event_emitter")
op = "UploadPart" if mode == "ours" else "PutObject"
events.register(f"before-send.s3.{op}", before_send)
events.register(f"response-received.s3.{op}", received)
marks = {}
def mark_complete(**kwargs):  # a before-call handler must return None (else it is the response)
    marks.setdefault("complete", time.perf_counter())

events.register("before-call.s3.CompleteMultipartUpload", mark_complete)
start = time.perf_counter()
if mode == "ours":
    upload = s3_upload.Upload(path, bucket, key, key)
    [result] = s3_upload.upload_all(session, [upload])
    assert result.error is None, result.error
else:
    client = session.client("s3")
    with path.open("rb") as body:
        client.put_object(Bucket=bucket, Key=key, Body=body, ACL=s3_upload.ACL)
seconds = time.perf_counter() - start
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
parts_seconds = marks.get("complete", start + seconds) - start
print(json.dumps({"seconds": seconds, "parts_seconds": parts_seconds, "max_in_flight": state["max"], "requests": state["parts"], "hwm_kb": hwm}))
"""


def bench_upload(env: dict[str, str], workdir: Path, size_mb: int) -> dict:
    path = workdir / "asset.bin"
    with path.open("wb") as out:
        for _ in range(size_mb):
            out.write(os.urandom(MiB))
    results = {}
    for mode in ("ours", "single"):
        key = f"bench/{mode}/asset.bin"
        done = subprocess.run(
            [sys.executable, "-c", UPLOAD_CHILD, str(path), BUCKET, key, mode],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        data = json.loads(done.stdout.strip().splitlines()[-1])
        data["mb_per_s"] = size_mb * MiB / 1e6 / data["seconds"]
        data["parts_mb_per_s"] = size_mb * MiB / 1e6 / data["parts_seconds"]
        results[mode] = data
    path.unlink()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="upload size, MiB")
    parser.add_argument("--repeat", type=int, default=3, help="no-change re-runs to time")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="pcli-bench-", dir=args.workdir))
    servers, env = start_servers(workdir)
    try:
        rerun = bench_rerun(env, workdir, args.repeat)
        upload = bench_upload(env, workdir, args.size_mb)
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)

    ours, single = upload["ours"], upload["single"]
    rows = [
        ("no-change re-run, 4 packages (s)", f"{rerun['seconds']:.2f}", f"<= {TARGET_RERUN_S}"),
        ("uploads in that re-run", str(rerun["uploads"]), "0"),
        (f"multipart upload {args.size_mb} MiB (MB/s)", f"{ours['mb_per_s']:.0f}", ""),
        ("  of which sending the parts (MB/s)", f"{ours['parts_mb_per_s']:.0f}", ""),
        ("  CompleteMultipartUpload (s)", f"{ours['seconds'] - ours['parts_seconds']:.1f}", ""),
        (
            "  UploadPart requests in flight (max)",
            str(ours["max_in_flight"]),
            f">= {TARGET_IN_FLIGHT}",
        ),
        ("  peak RSS (MB)", f"{ours['hwm_kb'] / 1024:.0f}", f"<= {TARGET_RSS_MB:.0f}"),
        (f"single PutObject {args.size_mb} MiB (MB/s)", f"{single['mb_per_s']:.0f}", ""),
        ("  peak RSS (MB)", f"{single['hwm_kb'] / 1024:.0f}", ""),
        ("multipart / single speed", f"{ours['mb_per_s'] / single['mb_per_s']:.2f}x", ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>8}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>8}  {target}")
    ok = (
        rerun["seconds"] <= TARGET_RERUN_S
        and rerun["uploads"] == 0
        and ours["max_in_flight"] >= TARGET_IN_FLIGHT
        and ours["hwm_kb"] / 1024 <= TARGET_RSS_MB
    )
    print("all targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
