"""YOLOX pre- and post-processing (numpy): letterbox, grid decode, NMS -- for detector apps.

The standard YOLOX ONNX export (``decode_in_inference=False``, e.g. YOLOX-nano from the
official release: input ``images`` [1, 3, 416, 416], BGR 0-255, no normalization; output
[1, 3549, 85]) gives raw grid offsets. This module does what YOLOX's ``preproc`` and
``demo_postprocess`` + ``multiclass_nms`` do (Megvii YOLOX, Apache-2.0), without torch::

    tensor, ratio = letterbox(frame)                      # frame: H×W×3 BGR uint8
    (output,) = self.call({"images": tensor}, "detector")  # or onnxruntime's session.run
    people = detect(output, ratio, classes=(PERSON,))
    for d in people:
        x1, y1, x2, y2 = d.normalized(frame.shape)         # [0, 1] for media.add_rect

Boxes come back in the pixels of the original frame. :func:`letterbox` resizes with OpenCV
when it is installed, else with numpy (same bilinear sampling).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "INPUT_SIZE",
    "PERSON",
    "STRIDES",
    "Detection",
    "decode",
    "detect",
    "letterbox",
    "nms",
    "resize",
]

#: Network input (height, width) of YOLOX-nano / -tiny.
INPUT_SIZE = (416, 416)
#: Output strides of the three YOLOX heads.
STRIDES = (8, 16, 32)
#: COCO class id of "person".
PERSON = 0
#: Padding value YOLOX's preprocessing uses.
PAD_VALUE = 114


@dataclass(frozen=True)
class Detection:
    """One detected object.

    Attributes:
        box: (x1, y1, x2, y2) in pixels of the original frame (may reach past its edges).
        score: objectness × class probability, in [0, 1].
        class_id: COCO class index (0 = person).
    """

    box: tuple[float, float, float, float]
    score: float
    class_id: int

    def normalized(self, shape: tuple[int, ...]) -> tuple[float, float, float, float]:
        """The box as (left, top, right, bottom) in [0, 1] for a frame of ``shape`` (H, W, ...),
        clamped into the frame: what ``media.add_rect`` takes."""
        height, width = shape[0], shape[1]
        x1, y1, x2, y2 = self.box
        return (
            min(max(x1 / width, 0.0), 1.0),
            min(max(y1 / height, 0.0), 1.0),
            min(max(x2 / width, 0.0), 1.0),
            min(max(y2 / height, 0.0), 1.0),
        )


def letterbox(image: np.ndarray, size: tuple[int, int] = INPUT_SIZE) -> tuple[np.ndarray, float]:
    """Resize ``image`` keeping its aspect ratio into a ``size`` canvas padded with 114.

    Args:
        image: H×W×3 BGR uint8.
        size: network input (height, width) in pixels.

    Returns:
        ``(tensor, ratio)``: float32 [1, 3, height, width] (BGR, 0-255) and the scale from
        original pixels to network pixels (divide network boxes by it).
    """
    height, width = size
    ratio = min(height / image.shape[0], width / image.shape[1])
    new_w, new_h = int(image.shape[1] * ratio), int(image.shape[0] * ratio)
    canvas = np.full((height, width, 3), PAD_VALUE, dtype=np.uint8)
    canvas[:new_h, :new_w] = resize(image, new_w, new_h)
    tensor = np.ascontiguousarray(canvas.transpose(2, 0, 1)[np.newaxis], dtype=np.float32)
    return tensor, ratio


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of an H×W×3 uint8 image: OpenCV when installed, else numpy (an image
    without OpenCV, such as the local base image, still runs detector apps)."""
    try:
        import cv2
    except ImportError:
        cv2 = None
    if cv2 is not None:
        return np.asarray(cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR))
    src_h, src_w = image.shape[:2]
    ys = np.clip((np.arange(height) + 0.5) * (src_h / height) - 0.5, 0, src_h - 1)
    xs = np.clip((np.arange(width) + 0.5) * (src_w / width) - 0.5, 0, src_w - 1)
    y0, x0 = ys.astype(np.int64), xs.astype(np.int64)
    y1, x1 = np.minimum(y0 + 1, src_h - 1), np.minimum(x0 + 1, src_w - 1)
    wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    img = image.astype(np.float32)
    top = img[y0][:, x0] * (1 - wx) + img[y0][:, x1] * wx
    bottom = img[y1][:, x0] * (1 - wx) + img[y1][:, x1] * wx
    return np.asarray(np.clip(top * (1 - wy) + bottom * wy + 0.5, 0, 255), dtype=np.uint8)


