"""Graphs beyond one camera: the official sample's multi-camera override, model nodes."""

from __future__ import annotations

import json
from pathlib import Path

from panorama_cli.localrun import run_project
from tests.localrun.helpers import copy_sample, make_chain_project, make_project, video

SAMPLE_APP = """
import json
import numpy as np
import panoramasdk


class Application(panoramasdk.node):
    def __init__(self):
        self.threshold = self.inputs.threshold.get()
        self.region = self.inputs.region.get()
        self.log = []

    def process_streams(self):
        streams = self.inputs.video_in.get()
        for stream in streams:
            data = np.full((1, 3, 224, 224), 2.0, dtype=np.float32)
            out_a = self.call({"data": data}, "model_node")
            out_b = self.call("model_node", data.ravel())  # reference order, flat array reshaped
            out_c = self.call(stream, "model_node")        # media input
            self.log.append({
                "stream": stream.stream_id,
                "types": [type(o).__name__ for o in (out_a, out_b, out_c)],
                "a": out_a[0].tolist(), "b": out_b[0].tolist(), "c_shape": list(out_c[0].shape),
                "writeable": bool(out_a[0].flags.writeable), "dtype": str(out_a[0].dtype),
            })
        try:
            self.call({"wrong_name": np.zeros((1, 3, 224, 224), np.float32)}, "model_node")
        except ValueError as e:
            self.bad_name = str(e)
        self.outputs.video_out.put(streams)
        json.dump({"log": self.log, "threshold": self.threshold, "region": self.region,
                   "bad_name": self.bad_name},
                  open("/opt/aws/panorama/storage/sample.json", "w"))


def main():
    app = Application()
    while True:
        app.process_streams()


main()
"""


def standin_model(path: Path) -> Path:
    """A real ONNX model with the sample's input: data[1,3,224,224] -> channel means [1,3]."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["data"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["scores"]),
        ],
        "standin",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 224, 224])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_two_cameras_through_the_official_multicam_override_with_a_model(tmp_path):
    root = copy_sample(tmp_path, SAMPLE_APP)
    override = root / "graphs" / "my-app" / "override-multicam.json"
    model = standin_model(tmp_path / "standin.onnx")
    result = run_project(
        root,
        frames=3,
        overrides=[override],
        cameras={"CAMERA_A": video(), "CAMERA_B": video()},
        models={"model_node": model},
        grace_s=1.0,
    )
    report = result.report
    assert report["exit_reason"] == "frames", result.console
    assert {n: c["frames"] for n, c in report["cameras"].items()} == {"CAMERA_A": 3, "CAMERA_B": 3}
    assert sorted(report["hdmi"]) == ["CAMERA_A", "CAMERA_B"]
    assert all(h["frames"] == 3 for h in report["hdmi"].values())
    assert report["models"]["model_node"]["calls"] == 3 * 2 * 3
    assert report["models"]["model_node"]["backend"].startswith("onnxruntime")
    assert report["nodes"]["code_node"]["call_ms"]["count"] >= 12
    storage = result.run_dir / "storage" / "sample.json"
    state = json.loads(storage.read_text())
    assert state["threshold"] == 20.0 and state["region"] == "MY_REGION"  # override value
    assert [e["stream"] for e in state["log"][:2]] == ["CAMERA_A", "CAMERA_B"]
    first = state["log"][0]
    assert first["types"] == ["tuple", "tuple", "tuple"]
    assert first["a"] == [[2.0, 2.0, 2.0]] and first["b"] == first["a"]
    assert first["c_shape"] == [1, 3]
    assert first["writeable"] is True and first["dtype"] == "float32"
    assert "wrong_name" in state["bad_name"]
    assert (result.run_dir / "hdmi" / "CAMERA_B.mp4").stat().st_size > 1000


DETECT = """
import panoramasdk

node = panoramasdk.node()
while True:
    streams = node.inputs.video_in.get()
    for s in streams:
        s.add_rect(0.1, 0.2, 0.3, 0.4)
    node.outputs.video_out.put(streams)
