"""backpack.yolox: letterbox, grid decode, NMS and detect on constructed YOLOX outputs.

(The real YOLOX-nano on vtest.avi is in tests/localrun/test_localrun_inference.py.)
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from backpack.yolox import PAD_VALUE, PERSON, Detection, decode, detect, letterbox, nms

ROWS = 52 * 52 + 26 * 26 + 13 * 13  # 3549 for a 416x416 input


def test_letterbox_keeps_the_aspect_ratio_and_pads_with_114():
    image = np.random.default_rng(3).integers(0, 255, (576, 768, 3), dtype=np.uint8)
    tensor, ratio = letterbox(image)
    assert tensor.shape == (1, 3, 416, 416) and tensor.dtype == np.float32
    assert ratio == pytest.approx(416 / 768)
    height = int(576 * ratio)  # 312
    resized = cv2.resize(image, (416, height), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(tensor[0, :, :height].transpose(1, 2, 0), resized.astype(np.float32))
    assert np.all(tensor[0, :, height:] == PAD_VALUE)


def raw_output(
    cells: dict[int, tuple[float, float, float, float, float, int, float]],
) -> np.ndarray:
    """A raw [1, 3549, 85] output: rows set to (dx, dy, log w, log h, objectness, class, p)."""
    output = np.zeros((1, ROWS, 85), np.float32)
    for row, (dx, dy, lw, lh, obj, cls, prob) in cells.items():
        output[0, row, :5] = (dx, dy, lw, lh, obj)
        output[0, row, 5 + cls] = prob
    return output


def test_decode_puts_offsets_on_the_grid_of_each_stride():
    output = raw_output({0: (0.5, 0.5, 0, 0, 1, 0, 1), 2704 + 27: (0, 0, math.log(2), 0, 1, 0, 1)})
    decoded = decode(output)
    assert decoded.shape == (ROWS, 85)
    assert decoded[0, :4].tolist() == [4.0, 4.0, 8.0, 8.0]  # stride 8, cell (0, 0), center
    # first row of the stride-16 head + 27 = cell (x=1, y=1): 16 px from the origin
    assert decoded[2704 + 27, :4].tolist() == pytest.approx([16.0, 16.0, 32.0, 16.0])
    assert decoded[ROWS - 1, :2].tolist() == [12 * 32, 12 * 32]  # last cell of stride 32
    with pytest.raises(ValueError, match="3549"):
        decode(np.zeros((1, 100, 85), np.float32))


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    assert nms(boxes, scores, 0.45).tolist() == [3, 2]
    assert nms(boxes, scores, 1.0).tolist() == [3, 0, 1, 2]  # nothing suppressed


def test_detect_scores_filters_classes_and_scales_back_to_the_frame():
    # A person at stride-8 cell (x=10, y=20), 40x80 network pixels, and a weaker duplicate;
    # a car (class 2) elsewhere; a low-score person.
    person = 20 * 52 + 10
    output = raw_output(
        {
            person: (0.5, 0.5, math.log(5), math.log(10), 0.9, PERSON, 0.9),
            person + 1: (-0.5, 0.5, math.log(5), math.log(10), 0.8, PERSON, 0.9),
            300: (0.5, 0.5, math.log(3), math.log(3), 0.9, 2, 0.9),
            900: (0.5, 0.5, 0, 0, 0.2, PERSON, 0.5),
        }
    )
    ratio = 0.5  # network pixels per frame pixel
    people = detect(output, ratio, classes=(PERSON,), score_threshold=0.3)
    assert len(people) == 1
    (best,) = people
    assert best.class_id == PERSON and best.score == pytest.approx(0.81)
    cx, cy = (10 + 0.5) * 8, (20 + 0.5) * 8  # 84, 164 network pixels
    assert best.box == pytest.approx(
        ((cx - 20) / ratio, (cy - 40) / ratio, (cx + 20) / ratio, (cy + 40) / ratio)
    )
    everything = detect(output, ratio, score_threshold=0.05)
    assert sorted(d.class_id for d in everything) == [PERSON, PERSON, 2]
    assert detect(output, ratio, score_threshold=0.95) == []


def test_normalized_boxes_are_clamped_into_the_frame():
    d = Detection((-10.0, 100.0, 400.0, 700.0), 0.9, PERSON)
    assert d.normalized((576, 768, 3)) == pytest.approx((0.0, 100 / 576, 400 / 768, 1.0))
