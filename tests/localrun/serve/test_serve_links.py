"""Links, FIFOs and folders an app puts in its logs and storage are never followed by serve:
app log rotation, clip listing and download, the state folder's clean-up, the recording
folder, and run's console readers. Each "host file" is a file outside the app's folders that
must stay as it was."""

from __future__ import annotations

import os
import shutil

import httpx
import pytest

from panorama_cli.errors import UserError
from panorama_cli.localrun.serve.clips import list_clips, open_clip
from panorama_cli.localrun.serve.http import HttpServer
from panorama_cli.localrun.serve.metrics import ModelLatency
from panorama_cli.localrun.serve.state_dir import open_state_dir, rotate_app_logs
from tests.localrun.serve.fake_view import FakeView

SECRET = "root:$6$secret:19000:0:99999:7:::\n"


@pytest.fixture
def host(tmp_path):
    folder = tmp_path / "host"
    folder.mkdir()
    (folder / "shadow").write_text(SECRET)
    (folder / "big").write_bytes(b"h" * 4096)  # past the rotation size used below
    return folder


def test_app_log_rotation_neither_copies_nor_truncates_a_link_target(tmp_path, host):
    logs = tmp_path / "logs" / "code_node"
    logs.mkdir(parents=True)
    (logs / "evil.log").symlink_to(host / "big")
    (logs / "app.log").write_bytes(b"a" * 2000)
    (logs / "app.log.1").symlink_to(host / "shadow")  # the copy's name: replaced, not written
    (logs / "app.log.2").symlink_to(host / "shadow")
    os.mkfifo(logs / "fifo.log")
    (logs / "dir.log").mkdir()
    assert rotate_app_logs(logs, (1000, 3)) == [logs / "app.log"]
    assert (host / "big").read_bytes() == b"h" * 4096 and (host / "shadow").read_text() == SECRET
    assert not (logs / "evil.log.1").exists()  # the link was not copied for the app to read
    assert (logs / "app.log").read_bytes() == b""
    assert (logs / "app.log.1").read_bytes() == b"a" * 2000
    assert (logs / "app.log.2").is_symlink()  # a link is not shifted on (not "regular")
    (logs / "app.log").write_bytes(b"b" * 2000)
    assert rotate_app_logs(logs, (1000, 3)) == [logs / "app.log"]
    assert (logs / "app.log.2").read_bytes() == b"a" * 2000  # regular copies shift
    assert (logs / "app.log.1").read_bytes() == b"b" * 2000
    assert (host / "shadow").read_text() == SECRET


def test_a_hard_link_to_a_file_elsewhere_is_not_truncated(tmp_path):
    outside = tmp_path / "host_file"  # same file system: a hard link is possible
    outside.write_bytes(b"z" * 1000)
    logs = tmp_path / "logs"
    logs.mkdir()
    os.link(outside, logs / "x.log")
    assert rotate_app_logs(logs, (100, 2)) == []
    assert outside.read_bytes() == b"z" * 1000 and not (logs / "x.log.1").exists()


def _storage_with_links(root, host):
    """state/storage/code_node/clips with one real clip and the app's attempts."""
    logs = root / "logs"
    logs.mkdir(parents=True)
    (logs / "serve.log").write_text("serve's own log\n")
    clips = root / "storage" / "code_node" / "clips"
    clips.mkdir(parents=True)
    (clips / "20260101T000000Z_crowd.mp4").write_bytes(b"\0\0\0\x18ftypmp42" + bytes(10))
    (clips / "leak.mp4").symlink_to("../../../logs/serve.log")
    (clips / "shadow.mp4").symlink_to(host / "shadow")
    os.mkfifo(clips / "fifo.mp4")
    (clips / "dir.mp4").mkdir()
    other = root / "storage" / "other_node"
    other.mkdir()
    (host / "clips").mkdir()
    (host / "clips" / "host.mp4").write_text(SECRET)
    (other / "clips").symlink_to(host / "clips")  # the clips folder itself a link
    (root / "storage" / "linked_node").symlink_to(host)


