"""panorama-cli run on real apps: real processes in a sandbox, real video, real signals."""

from __future__ import annotations

import json

import numpy as np

from panorama_cli.localrun import run_project
from panorama_cli.localrun.report import KEYS
from tests.localrun.helpers import make_project, processes_with, video

PASS_THROUGH = """
import json
import panoramasdk


class Application(panoramasdk.node):
    def __init__(self):  # like real apps: no super().__init__()
        self.threshold = self.inputs.threshold.get()
        self.seen = []

    def process(self):
        streams = self.inputs.video_in.get()
        for stream in streams:
            image = stream.image
            assert image is stream.image and image.flags.writeable and image.dtype.name == "uint8"
            image[:16, :16] = (0, 0, 255)
            stream.add_rect(0.25, 0.25, 0.75, 0.75)
            stream.add_label("frame %d" % len(self.seen), 0.1, 0.1)
            self.seen.append([stream.stream_id, list(stream.time_stamp), image.shape[:2]])
        self.outputs.video_out.put(streams)
        with open("/opt/aws/panorama/storage/state.json", "w") as f:
            json.dump({"threshold": self.threshold, "type": type(self.threshold).__name__,
                       "name": __name__, "seen": self.seen}, f)


if __name__ == "__main__":
    app = Application()
    while True:
        app.process()
"""


def test_main_guard_app_gets_frames_draws_and_annotates(tmp_path):
    root = make_project(tmp_path, PASS_THROUGH)
    result = run_project(root, frames=6, cameras={"front_camera": video()}, grace_s=1.0)
    report = result.report
    assert tuple(report) == KEYS
    assert report["exit_reason"] == "frames" and result.exit_status == 0, result.console
    assert report["cameras"]["front_camera"]["frames"] == 6
    assert report["hdmi"]["front_camera"] == {"frames": 6, "path": "hdmi/front_camera.mp4"}
    assert (result.run_dir / "hdmi" / "front_camera.mp4").stat().st_size > 1000
    assert report["nodes"]["code_node"]["get_ms"]["count"] >= 5
    assert json.loads((result.run_dir / "report.json").read_text()) == report
    state = json.loads((result.run_dir / "storage" / "state.json").read_text())
    assert state["name"] == "__main__"
    assert state["threshold"] == 60.0 and state["type"] == "float"  # float32 written as 60
    assert [s[0] for s in state["seen"]] == ["front_camera"] * 6
    assert state["seen"][0][2] == [576, 768]
    stamps = [tuple(s[1]) for s in state["seen"]]
    assert stamps == sorted(stamps) and stamps[0][0] > 1_700_000_000
    # drawing in place reaches the output; add_rect/add_label are metadata only
    frames = result.hdmi_frames["front_camera"]
    assert len(frames) == 6
    assert (frames[0][:16, :16] == (0, 0, 255)).all()
    assert not (frames[0][200:300, 200:300] == (0, 0, 255)).all()
    assert result.annotations["front_camera"][3] == {
        "rects": [(0.25, 0.25, 0.75, 0.75)],
        "labels": [("frame 3", 0.1, 0.1)],
    }


BARE_EXCEPT = """
import panoramasdk

node = panoramasdk.node()
while True:
    try:
        node.outputs.video_out.put(node.inputs.video_in.get())
    except:
        pass
"""


def test_bare_except_infinite_loop_is_stopped_at_frames(tmp_path):
    root = make_project(tmp_path, BARE_EXCEPT, params={})
    result = run_project(root, frames=3, cameras={"front_camera": video()}, grace_s=0.5)
    assert result.report["exit_reason"] == "frames", result.console
    assert result.exit_status == 0
    assert result.report["hdmi"]["front_camera"]["frames"] == 3
    assert result.report["app_exit_code"] != 0  # it had to be killed


