"""Frames on their way to the app: decoded straight into the port's shared-memory ring, every
pixel intact, and a media's pixels valid until eight more frames reached the port."""

from __future__ import annotations

import json

from panorama_cli.localrun import run_project
from tests.localrun.helpers import make_project
from tests.localrun.test_localrun_sources import write_video

HOLDS_EIGHT = """
import json
import panoramasdk

node = panoramasdk.node()
held, seen, bad, cached = [], [], [], []
while True:
    media = node.inputs.video_in.get()[0]
    seen.append(int(media.image[0, 0, 0]))
    cached.append(media.is_cached)
    held = (held + [(media, seen[-1])])[-8:]
    bad += [(n, int(m.image[5, 5, 1])) for m, n in held if int(m.image[5, 5, 1]) != n]
    node.outputs.video_out.put([media])
    with open("/opt/aws/panorama/storage/frames.json", "w") as f:
        json.dump({"seen": seen, "bad": bad, "cached": cached}, f)
"""


def test_fast_frames_reach_the_app_whole_and_stay_valid_for_eight_more(tmp_path):
    video = write_video(tmp_path / "v.avi", 30)
    root = make_project(tmp_path, HOLDS_EIGHT, params={})
    result = run_project(root, cameras={"front_camera": str(video)}, grace_s=1.0)
    assert result.report["exit_reason"] == "end-of-input", result.console
    state = json.loads((result.run_dir / "storage" / "frames.json").read_text())
    assert state["seen"] == list(range(30))
    assert not any(state["cached"])  # no frame is delivered twice
    assert state["bad"] == []  # the reader decoding ahead never overwrote a held frame
    frames = result.hdmi_frames["front_camera"]
    assert [int(f[47, 63, 2]) for f in frames] == list(range(30))


def test_real_time_frames_stay_valid_while_the_camera_drops(tmp_path):
    video = write_video(tmp_path / "v.avi", 250, fps=100)
    slow = HOLDS_EIGHT.replace(
        "    node.outputs", "    __import__('time').sleep(0.03)\n    node.outputs"
    )
    root = make_project(tmp_path, slow, params={})
    result = run_project(root, cameras={"front_camera": str(video)}, fast=False, grace_s=1.0)
    assert result.report["exit_reason"] == "end-of-input", result.console
    camera = result.report["cameras"]["front_camera"]
    assert camera["dropped"] > camera["frames"] > 20  # the 11-slot ring wrapped many times
    state = json.loads((result.run_dir / "storage" / "frames.json").read_text())
    assert len(state["seen"]) == camera["frames"] and state["seen"] == sorted(set(state["seen"]))
    assert not any(state["cached"])  # a slow app waits for a new frame, never gets one again
    assert state["bad"] == []  # dropped frames' slots are reused first