"""

OVERLAY = """
import os, panoramasdk

node = panoramasdk.node()
count = 0
while True:
    streams = node.inputs.video_in.get()
    for s in streams:
        s.image[-8:, -8:] = 255
        s.add_label("n=%d" % count, 0.5, 0.5)
        count += 1
    node.outputs.video_out.put(streams)
    open("/opt/aws/panorama/storage/overlay-%s" % os.getpid(), "w").write(str(count))
"""


def test_business_logic_nodes_run_as_processes_wired_by_edges(tmp_path):
    root = make_chain_project(tmp_path, {"detect_node": DETECT, "overlay_node": OVERLAY})
    result = run_project(root, frames=5, cameras={"cam": video()}, grace_s=0.5)
    report = result.report
    assert report["exit_reason"] == "frames", result.console
    assert sorted(report["nodes"]) == ["detect_node", "overlay_node"]
    assert report["hdmi"]["cam"]["frames"] == 5
    notes = result.annotations["cam"]
    assert notes[4] == {"rects": [(0.1, 0.2, 0.3, 0.4)], "labels": [("n=4", 0.5, 0.5)]}
    assert (result.hdmi_frames["cam"][0][-8:, -8:] == 255).all()
    # one run-folder subfolder per business-logic node
    assert (result.run_dir / "logs" / "detect_node" / "console.log").is_file()
    assert list((result.run_dir / "storage" / "overlay_node").glob("overlay-*"))
    assert not list((result.run_dir / "storage" / "detect_node").iterdir())


def test_camera_package_stream_url_default_is_the_source(tmp_path):
    from tests.localrun.helpers import ACCOUNT, _dump
    from tests.localrun.test_run_apps import PASS_THROUGH

    root = make_project(tmp_path, PASS_THROUGH, cameras=("lobby",))
    _dump(
        root / "packages" / f"{ACCOUNT}-LOBBY-1.0" / "package.json",
        {
            "nodePackage": {
                "envelopeVersion": "2021-01-01",
                "name": "LOBBY",
                "version": "1.0",
                "assets": [
                    {
                        "name": "rtsp_asset",
                        "implementations": [
                            {"type": "system", "assetUri": "source/video/camera/rtsp/source_rtsp"}
                        ],
                    }
                ],
                "interfaces": [
                    {
                        "name": "rtsp_interface",
                        "category": "media_source",
                        "asset": "rtsp_asset",
                        "inputs": [{"name": "streamUrl", "type": "string", "default": video()}],
                        "outputs": [{"name": "video_out", "type": "media"}],
                    }
                ],
            }
        },
    )
    graph_path = root / "graphs" / "app" / "graph.json"
    graph = json.loads(graph_path.read_text())
    body = graph["nodeGraph"]
    body["packages"] = [p for p in body["packages"] if "abstract_rtsp" not in p["name"]]
    body["packages"].append({"name": f"{ACCOUNT}::LOBBY", "version": "1.0"})
    for node in body["nodes"]:
        if node["name"] == "lobby":
            node["interface"] = f"{ACCOUNT}::LOBBY.rtsp_interface"
    graph_path.write_text(json.dumps(graph, indent=4))
    result = run_project(root, frames=2, grace_s=0.5)  # no cameras= binding
    assert result.report["exit_reason"] == "frames", result.console
    assert result.report["cameras"]["lobby"]["frames"] == 2


def test_end_of_input_ends_the_run(tmp_path):
    import cv2
    import numpy as np

    from tests.localrun.test_run_apps import PASS_THROUGH

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        cv2.imwrite(str(frames / f"{i:03d}.png"), np.full((48, 64, 3), 40 * i, np.uint8))
    root = make_project(tmp_path, PASS_THROUGH)
    result = run_project(root, cameras={"front_camera": str(frames)}, grace_s=0.5)
    assert result.report["exit_reason"] == "end-of-input" and result.exit_status == 0
    assert result.report["cameras"]["front_camera"]["frames"] == 3
    assert [int(f[30, 30, 0]) for f in result.hdmi_frames["front_camera"]] == [0, 40, 80]


PEOPLE_COUNTER = """
import panoramasdk
from backpack.yolox import PERSON, detect, letterbox


