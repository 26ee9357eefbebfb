"""panorama-cli run with a hostile app beside a real one: it cannot be the other node, open
its frames or take its connections; nothing is left in /dev/shm.

Real sandboxed processes, real video: ``people_counter_node`` reads ``front_camera`` and
draws to HDMI; ``spoof_node`` is wired only to ``back_camera`` and attacks.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from panorama_cli.localrun import run_project
from tests.localrun.helpers import (
    ACCOUNT,
    _dump_graph,
    _dump_package,
    _dump_runtime_descriptor,
    require_sandbox,
    video,
)

FRAMES = 8

REAL = """
import json, time
import panoramasdk

node = panoramasdk.node()
seen = []
while True:
    for media in node.inputs.video_in.get():
        seen.append(media.stream_id)
        media.add_label("real %d" % len(seen), 0.1, 0.1)
        node.outputs.video_out.put([media])
    with open("/opt/aws/panorama/storage/seen.json", "w") as f:
        json.dump(seen, f)
    time.sleep(0.15)  # the spoofer attacks while this node's rings exist
"""

SPOOF = """
import json, os, time
import panoramasdk
from panoramasdk import _client

facts = {}
path = os.environ["PANORAMA_LOCALRUN_SOCKET"]


def hello_as(node):
    try:
        _client.Connection(path, node)
        return "accepted"
    except RuntimeError as exc:
        return str(exc)


facts["own_token"] = hello_as("people_counter_node")
own = os.environ.pop("PANORAMA_LOCALRUN_TOKEN")
facts["no_token"] = hello_as("people_counter_node")
os.environ["PANORAMA_LOCALRUN_TOKEN"] = "x" * 43
facts["made_up_token"] = hello_as("people_counter_node")
os.environ["PANORAMA_LOCALRUN_TOKEN"] = own

held = []  # take every connection it may: the real node must still get its own
while True:
    try:
        held.append(_client.Connection(path, "spoof_node"))
    except RuntimeError as exc:
        facts["connections"] = [len(held), str(exc)]
        break
    if len(held) > 200:
        facts["connections"] = [len(held), "no limit"]
        break
for each in held[-2:]:  # room for its own node (the runner counts the close in a moment)
    each.sock.close()
time.sleep(0.3)

node = panoramasdk.node()
frame = node.inputs.video_in.get()[0]
facts["own_frame"] = [frame.stream_id, list(frame.image.shape)]
frame.image[...] = (0, 0, 255)  # all red: its own ring only
facts["dev_shm"] = sorted(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else []
conn = _client.connection()
try:
    conn.request({"op": "ring", "ring": "r-" + "0" * 16})
    facts["guessed_ring"] = "mapped"
except ValueError as exc:
    facts["guessed_ring"] = str(exc)
with open("/opt/aws/panorama/storage/facts.json", "w") as f:
    json.dump(facts, f)
while True:
    node.inputs.video_in.get()
"""


def _project(parent: Path) -> Path:
    """front_camera -> people_counter_node -> HDMI; back_camera -> spoof_node."""
    require_sandbox()
    root = parent / "spoof"
    (root / "assets").mkdir(parents=True)
    packages = [
        {"name": "panorama::abstract_rtsp_media_source", "version": "1.0"},
        {"name": "panorama::hdmi_data_sink", "version": "1.0"},
    ]
    camera = "panorama::abstract_rtsp_media_source.rtsp_v1_interface"
    nodes: list[dict[str, object]] = [
        {"name": "front_camera", "interface": camera},
        {"name": "back_camera", "interface": camera},
        {"name": "output_node", "interface": "panorama::hdmi_data_sink.hdmi0"},
    ]
    edges = [
        {"producer": "front_camera.video_out", "consumer": "people_counter_node.video_in"},
        {"producer": "people_counter_node.video_out", "consumer": "output_node.video_in"},
        {"producer": "back_camera.video_out", "consumer": "spoof_node.video_in"},
    ]
    for package, node, source in (("REAL", "people_counter_node", REAL), ("SPOOF", "spoof_node", SPOOF)):  # fmt: skip
        folder = root / "packages" / f"{ACCOUNT}-{package}-1.0"
        _dump_package(
            folder, package, "business_logic", "code", [{"name": "video_in", "type": "media"}]
        )
        _dump_runtime_descriptor(folder, ("python3", "/panorama/app.py"))
        (folder / "src").mkdir()
        (folder / "src" / "app.py").write_text(source)
        packages.append({"name": f"{ACCOUNT}::{package}", "version": "1.0"})
        nodes.append({"name": node, "interface": f"{ACCOUNT}::{package}.interface"})
    _dump_graph(root, "spoof", packages, nodes, edges)
    return root


def _shm() -> set[str]:
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


def test_an_app_cannot_be_another_node_nor_reach_its_frames(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="panorama_cli.localrun.frames.channel")
    logging.getLogger("panorama_cli.localrun.frames.channel").disabled = False
    root = _project(tmp_path)
    before = _shm()
    result = run_project(
        root, frames=FRAMES, cameras={"front_camera": video(), "back_camera": video()},
        grace_s=1.0,
    )  # fmt: skip
    report = result.report
    assert report["exit_reason"] in ("frames", "end-of-input"), result.console
    facts = json.loads((result.run_dir / "storage" / "spoof_node" / "facts.json").read_text())
    refused = "the panorama-cli runner refused: "
    assert facts["own_token"] == refused + "the hello's token is not node people_counter_node's"
    assert facts["no_token"].startswith(refused + "the hello for node people_counter_node has")
    assert facts["made_up_token"] == facts["own_token"]
    assert facts["connections"] == [
        32,
        refused + "too many connections of node spoof_node (the limit is 32 per node: one per "
        "thread and child process)",
    ]
    assert facts["own_frame"] == ["back_camera", [576, 768, 3]]
    assert not [name for name in facts["dev_shm"] if name.startswith("psm_")]  # no ring there
    assert facts["guessed_ring"] == "no frame ring 'r-0000000000000000' here"
    # the real node got every frame of its camera, and HDMI shows its frames, not red ones
    seen = json.loads(
        (result.run_dir / "storage" / "people_counter_node" / "seen.json").read_text()
    )
    assert seen == ["front_camera"] * FRAMES
    assert (
        report["hdmi"]["front_camera"]["frames"] == FRAMES and "back_camera" not in report["hdmi"]
    )
    frames = result.hdmi_frames["front_camera"]
    assert len(frames) == FRAMES
    for frame in frames:
        red = (frame[..., 2] > 200) & (frame[..., 0] < 50) & (frame[..., 1] < 50)
        assert red.mean() < 0.5
    assert [a["labels"][0][0] for a in result.annotations["front_camera"]] == [
        f"real {n}" for n in range(1, FRAMES + 1)
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    spoofs = [w for w in warnings if "refused a hello as 'people_counter_node'" in w]
    assert len(spoofs) == 1, warnings  # three tries, one line
    assert sum("too many connections of node spoof_node" in w for w in warnings) == 1
    assert not {name for name in _shm() - before if name.startswith("psm_")}
