"""Baselines for `panorama-cli run`: how fast the same work goes without the runner.

    .venv/bin/python benchmarks/localrun_baselines.py [--frames 120] [--rounds 3]

Two baselines that the runner's own benchmarks (pass-through and people counter through
``run``) divide by, and, side by side in the same run, the runner's media components used the
same way, to show what they cost on their own:

**Decode** (the pass-through target: ``run --fast --loop`` ≥ 85% of this):
- ``opencv``: ``cv2.VideoCapture(vtest.avi).read()`` in a loop, every frame: :func:`opencv_decode_fps`.
- ``open_source``: :func:`panorama_cli.localrun.frames.sources.open_source` ``.read()`` in a loop.
- ``camera fast``: the same through a :class:`~panorama_cli.localrun.frames.pacing.Camera` in fast
  mode (reader thread + queue), ``get()`` in a loop.

**People counter** (the ``run`` target: ≥ 90% of this), ``--frames`` frames of vtest.avi:
- ``plain loop``: :func:`people_counter_plain_fps`: OpenCV decode → YOLOX letterbox →
  onnxruntime → YOLOX decode + NMS (backpack.yolox) → boxes and the count drawn with OpenCV on
  the frame → BGR to I420 with OpenCV → H.264 encode with PyAV (libx264 veryfast, crf 23,
  yuv420p, 2 threads: the HdmiSink's settings and conversion), one thread, in one function.
- ``components``: the same loop written with open_source + ModelNode + HdmiSink (overlays as
  normalized rects/labels, drawn by the sink on a copy).

Each variant runs ``--rounds`` times, interleaved; printed: the median and the best frames/s,
the median process CPU milliseconds per frame (all threads), and the ratios to the group's
baseline (median/best). On a shared machine the best-of and CPU figures are the steadier ones. Needs ../shared/data/vtest.avi and
../shared/models/yolox_nano/yolox_nano.onnx.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VIDEO = ROOT.parent / "shared" / "data" / "vtest.avi"
YOLOX = ROOT.parent / "shared" / "models" / "yolox_nano" / "yolox_nano.onnx"


def opencv_decode_fps(video: Path = VIDEO, frames: int | None = None) -> tuple[float, float]:
    """Frames/s and CPU seconds per frame of OpenCV alone decoding ``video`` (all its frames,
    or the first ``frames``), BGR, as ``cv2.VideoCapture.read()`` returns them."""
    import cv2

    capture = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    count = 0
    cpu, start = time.process_time(), time.perf_counter()
    while frames is None or count < frames:
        ok, _ = capture.read()
        if not ok:
            break
        count += 1
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    capture.release()
    return count / wall, cpu / max(count, 1)


def _source_fps(video: Path) -> tuple[float, float]:
    from panorama_cli.localrun.frames.sources import open_source

    source = open_source(str(video))
    count = 0
    cpu, start = time.process_time(), time.perf_counter()
    while source.read() is not None:
        count += 1
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    source.close()
    return count / wall, cpu / count


def _camera_fps(video: Path) -> tuple[float, float]:
    from panorama_cli.localrun.frames.pacing import Camera
    from panorama_cli.localrun.frames.sources import open_source

    camera = Camera("cam", open_source(str(video)), fast=True, max_frames=None)
    count = 0
    cpu, start = time.process_time(), time.perf_counter()
    camera.start()
    while camera.get(timeout=10) is not None:
        count += 1
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return count / wall, cpu / count


def people_counter_plain_fps(
    video: Path = VIDEO, model: Path = YOLOX, frames: int = 120, out: Path | None = None
) -> tuple[float, float]:
    """Frames/s and CPU s/frame of the people counter as one plain Python loop (see module doc).

    Args:
        video: input video; model: YOLOX ONNX file; frames: frames to process.
        out: the mp4 to write (default: a temporary file).
    """
    from fractions import Fraction

    import av
    import cv2
    import onnxruntime as ort

    from backpack.yolox import PERSON, detect, letterbox

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    capture = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    fps = capture.get(cv2.CAP_PROP_FPS) or 10
    with tempfile.TemporaryDirectory() as tmp:
        target = out or Path(tmp) / "plain.mp4"
        container = av.open(str(target), mode="w", format="mp4", options={"movflags": "+faststart"})
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        stream.codec_context.thread_count = 2
        count = 0
        cpu, start = time.process_time(), time.perf_counter()
        while count < frames:
            ok, image = capture.read()
            if not ok:
                break
            tensor, ratio = letterbox(image)
            (output,) = session.run(None, {name: tensor})
            people = detect(output, ratio, classes=(PERSON,), score_threshold=0.5)
            for p in people:
                x1, y1, x2, y2 = (int(v) for v in p.box)
                cv2.rectangle(image, (x1, y1), (x2, y2), (0, 255, 0), 2)
            cv2.putText(image, f"people: {len(people)}", (10, 30), 0, 0.8, (255, 255, 255), 2)
            if count == 0:
                stream.width, stream.height = image.shape[1], image.shape[0]
            yuv = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)  # cheaper than PyAV's swscale
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts = count
            container.mux(stream.encode(frame))
            count += 1
        container.mux(stream.encode(None))
        container.close()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    capture.release()
    return count / wall, cpu / max(count, 1)


def _people_counter_components_fps(frames: int) -> tuple[float, float]:
    from backpack.yolox import PERSON, detect, letterbox
    from panorama_cli.localrun.frames.sinks import HdmiSink
    from panorama_cli.localrun.frames.sources import open_source
    from panorama_cli.localrun.models.inference import load_model

    class Node:
        name = "detector"

    with tempfile.TemporaryDirectory() as tmp:
        model = load_model(Node(), None, model_path=YOLOX, cache_dir=Path(tmp))
        source = open_source(str(VIDEO))
        sink = HdmiSink(Path(tmp) / "hdmi" / "cam.mp4", fps=source.fps)
        count = 0
        cpu, start = time.process_time(), time.perf_counter()
        while count < frames and (frame := source.read()) is not None:
            tensor, ratio = letterbox(frame.image)
            (output,) = model.run({"images": tensor})
            people = detect(output, ratio, classes=(PERSON,), score_threshold=0.5)
            rects = [p.normalized(frame.image.shape) for p in people]
            sink.write(frame.image, rects, [(f"people: {len(people)}", 0.02, 0.06)])
            count += 1
        sink.close()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        source.close()
    return count / wall, cpu / max(count, 1)


def _median(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120, help="people-counter frames per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=("decode", "people"), help="run one group of rows")
    args = parser.parse_args()
    for path in (VIDEO, YOLOX):
        if not path.is_file():
            print(f"needs {path}", file=sys.stderr)
            return 2
    variants: dict[str, Callable[[], tuple[float, float]]] = {
        "decode: opencv alone (baseline)": lambda: opencv_decode_fps(VIDEO),
        "decode: open_source().read()": lambda: _source_fps(VIDEO),
        "decode: Camera(fast=True).get()": lambda: _camera_fps(VIDEO),
        "people counter: plain loop (baseline)": lambda: people_counter_plain_fps(
            frames=args.frames
        ),
        "people counter: open_source + ModelNode + HdmiSink": lambda: (
            _people_counter_components_fps(args.frames)
        ),
    }
    if args.only:
        variants = {k: v for k, v in variants.items() if k.startswith(args.only)}
    runs: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
    for _ in range(args.rounds):
        for label, fn in variants.items():
            runs[label].append(fn())
    print(f"{'variant':<52} {'frames/s':>9} {'best':>7} {'CPU ms/frame':>13} {'ratio':>6}")
    base = best_base = None
    for label in variants:
        fps, cpu = _median(runs[label])
        best = max(r[0] for r in runs[label])
        if "baseline" in label:
            base, best_base = fps, best
        ratio = f"{fps / base:.2f}/{best / best_base:.2f}" if base and best_base else "-"
        print(f"{label:<52} {fps:>9.1f} {best:>7.1f} {cpu * 1000:>13.2f} {ratio:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
