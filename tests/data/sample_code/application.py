"""Image classification with SqueezeNet on every frame of every camera stream.

The code asset of the sample application (node package SAMPLE_CODE, graph node
``code_node``). It runs on an AWS Panorama Appliance, whose runtime provides ``panoramasdk``:

* parameters come from the interface's input ports (``self.inputs.threshold.get()`` ...);
* frames come from ``self.inputs.video_in.get()``, one media object per camera stream;
* each frame is sent to the model node ``model_node`` with ``self.call(name, input)``;
* the top classes above the threshold are written on the frame with ``add_label`` and a
  frame with ``add_rect``, in coordinates normalized to the [0, 1) range of the frame;
* the annotated frames go to ``self.outputs.video_out.put(...)``.

``panoramasdk`` (and numpy) only exist on a device, so they are imported inside ``main()``.
With ``PANORAMA_LOCAL_CHECK=1`` the application checks its own files instead (the class
names load and there are 1000 of them), logs a "ready" line and exits 0.
"""

import json
import logging
import math
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLASSES_FILE = HERE / "squeezenet_classes.json"
NUM_CLASSES = 1000
MODEL_NODE = "model_node"
TOP_K = 5

# Where the labels go on the frame (normalized coordinates, SDK media.add_label).
LABEL_LEFT = 0.02
LABEL_TOP = 0.05
LABEL_STEP = 0.05
# The rectangle drawn around a frame with a confident classification (SDK media.add_rect).
FRAME_BOX = (0.01, 0.01, 0.99, 0.99)

logger = logging.getLogger("sample_code")


def load_classes(path=CLASSES_FILE):
    """The model's class names, index = class id."""
    with open(path, encoding="utf-8") as fh:
        classes = json.load(fh)
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ValueError(f"{path}: expected a JSON list of class names")
    if len(classes) != NUM_CLASSES:
        raise ValueError(f"{path}: expected {NUM_CLASSES} classes, found {len(classes)}")
    return classes


def clamp01(value):
    """A coordinate clamped into [0, 1), as add_label / add_rect require."""
    return min(max(float(value), 0.0), math.nextafter(1.0, 0.0))


def label_position(rank):
    """Normalized (x, y) of the label of the ``rank``-th class (0 = best)."""
    return clamp01(LABEL_LEFT), clamp01(LABEL_TOP + rank * LABEL_STEP)


def softmax(scores):
    """Probabilities of a list of raw scores."""
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def top_classes(probabilities, classes, threshold_percent, k=TOP_K):
    """[(class name, percent)] of the ``k`` best classes above ``threshold_percent``."""
    ranked = sorted(range(len(probabilities)), key=lambda i: probabilities[i], reverse=True)
    result = []
    for index in ranked[:k]:
        percent = 100.0 * probabilities[index]
        if percent >= threshold_percent:
            result.append((classes[index], percent))
    return result


def annotate(stream, results):
    """Write the results on the frame (labels, and a box when something was recognized)."""
    for rank, (name, percent) in enumerate(results):
        x, y = label_position(rank)
        stream.add_label(f"{name}: {percent:.1f}%", x, y)
    if results:
        stream.add_rect(*(clamp01(v) for v in FRAME_BOX))


def local_check():
    """Check the files the application needs, without panoramasdk; 0 when all is well."""
    classes = load_classes()
    for rank in range(TOP_K):
        x, y = label_position(rank)
        assert 0.0 <= x < 1.0 and 0.0 <= y < 1.0, (rank, x, y)
    probabilities = softmax([float(i % 7) for i in range(NUM_CLASSES)])
    assert abs(sum(probabilities) - 1.0) < 1e-9
    logger.info(
        "sample_code ready: %d classes (first %r, last %r), python %s",
        len(classes),
        classes[0],
        classes[-1],
        sys.version.split()[0],
    )
    return 0


def make_application(panoramasdk, np):
    """The node class; defined here because panoramasdk exists only on a device."""

    class Application(panoramasdk.node):
        def __init__(self):
            """Read the parameters from the interface's inputs, with defaults."""
            super().__init__()
            self.classes = load_classes()
            self.frame_num = 0
            self.threshold = self.parameter("threshold", 20.0)
            self.region = self.parameter("region", "us-east-1")
            self.device_id = self.parameter("device_id", "unknown")
            logging.getLogger().setLevel(str(self.parameter("log_level", "INFO")).upper())
            self.input_name = self.parameter("model_input_name", "data")
            self.input_width = int(self.parameter("model_input_width", 224))
            self.input_order = self.parameter("model_input_order", "CHANNEL_FIRST")
            logger.info(
                "threshold %s%%, region %s, device %s, model input %s %d %s",
                self.threshold,
                self.region,
                self.device_id,
                self.input_name,
                self.input_width,
                self.input_order,
            )

        def parameter(self, name, default):
            """The value of input port ``name``; ``default`` when the interface lacks it."""
            port = getattr(self.inputs, name, None)
            if port is None:
                return default
            try:
                return port.get()
            except Exception:
                logger.exception("cannot read parameter %s; using %r", name, default)
                return default

        def preprocess(self, image):
            """BGR uint8 frame -> normalized float32 tensor of the model's input shape."""
            size = self.input_width
            h, w = image.shape[:2]
            rows = (np.arange(size) * h // size).astype(int)
            cols = (np.arange(size) * w // size).astype(int)
            resized = image[rows][:, cols][:, :, ::-1].astype("float32") / 255.0
            mean = np.array([0.485, 0.456, 0.406], dtype="float32")
            std = np.array([0.229, 0.224, 0.225], dtype="float32")
            normalized = (resized - mean) / std
            if self.input_order == "CHANNEL_FIRST":
                normalized = normalized.transpose(2, 0, 1)
            return np.ascontiguousarray(normalized[np.newaxis], dtype="float32")

        def process_media(self, stream):
            """Classify one frame and annotate it."""
            tensor = self.preprocess(stream.image)
            inference_results = self.call(MODEL_NODE, {self.input_name: tensor})
            if inference_results is None:
                logger.warning("no inference results for stream %s", stream.stream_id)
                return
            scores = [float(s) for s in np.asarray(inference_results[0]).reshape(-1)]
            results = top_classes(softmax(scores), self.classes, float(self.threshold))
            annotate(stream, results)
            if results:
                logger.debug("%s: %s", stream.stream_id, results[0])

        def process_streams(self):
            """Process one frame of each attached stream and pass the frames on."""
            self.frame_num += 1
            streams = self.inputs.video_in.get()
            for stream in streams:
                self.process_media(stream)
            self.outputs.video_out.put(streams)

    return Application


def main():
    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(message)s"
    )
    if os.environ.get("PANORAMA_LOCAL_CHECK") == "1":
        try:
            return local_check()
        except Exception:
            logger.exception("local check failed")
            return 1

    import numpy as np
    import panoramasdk

    try:
        logger.info("INITIALIZING APPLICATION")
        app = make_application(panoramasdk, np)()
        logger.info("PROCESSING STREAMS")
        while True:
            app.process_streams()
    except Exception:
        logger.exception("Exception during processing loop.")
        return 1


if __name__ == "__main__":
    sys.exit(main())
