"""Limits per node under ``run``: memory, processes, disk, /dev/shm, and the app's own
unprivileged user that sees only its world (real sandbox, real kernel limits)."""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path

import pytest

from panorama_cli.errors import UsageError
from panorama_cli.localrun import run_project
from panorama_cli.localrun.apps import cgroups
from panorama_cli.localrun.apps.app_user import UID_BASE, hand_over, node_uid
from panorama_cli.localrun.apps.limits import (
    MIB,
    NodeLimits,
    format_size,
    parse_size,
    size_argument,
)
from tests.localrun.helpers import make_project, processes_with

SMALL = NodeLimits(memory=256 * MIB, pids=64, storage=8 * MIB)
CHECKOUT = Path(__file__).resolve().parents[2]


def _notes(result) -> str:
    return "\n".join(result.report["notes"])


def test_sizes_read_as_people_write_them():
    assert parse_size("512M") == 512 * MIB and parse_size("4G") == 4 << 30
    assert parse_size("4GiB") == parse_size("4gb") == parse_size("4g") == 4 << 30
    assert parse_size("1.5G") == 3 << 29 and parse_size("1048576") == MIB
    with pytest.raises(UsageError):
        parse_size("lots")
    assert format_size(4 << 30) == "4 GiB" and format_size(256 * MIB) == "256 MiB"
    assert size_argument(4 << 30) == "4G" and parse_size(size_argument(3 * MIB + 1)) == 3 * MIB + 1
    assert NodeLimits().text("memory") == "memory limit 4 GiB"
    assert NodeLimits().text("pids") == "pids limit 512"
    assert NodeLimits().text("storage") == "storage limit 2 GiB"


def test_node_uids_are_their_own_and_stable():
    first = node_uid("/state/run", "a")
    assert first == node_uid("/state/run", "a") and first >= UID_BASE
    assert node_uid("/state/run", "b", [first]) != first
    assert node_uid("/state/run", "a", [first]) != first  # taken: the next free one


def test_hand_over_never_follows_a_link(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("changing owners needs root")
    outside = tmp_path / "outside.txt"
    outside.write_text("root's")
    folder = tmp_path / "storage"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "file").write_text("x")
    (folder / "link").symlink_to(outside)
    (folder / "dirlink").symlink_to(tmp_path)
    uid = node_uid(str(tmp_path), "n")
    hand_over(folder, uid)
    assert (folder / "sub" / "file").stat().st_uid == uid
    assert (folder / "link").lstat().st_uid == uid
    assert outside.stat().st_uid == 0 and tmp_path.stat().st_uid == 0


WORLD = """
import json, os
marker = open("/panorama/marker.txt").read()
def read(path):
    try:
        with open(path, "rb") as f:
            return "read %d bytes" % len(f.read())
    except OSError as e:
        return e.errno
def shm(size):
    try:
        with open("/dev/shm/" + marker, "wb") as f:
            f.write(b"x" * size)
        return "written"
    except OSError as e:
        return e.errno
facts = {
    "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
    "shadow": read("/etc/shadow"),
    "secret": read(open("/panorama/secret_path.txt").read()),
    "checkout": os.path.exists(open("/panorama/checkout.txt").read()),
    "project": os.path.exists(open("/panorama/project.txt").read()),
    "top": sorted(os.listdir("/")),
    "shm_small": shm(1 << 20),
    "shm_big": shm(80 << 20),
    "shm_listing": sorted(os.listdir("/dev/shm")),
}
open("/opt/aws/panorama/storage/facts.json", "w").write(json.dumps(facts))
"""


@pytest.fixture(params=["bwrap", "unshare"])
def mode(request, monkeypatch):
    """Each sandbox mode in turn; skip where it cannot run here."""
    from panorama_cli.localrun.apps import sandbox

    monkeypatch.setenv(sandbox.FORCE_ENV, request.param)
    sandbox.mode.cache_clear()
    if sandbox.mode() != request.param:
        sandbox.mode.cache_clear()
        pytest.skip(f"{request.param} cannot make the sandbox here")
    yield request.param
    monkeypatch.delenv(sandbox.FORCE_ENV)
    sandbox.mode.cache_clear()


def test_app_is_unprivileged_and_sees_only_its_world(tmp_path, mode):
    marker = f"psm_limits_probe_{uuid.uuid4().hex}"
    secret = CHECKOUT / f".{marker}-secret"  # a root-only file in a folder the app cannot see
    files = {
        "marker.txt": marker,
        "secret_path.txt": str(secret),
        "checkout.txt": str(CHECKOUT / "pyproject.toml"),
        "project.txt": str(tmp_path),
    }
    root = make_project(tmp_path, WORLD, files=files, cameras=(), hdmi=False)
    secret.write_text("root only")
    secret.chmod(0o600)
    try:
        result = run_project(root, grace_s=1.0)
    finally:
        secret.unlink()
        host_shm = Path("/dev/shm", marker).exists()
        Path("/dev/shm", marker).unlink(missing_ok=True)
    assert result.report["app_exit_code"] == 0, result.console
    storage = result.run_dir / "storage"
    facts = json.loads((storage / "facts.json").read_text())
    if os.geteuid() == 0:  # its own uid, no group of root's
        assert facts["uid"] >= UID_BASE and facts["gid"] == facts["uid"]
        assert facts["groups"] in ([], [facts["uid"]])
        assert (storage / "facts.json").stat().st_uid == facts["uid"]
    assert facts["shadow"] == 13  # EACCES: /etc is there, root's secrets are not readable
    assert facts["secret"] == 2 and not facts["checkout"] and not facts["project"]
    # the host's root: the allow-list, the appliance's folders, and the interpreter's prefix
    # at its own path (a virtualenv in a checkout: that folder alone)
    from panorama_cli.localrun.apps import sandbox

    interpreter = {Path(p).parts[1] for p in sandbox.interpreter_paths(sys.executable)}
    allowed = {Path(p).name for p in sandbox.ALLOWED_ROOT} | interpreter
    allowed |= {"dev", "home", "opt", "panorama", "proc", "root", "run", "tmp"}
    assert set(facts["top"]) <= allowed, facts["top"]
    assert not {"srv", "var", "mnt", "media"} & set(facts["top"]), facts["top"]
    # a private /dev/shm, capped (64 MiB), gone with the sandbox: never the host's
    assert facts["shm_small"] == "written" and facts["shm_big"] == 28  # ENOSPC
    assert facts["shm_listing"] == [marker] and not host_shm


