"""A node's own file system (root with loop devices): ENOSPC bounds its storage and logs,
inodes are bounded, nothing stays mounted after the run (real mkfs.ext4, real mounts)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from panorama_cli.localrun.apps import volumes
from panorama_cli.localrun.apps.limits import MIB, NodeLimits
from tests.localrun.helpers import make_project
from tests.localrun.serve.test_serve_e2e import Serve
from tests.support.polling import until

SMALL = NodeLimits(memory=256 * MIB, pids=64, storage=8 * MIB)

pytestmark = pytest.mark.skipif(
    not volumes.available()[0], reason=f"no node volumes here: {volumes.available()[1]}"
)


def _mounts_under(folder: Path) -> list[str]:
    return [p for p in volumes.mounted_at() if p.startswith(str(folder.resolve()))]


_LOOP = """
node = panoramasdk.node()
while True:
    node.outputs.video_out.put(node.inputs.video_in.get())
"""

FALLOCATE = (
    """
import os
import panoramasdk
done = 0
for n in range(8):  # 8 x 3 MiB reserved at once, each under RLIMIT_FSIZE: the attack
    # that beat the polling (8 x 1.9 GB under a 2 GiB limit)
    fd = os.open("/opt/aws/panorama/storage/big%d" % n, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, 3 << 20)
        done += 1
    except OSError as exc:
        print("refused", exc.errno)
    os.close(fd)
open("/opt/aws/panorama/logs/done-%d" % done, "w").close()  # empty: fits a full disk
"""
    + _LOOP
)

MANY_FILES = (
    """
import os
import panoramasdk
made = 0
try:
    for n in range(100000):
        open("/opt/aws/panorama/storage/f%d" % n, "w").close()
        made += 1
except OSError as exc:
    print("stopped", exc.errno, made)
os.remove("/opt/aws/panorama/storage/f0")  # an inode for the marker
open("/opt/aws/panorama/logs/done-%d" % made, "w").close()
"""
    + _LOOP
)


def _served(tmp_path: Path, app: str) -> int:
    """Serve ``app`` with an 8 MiB --node-storage until it wrote ``logs/done-N``; N (serve
    stopped with exit 0, nothing left mounted under ``tmp_path``, the image kept)."""
    root = make_project(tmp_path, app, params={})
    state = tmp_path / "state"
    serve = Serve(root, state, "--node-storage", "8M", "--node-memory", "256M")
    try:
        marker = until(
            lambda: next((state / "logs" / "code_node").glob("done-*"), None), 60, "the app"
        )
        assert _mounts_under(tmp_path), "serve mounted no node volume"
    finally:
        code = serve.stop()
    assert code == 0, serve.output()
    assert _mounts_under(tmp_path) == []
    image = state / "volumes" / "code_node.ext4"
    assert image.is_file() and image.stat().st_size == SMALL.storage  # kept: storage lasts
    assert image.stat().st_blocks * 512 <= SMALL.storage  # all the host gives the node
    return int(marker.name.split("-")[1])


def test_fallocate_past_the_limit_gets_enospc_and_the_host_holds_no_more(tmp_path):
    reserved = _served(tmp_path, FALLOCATE)
    assert 0 < reserved < 8  # 3 MiB each: ENOSPC after the second, as on a full device


def test_many_empty_files_hit_the_inode_bound(tmp_path):
    made = _served(tmp_path, MANY_FILES)
    assert 0 < made <= SMALL.storage // volumes.BYTES_PER_INODE


def test_a_serve_volume_lasts_and_a_stale_mount_is_cleared(tmp_path):
    state = tmp_path / "state"
    logs, storage = state / "logs" / "n", state / "storage" / "n"
    storage.mkdir(parents=True)
    (storage / "old.txt").write_text("before the volume")  # migrated once
    image = state / "volumes" / "n.ext4"
    first = volumes.attach("n", image, SMALL.storage, logs, storage, None, keep=True)
    assert first is not None and (storage / "old.txt").read_text() == "before the volume"
    (storage / "kept.txt").write_text("kept")
    # a SIGKILLed serve: its mounts stay; a new process (no registry) clears and remounts
    volumes._mounted.clear()
    again = volumes.attach("n", image, SMALL.storage, logs, storage, None, keep=True)
    try:
        assert again is not None and (storage / "kept.txt").read_text() == "kept"
        assert image.stat().st_size == SMALL.storage
    finally:
        volumes.release_all()
    assert _mounts_under(tmp_path) == []
    assert not (storage / "kept.txt").exists()  # only in the image, which lasts
    assert os.path.getsize(image) == SMALL.storage