_GRIDS: dict[tuple[tuple[int, int], tuple[int, ...]], tuple[np.ndarray, np.ndarray]] = {}


def _grids(size: tuple[int, int], strides: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    key = (size, strides)
    if key not in _GRIDS:
        grids, expanded = [], []
        for stride in strides:
            rows, cols = size[0] // stride, size[1] // stride
            xv, yv = np.meshgrid(np.arange(cols), np.arange(rows))
            grids.append(np.stack((xv, yv), 2).reshape(-1, 2))
            expanded.append(np.full((rows * cols, 1), stride))
        _GRIDS[key] = (
            np.concatenate(grids).astype(np.float32),
            np.concatenate(expanded).astype(np.float32),
        )
    return _GRIDS[key]


def decode(
    output: np.ndarray, size: tuple[int, int] = INPUT_SIZE, strides: tuple[int, ...] = STRIDES
) -> np.ndarray:
    """Raw YOLOX output [1, N, 5 + classes] (or [N, ...]) → [N, 5 + classes] with boxes as
    (center x, center y, width, height) in network pixels; objectness and class scores as is.

    Raises:
        ValueError: N does not match ``size`` and ``strides``.
    """
    predictions = np.asarray(output, dtype=np.float32).reshape(-1, output.shape[-1]).copy()
    grids, expanded = _grids(size, strides)
    if predictions.shape[0] != grids.shape[0]:
        raise ValueError(
            f"YOLOX output has {predictions.shape[0]} rows; input {size} with strides "
            f"{strides} gives {grids.shape[0]}"
        )
    predictions[:, :2] = (predictions[:, :2] + grids) * expanded
    predictions[:, 2:4] = np.exp(predictions[:, 2:4]) * expanded
    return predictions


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression.

    Args:
        boxes: [N, 4] (x1, y1, x2, y2).
        scores: [N].
        iou_threshold: boxes overlapping a kept box by more than this IoU are removed.

    Returns:
        Indices of the kept boxes, highest score first.
    """
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter + 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def detect(
    output: np.ndarray,
    ratio: float,
    *,
    score_threshold: float = 0.3,
    iou_threshold: float = 0.45,
    classes: tuple[int, ...] | None = None,
    size: tuple[int, int] = INPUT_SIZE,
) -> list[Detection]:
    """Decode, score, filter and NMS a raw YOLOX output (per class, as YOLOX's demo does).

    Args:
        output: the model's output, [1, N, 5 + classes].
        ratio: the :func:`letterbox` ratio (boxes are divided by it).
        score_threshold: minimum objectness × class probability.
        iou_threshold: NMS IoU threshold.
        classes: keep only these class ids (None: all).
        size: network input (height, width).

    Returns:
        Detections, highest score first within each class, classes in ascending order.
    """
    predictions = decode(output, size)
    class_scores = predictions[:, 5:] * predictions[:, 4:5]
    class_ids = class_scores.argmax(1)
    scores = class_scores[np.arange(len(class_ids)), class_ids]
    mask = scores >= score_threshold
    if classes is not None:
        mask &= np.isin(class_ids, classes)
    if not mask.any():
        return []
    centers = predictions[mask, :4]
    boxes = np.empty_like(centers)
    boxes[:, :2] = centers[:, :2] - centers[:, 2:4] / 2
    boxes[:, 2:] = centers[:, :2] + centers[:, 2:4] / 2
    boxes /= ratio
    scores, class_ids = scores[mask], class_ids[mask]
    detections = []
    for class_id in np.unique(class_ids):
        chosen = np.flatnonzero(class_ids == class_id)
        for index in nms(boxes[chosen], scores[chosen], iou_threshold):
            i = chosen[index]
            box = tuple(float(v) for v in boxes[i])
            detections.append(Detection(box, float(scores[i]), int(class_id)))  # type: ignore[arg-type]
    return detections