MEMORY_HOG = """
import time
chunks = []
for _ in range(64):  # up to 2 GiB, touched page by page
    chunks.append(bytearray(32 << 20))
    open("/opt/aws/panorama/storage/allocated", "w").write(str(len(chunks) * 32))
time.sleep(30)
"""


def test_a_node_past_its_memory_limit_is_killed_and_says_so(tmp_path):
    root = make_project(tmp_path, MEMORY_HOG, cameras=(), hdmi=False, params={})
    started = time.monotonic()
    result = run_project(root, grace_s=1.0, limits=SMALL)
    assert time.monotonic() - started < 25, result.console
    assert result.report["exit_reason"] == "app-error"
    allocated = int((result.run_dir / "storage" / "allocated").read_text())
    assert allocated <= 256, allocated  # MiB: it never got past its limit
    if cgroups.availability()[0]:
        assert "node code_node stopped: memory limit 256 MiB" in _notes(result), result.report
    else:  # rlimits: a MemoryError in the app
        assert "MemoryError" in result.console


FORK_BOMB = """
import os, time
marker = open("/panorama/marker.txt").read()
children = 0
while True:
    try:
        if os.fork() == 0:
            os.execvp("sleep", ["sleep", "300", marker])
        children += 1
        open("/opt/aws/panorama/storage/children", "w").write(str(children))
    except OSError:
        time.sleep(0.01)
"""


def test_a_fork_bomb_is_stopped_at_its_pids_limit(tmp_path):
    marker = f"bomb-{uuid.uuid4().hex}"
    root = make_project(
        tmp_path, FORK_BOMB, files={"marker.txt": marker}, cameras=(), hdmi=False, params={}
    )
    started = time.monotonic()
    result = run_project(root, grace_s=1.0, limits=SMALL)
    assert time.monotonic() - started < 25, result.console
    assert result.report["exit_reason"] == "app-error"
    children = int((result.run_dir / "storage" / "children").read_text())
    assert children < 64, children
    if cgroups.availability()[0] or os.geteuid() == 0:
        assert children >= 32  # it got to its limit, not stopped for something else
    if cgroups.availability()[0]:
        assert "node code_node stopped: pids limit 64" in _notes(result), result.report
    deadline = time.monotonic() + 5
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with(marker) == []


DISK_FILLER = """
import os, time
os.makedirs("/opt/aws/panorama/storage/fill", exist_ok=True)
for n in range(256):  # 256 MiB in 1 MiB files, as fast as it can
    with open("/opt/aws/panorama/storage/fill/%d" % n, "wb") as f:
        f.write(os.urandom(1 << 20))
    time.sleep(0.02)
time.sleep(30)
"""


def _storage_stop() -> str:
    """run checks node storage every second (serve's own file systems: test_node_volumes)."""
    return "node code_node stopped: storage limit 8 MiB"


def test_a_node_past_its_storage_limit_is_stopped(tmp_path):
    root = make_project(tmp_path, DISK_FILLER, cameras=(), hdmi=False, params={})
    started = time.monotonic()
    result = run_project(root, grace_s=1.0, limits=SMALL)
    assert time.monotonic() - started < 25, result.console
    assert result.report["exit_reason"] == "app-error"
    assert _storage_stop() in _notes(result), result.report
    files = list((result.run_dir / "storage" / "fill").iterdir())
    fewest = 8 if "limit" in _storage_stop() else 6  # its own file system keeps some blocks
    assert fewest <= len(files) < 256  # stopped within about a second of passing it


def test_one_file_past_the_storage_limit_is_refused_at_once(tmp_path):
    app = """
    with open("/opt/aws/panorama/storage/big", "wb") as f:
        for _ in range(64):
            f.write(b"x" * (1 << 20))
    """
    root = make_project(tmp_path, app, cameras=(), hdmi=False, params={})
    result = run_project(root, grace_s=1.0, limits=SMALL)
    assert result.report["exit_reason"] == "app-error"
    assert (result.run_dir / "storage" / "big").stat().st_size <= 8 * MIB
    assert _storage_stop() in _notes(result), result.report


def test_limit_options_are_on_run_and_serve_with_their_defaults(tmp_path):
    from tests.support.cli_runner import run_cli_subprocess

    for command in ("run", "serve"):
        text = " ".join(run_cli_subprocess([command, "--help"], cwd=tmp_path).stdout.split())
        assert "--node-memory SIZE" in text and "[default: 4G]" in text
        assert "--node-pids N" in text and "[default: 512; x>=8]" in text
        assert "--node-storage SIZE" in text and "[default: 2G]" in text
    bad = run_cli_subprocess(["run", "--node-memory", "lots"], cwd=tmp_path)
    assert bad.exit_code == 2 and "--node-memory" in bad.stderr