CRASH = """
import panoramasdk

class App(panoramasdk.node):
    def __init__(self):
        super().__init__()
        self.count = 0

    def step(self):
        streams = self.inputs.video_in.get()
        self.count += 1
        if self.count == 5:
            raise_at_frame_five(self.count)
        self.outputs.video_out.put(streams)


def raise_at_frame_five(n):
    return n / 0


if __name__ == "__main__":
    app = App()
    while True:
        app.step()
"""


def test_crash_at_frame_five_is_an_app_error_with_its_traceback(tmp_path):
    root = make_project(tmp_path, CRASH, params={})
    result = run_project(root, frames=50, cameras={"front_camera": video()}, grace_s=1.0)
    assert result.report["exit_reason"] == "app-error"
    assert result.report["app_exit_code"] == 1 and result.exit_status == 1
    assert result.report["hdmi"]["front_camera"]["frames"] == 4
    console = result.console
    assert 'File "/panorama/app.py", line 18, in raise_at_frame_five' in console
    assert "ZeroDivisionError: division by zero" in console
    assert "panorama_cli" not in console  # the app's traceback, not the runner's


MP_CHILD = """
import multiprocessing, time
import panoramasdk


def helper():
    while True:
        try:
            open("/opt/aws/panorama/storage/child-alive", "w").close()
            time.sleep(0.05)
        except BaseException:
            pass


if __name__ == "__main__":
    child = multiprocessing.Process(target=helper)
    child.start()
    node = panoramasdk.node()
    while True:
        node.outputs.video_out.put(node.inputs.video_in.get())
"""


def test_multiprocessing_child_does_not_outlive_the_app(tmp_path):
    root = make_project(tmp_path, MP_CHILD, params={})
    out = tmp_path / "out"
    result = run_project(
        root, frames=4, cameras={"front_camera": video()}, grace_s=0.5, output_dir=out
    )
    assert result.report["exit_reason"] == "frames", result.console
    assert (out / "storage" / "child-alive").exists()  # the child did run
    # every app process has the run's .bin folder bound in its sandbox
    assert processes_with(str(out / ".bin")) == []
    assert np.asarray(result.hdmi_frames["front_camera"]).shape == (4, 576, 768, 3)


THREADS = """
import queue, threading
import panoramasdk

node = panoramasdk.node()
frames = queue.Queue()


def reader():
    got = 0
    while True:
        frames.put(node.inputs.video_in.get())
        got += 1
        if got == 8:  # the 9th get ends the node (SIGINT): let the 8th put land first
            frames.join()


threading.Thread(target=reader, daemon=True).start()
while True:
    node.outputs.video_out.put(frames.get())
    frames.task_done()
"""


def test_get_in_one_thread_put_in_another(tmp_path):
    root = make_project(tmp_path, THREADS, params={})
    result = run_project(root, frames=8, cameras={"front_camera": video()}, grace_s=0.5)
    assert result.report["exit_reason"] == "frames", result.console
    assert result.report["hdmi"]["front_camera"]["frames"] == 8


POOL = """
import multiprocessing
import panoramasdk


def paint(stream):
    stream.image[:4, :4] = 77  # in another process: the same shared-memory pixels
    stream.add_label("from a child", 0.5, 0.5)
    return stream


if __name__ == "__main__":
    node = panoramasdk.node()
    with multiprocessing.Pool(1) as pool:
        while True:
            streams = node.inputs.video_in.get()
            assert streams[0].image.shape == (576, 768, 3)  # mapped here first
            streams = pool.map(paint, streams)
            node.outputs.video_out.put(streams)
"""


def test_media_sent_to_a_multiprocessing_pool_shares_its_pixels(tmp_path):
    root = make_project(tmp_path, POOL, params={})
    result = run_project(root, frames=3, cameras={"front_camera": video()}, grace_s=0.5)
    assert result.report["exit_reason"] == "frames", result.console
    assert all((f[:4, :4] == 77).all() for f in result.hdmi_frames["front_camera"])
    assert result.annotations["front_camera"][2]["labels"] == [("from a child", 0.5, 0.5)]