class PeopleCounter(panoramasdk.node):
    def __init__(self):
        self.threshold = self.inputs.threshold.get() / 100.0

    def process(self):
        streams = self.inputs.video_in.get()
        for stream in streams:
            tensor, ratio = letterbox(stream.image)
            (output,) = self.call({"images": tensor}, "detector")
            people = detect(output, ratio, classes=(PERSON,), score_threshold=self.threshold)
            for person in people:
                stream.add_rect(*person.normalized(stream.image.shape))
            stream.add_label("people: %d" % len(people), 0.05, 0.05)
        self.outputs.video_out.put(streams)


if __name__ == "__main__":
    app = PeopleCounter()
    while True:
        app.process()
"""


def test_people_counter_with_yolox_nano_and_backpack(tmp_path):
    from tests.localrun.helpers import add_model_node, inject_backpack, require
    from tests.support.paths import SHARED

    yolox = require(SHARED / "models" / "yolox_nano" / "yolox_nano.onnx")
    root = make_project(tmp_path, PEOPLE_COUNTER)
    inject_backpack(root)
    add_model_node(root, "detector", "images", (1, 3, 416, 416))
    result = run_project(
        root,
        frames=3,
        cameras={"front_camera": video()},
        models={"detector": yolox},
        grace_s=0.5,
    )
    report = result.report
    assert report["exit_reason"] == "frames", result.console
    assert report["models"]["detector"]["calls"] == 3
    assert report["models"]["detector"]["mean_ms"] > 0
    for notes in result.annotations["front_camera"]:
        rects, (label,) = notes["rects"], notes["labels"]
        assert len(rects) >= 2 and label == (f"people: {len(rects)}", 0.05, 0.05)
        assert all(
            0 <= left < right <= 1 and 0 <= top < bottom <= 1 for left, top, right, bottom in rects
        )
    assert (result.run_dir / "hdmi" / "front_camera.mp4").stat().st_size > 1000


RTSP_APP = """
import json
import panoramasdk

node = panoramasdk.node()
seen = []
while True:
    streams = node.inputs.video_in.get()
    seen += [[s.stream_id, s.stream_uri, list(s.image.shape)] for s in streams]
    json.dump(seen, open("/opt/aws/panorama/storage/seen.json", "w"))
    node.outputs.video_out.put(streams)
"""


def test_rtsp_camera_on_localhost(tmp_path, gst_rtsp):
    from backpack.rtsp import RTSPSkyLine
    from tests.localrun.test_localrun_sources import Producer, free_port

    video()
    sky = RTSPSkyLine(
        None, "cam", port=free_port(), host="127.0.0.1", fps=10, width=320, height=240
    )
    sky.start_streaming()
    url = sky.url.replace("rtsp://", "rtsp://viewer:hunter2@")
    root = make_project(tmp_path, RTSP_APP, params={})
    try:
        with Producer(sky, fps=10):
            result = run_project(
                root, frames=5, cameras={"front_camera": url}, fast=False, grace_s=0.5
            )
    finally:
        sky.stop_streaming()
    assert result.report["exit_reason"] == "frames", result.console
    assert result.report["cameras"]["front_camera"]["frames"] == 5
    seen = json.loads((result.run_dir / "storage" / "seen.json").read_text())
    redacted = sky.url.replace("rtsp://", "rtsp://viewer:***@")
    assert seen == [["front_camera", redacted, [240, 320, 3]]] * 5
    assert "hunter2" not in json.dumps(result.report) + result.console
    assert result.report["hdmi"]["front_camera"]["frames"] == 5