def test_clips_lists_regular_files_only(tmp_path, host):
    root = tmp_path / "state"
    _storage_with_links(root, host)
    clips = list_clips(root / "storage")
    assert [(c["node"], c["name"], c["bytes"]) for c in clips] == [
        ("code_node", "20260101T000000Z_crowd.mp4", 22)
    ]
    assert open_clip(root / "storage", "code_node", "leak.mp4") is None
    assert open_clip(root / "storage", "code_node", "fifo.mp4") is None
    assert open_clip(root / "storage", "other_node", "host.mp4") is None
    assert open_clip(root / "storage", "linked_node", "shadow") is None


class LinkView(FakeView):
    """Lists what list_clips finds, plus stale entries for names the app turned into links
    after the listing (the download must still refuse them)."""

    def clips(self) -> list[dict]:
        listed = list_clips(self.state_root / "storage")
        stale = [
            {"node": "code_node", "name": name, "path": f"storage/code_node/clips/{name}",
             "bytes": 1, "created": 0.0}
            for name in ("leak.mp4", "shadow.mp4", "fifo.mp4")
        ]  # fmt: skip
        return listed + stale


def test_clip_downloads_and_the_listing_never_follow_a_link(tmp_path, host):
    root = tmp_path / "state"
    view = LinkView(root)  # makes storage/code_node/clips/event-1.mp4
    shutil.rmtree(root / "storage")
    _storage_with_links(root, host)
    server = HttpServer(view, "127.0.0.1", 0, ModelLatency())
    server.start()
    try:
        listed = httpx.get(server.url + "/api/clips").json()
        real = [c for c in listed if c["bytes"] != 1]
        assert [c["name"] for c in real] == ["20260101T000000Z_crowd.mp4"]  # no link sizes
        r = httpx.get(server.url + "/clips/code_node/20260101T000000Z_crowd.mp4")
        assert r.status_code == 200 and r.content.startswith(b"\0\0\0\x18ftyp")
        ranged = httpx.get(
            server.url + "/clips/code_node/20260101T000000Z_crowd.mp4",
            headers={"Range": "bytes=4-7"},
        )
        assert (ranged.status_code, ranged.content) == (206, b"ftyp")
        for name in ("leak.mp4", "shadow.mp4", "fifo.mp4"):
            r = httpx.get(server.url + f"/clips/code_node/{name}", timeout=5)
            assert r.status_code == 404, (name, r.text)
        # a clip swapped for a link after it was listed
        clip = root / "storage" / "code_node" / "clips" / "20260101T000000Z_crowd.mp4"
        clip.unlink()
        clip.symlink_to(host / "shadow")
        r = httpx.get(server.url + "/clips/code_node/20260101T000000Z_crowd.mp4")
        assert r.status_code == 404 and SECRET not in r.text
    finally:
        server.stop()
    assert len(os.listdir(f"/proc/{os.getpid()}/fd")) < 200  # the opened clips were closed


def test_state_cleanup_never_follows_a_link_in_run(tmp_path, host):
    assert shutil.rmtree.avoids_symlink_attacks  # fd-based on Linux: checked, not assumed
    root = tmp_path / "state"
    (root / "run").mkdir(parents=True)
    (root / "run" / "shims").symlink_to(host)
    (root / "run" / "ctl.sock").symlink_to(host / "shadow")
    state = open_state_dir(root)
    state.release()
    assert sorted(os.listdir(host)) == ["big", "shadow"]
    assert (host / "shadow").read_text() == SECRET
    assert (root / "run").is_dir() and os.listdir(root / "run") == []
    shutil.rmtree(root / "run")
    (root / "run").symlink_to(host)  # run/ itself a link: removed, not emptied
    state = open_state_dir(root)
    state.release()
    assert not (root / "run").is_symlink() and (root / "run").is_dir()
    assert sorted(os.listdir(host)) == ["big", "shadow"]


def test_a_recording_folder_where_apps_write_is_refused(tmp_path):
    root = tmp_path / "state"
    for inside in (root / "storage" / "code_node", root / "logs"):
        with pytest.raises(UserError, match="apps"):
            open_state_dir(root, inside / "rec")
    state = open_state_dir(root, tmp_path / "recordings")
    state.release()


