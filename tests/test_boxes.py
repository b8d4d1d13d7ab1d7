"""Boxes: IoU and non-max suppression against face-api.js's helper expectations and the naive twins."""

from __future__ import annotations

import numpy as np
import pytest

from nnlite.boxes import Detection, iou, iou_matrix, iou_naive, nms, nms_naive
from nnlite.errors import ShapeError


# H1 of the face-api.js peer suite (exact values).
@pytest.mark.parametrize("other, expected", [
    ((0, 0, 20, 20), 1.0),       # itself
    ((20, 20, 20, 20), 0.0),     # touches only at a corner
    ((0, 0, 10, 20), 0.5),
    ((0, 10, 20, 10), 0.5),
])
def test_iou_peer_suite_h1(other, expected):
    assert iou((0, 0, 20, 20), other) == expected
    assert iou_naive((0, 0, 20, 20), other) == expected


def test_iou_degenerate_boxes_overlap_nothing():
    assert iou((0, 0, 0, 10), (0, 0, 0, 10)) == 0.0
    assert iou((0, 0, 10, 10), (5, 5, -3, 4)) == 0.0


def test_iou_matrix_matches_naive_on_random_boxes():
    rng = np.random.default_rng(0)
    a = np.c_[rng.uniform(-5, 50, (40, 2)), rng.uniform(0, 30, (40, 2))]
    b = np.c_[rng.uniform(-5, 50, (30, 2)), rng.uniform(0, 30, (30, 2))]
    fast = iou_matrix(a, b)
    naive = np.array([[iou_naive(p, q) for q in b] for p in a])
    np.testing.assert_allclose(fast, naive, rtol=0, atol=1e-12)


def test_nms_keeps_best_and_drops_overlaps():
    boxes = [(0, 0, 10, 10), (1, 1, 10, 10), (50, 50, 10, 10), (0, 0, 10, 10.5)]
    scores = [0.8, 0.9, 0.7, 0.3]
    # box 1 wins; box 0 and box 3 overlap it by IoU > 0.5; box 2 is far away
    assert nms(boxes, scores, iou_threshold=0.5) == [1, 2]
    assert nms(boxes, scores, iou_threshold=0.5, score_threshold=0.75) == [1]
    assert nms(boxes, scores, iou_threshold=0.5, max_results=1) == [1]
    assert nms(boxes, scores, iou_threshold=0.99) == [1, 0, 2, 3]


def test_nms_threshold_is_strict():
    # IoU exactly 0.5 is kept (suppression needs IoU > threshold); a score equal to the threshold is dropped
    boxes = [(0, 0, 20, 20), (0, 0, 10, 20)]
    assert nms(boxes, [0.9, 0.8], iou_threshold=0.5) == [0, 1]
    assert nms(boxes, [0.9, 0.5], iou_threshold=0.5, score_threshold=0.5) == [0]


def test_nms_equal_scores_visit_in_index_order():
    boxes = [(0, 0, 10, 10), (0, 0, 10, 10)]
    assert nms(boxes, [0.6, 0.6], iou_threshold=0.5) == [0]


@pytest.mark.parametrize("seed", range(5))
def test_nms_matches_naive_twin(seed):
    rng = np.random.default_rng(seed)
    n = 300
    boxes = np.c_[rng.uniform(0, 100, (n, 2)), rng.uniform(1, 40, (n, 2))]
    scores = rng.uniform(0, 1, n)
    for thr, score_thr, limit in [(0.5, 0.5, 100), (0.4, None, None), (0.3, 0.9, 3)]:
        assert nms(boxes, scores, iou_threshold=thr, score_threshold=score_thr, max_results=limit) == \
            nms_naive(boxes, scores, iou_threshold=thr, score_threshold=score_thr, max_results=limit)


def test_nms_empty_and_bad_shapes():
    assert nms(np.zeros((0, 4)), np.zeros(0), iou_threshold=0.5) == []
    with pytest.raises(ShapeError, match=r"\(N, 4\)"):
        nms(np.zeros((3, 3)), np.zeros(3), iou_threshold=0.5)
    with pytest.raises(ShapeError, match="3 boxes but 2 scores"):
        nms(np.zeros((3, 4)), np.zeros(2), iou_threshold=0.5)


def test_detection_fields():
    d = Detection(box=(5.0, 10.0, 15.0, 20.0), score=0.75)
    assert (d.x, d.y, d.width, d.height, d.right, d.bottom, d.area) == (5, 10, 15, 20, 20, 30, 300)
    assert d.to_dict() == {"box": [5.0, 10.0, 15.0, 20.0], "score": 0.75}