def test_recorder_ignores_links_named_like_segments_and_refuses_a_linked_stream_folder(
    tmp_path, host
):
    from panorama_cli.localrun.serve.recorder import Recorder

    recorder = Recorder(tmp_path / "rec", segment_s=1.0, max_files=3, live=False)
    (tmp_path / "rec" / "cam").mkdir()
    (tmp_path / "rec" / "cam" / "cam-00007.mp4").symlink_to(host / "shadow")
    (tmp_path / "rec" / "cam" / "cam-00001.mp4").write_bytes(b"x")
    assert [p.name for p in recorder.segments("cam")] == ["cam-00001.mp4"]
    assert recorder._next_index("cam") == 2
    (tmp_path / "rec" / "linked").symlink_to(host)
    with pytest.raises(ValueError, match="not a folder of its own"):
        recorder.add_stream("linked", 10, 160, 120)
    assert sorted(os.listdir(host)) == ["big", "shadow"]


def test_run_console_readers_skip_links(tmp_path, host):
    from panorama_cli.localrun.apps.appliance import console_tail
    from panorama_cli.localrun.report import RunResult

    logs = tmp_path / "run" / "logs"
    (logs / "node_a").mkdir(parents=True)
    (logs / "node_a" / "console.log").write_text("hello from a\n")
    (logs / "node_b").mkdir()
    (logs / "node_b" / "console.log").symlink_to(host / "shadow")
    (logs / "node_c").symlink_to(host)
    (host / "console.log").write_text(SECRET)
    assert console_tail(logs) == "hello from a\n"
    result = RunResult(report={}, run_dir=tmp_path / "run", exit_status=0)
    assert result.console == "hello from a\n"


ATTACK = """
import os
import panoramasdk

LOGS, CLIPS = "/opt/aws/panorama/logs", "/opt/aws/panorama/storage/clips"
os.makedirs(CLIPS, exist_ok=True)
for name in ("console.log", "evil.log"):
    try:
        os.unlink(os.path.join(LOGS, name))
    except FileNotFoundError:
        pass
    os.symlink(HOST, os.path.join(LOGS, name))
os.symlink("../../../logs/serve.log", os.path.join(CLIPS, "leak.mp4"))
os.symlink(HOST, os.path.join(CLIPS, "shadow.mp4"))
print("planted", flush=True)
node = panoramasdk.node()
while True:
    node.outputs.video_out.put(node.inputs.video_in.get())
"""


def test_serve_with_a_hostile_app_writes_reads_and_serves_no_host_file(tmp_path):
    from tests.localrun.helpers import make_project, require_sandbox
    from tests.localrun.serve.test_serve_e2e import Serve, _get
    from tests.support.polling import until

    require_sandbox()
    host = tmp_path / "host" / "shadow"
    host.parent.mkdir()
    host.write_text(SECRET)
    root = make_project(tmp_path, f"HOST = {str(host)!r}\n" + ATTACK)
    state = tmp_path / "state"
    clips = state / "storage" / "code_node" / "clips"
    clips.mkdir(parents=True)
    broken = clips / ".20260101T000000Z_killed.mp4"  # a clip an app killed with serve left
    broken.write_bytes(b"\0\0\0\x1cftypisom" + bytes(16) + b"\0\0\0\0mdat" + bytes(64))
    serve = Serve(root, state)
    try:
        serve.wait_ready()
        console = state / "logs" / "code_node" / "console.log"
        until(lambda: console.is_file() and "planted" in console.read_text(), 20, "the app's line")
        assert host.read_text() == SECRET
        assert (state / "logs" / "code_node" / "console.log.not-followed").is_symlink()
        assert _get(f"{serve.base}/api/clips", token=serve.token) == (200, b"[]")
        for name in ("leak.mp4", "shadow.mp4"):
            code, body = _get(f"{serve.base}/clips/code_node/{name}", token=serve.token)
            assert code == 404 and b"serve" not in body and SECRET.encode() not in body
        assert not broken.exists()
    finally:
        assert serve.stop() == 0, serve.output()
    assert host.read_text() == SECRET
    log = (state / "logs" / "serve.log").read_text()
    assert "partial clip 20260101T000000Z_killed.mp4 held no whole fragment: removed" in log
    assert "console.log was a symbolic link" in serve.output() + log
