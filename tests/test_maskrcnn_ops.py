"""The detection kernels (top-k, NMS, box refinement, clipping, crop-and-resize, 2x2 transposed conv)
against their naive twins, on random inputs and on the edge cases: equal scores, empty inputs, boxes
outside the image, zero-area boxes."""

import numpy as np
import pytest

from nnlite.ops import detection as fast
from nnlite.ops import reference_detection as naive


def _boxes(rng, n, spread=1.0):
    a = rng.uniform(-0.2 * spread, 1.0 * spread, (n, 2)).astype(np.float32)
    size = rng.uniform(0.0, 0.5, (n, 2)).astype(np.float32)
    return np.concatenate([a, a + size], axis=1)


@pytest.mark.parametrize("seed", range(5))
def test_top_k_matches_naive_with_ties(seed):
    """Equal scores come out in index order, as tf.nn.top_k does."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 5, 50).astype(np.float32)        # many ties
    for k in (0, 1, 7, 50):
        np.testing.assert_array_equal(fast.top_k_indices(scores, k), naive.top_k_indices(scores, k))
    assert fast.top_k_indices(np.zeros(0, np.float32), 3).shape == (0,)


@pytest.mark.parametrize("seed", range(8))
def test_nms_matches_naive(seed):
    rng = np.random.default_rng(seed)
    boxes = _boxes(rng, 80)
    scores = rng.random(80).astype(np.float32)
    if seed % 2:
        scores = np.round(scores * 4) / 4                     # ties
    for threshold, limit in ((0.3, 100), (0.7, 10), (0.0, 80), (1.0, 5)):
        np.testing.assert_array_equal(fast.non_max_suppression(boxes, scores, limit, threshold),
                                      naive.non_max_suppression(boxes, scores, limit, threshold))


def test_nms_edge_cases():
    """Empty input; a zero-area box overlaps nothing; identical boxes keep the lower index;
    flipped corners are ordered before the overlap is measured."""
    assert fast.non_max_suppression(np.zeros((0, 4)), np.zeros(0), 10, 0.5).shape == (0,)
    same = np.array([[0, 0, 1, 1]] * 3, np.float32)
    np.testing.assert_array_equal(fast.non_max_suppression(same, np.ones(3), 10, 0.5), [0])
    zero = np.array([[0.5, 0.5, 0.5, 0.5]] * 3, np.float32)
    np.testing.assert_array_equal(fast.non_max_suppression(zero, np.ones(3), 10, 0.5), [0, 1, 2])
    flipped = np.array([[0, 0, 1, 1], [1, 1, 0, 0]], np.float32)
    np.testing.assert_array_equal(fast.non_max_suppression(flipped, [0.9, 0.8], 10, 0.5), [0])
    assert len(fast.non_max_suppression(same, np.ones(3), 0, 0.5)) == 0


@pytest.mark.parametrize("seed", range(3))
def test_box_deltas_and_clipping_match_naive(seed):
    rng = np.random.default_rng(seed)
    boxes = _boxes(rng, 40, spread=1.5)
    boxes[0] = [0.3, 0.3, 0.3, 0.3]                          # zero area stays zero area
    deltas = rng.normal(0, 0.3, (40, 4)).astype(np.float32)
    np.testing.assert_allclose(fast.apply_box_deltas(boxes, deltas), naive.apply_box_deltas(boxes, deltas),
                               rtol=1e-6, atol=1e-7)
    refined = fast.apply_box_deltas(boxes, deltas)
    assert refined[0, 2] == refined[0, 0] and refined[0, 3] == refined[0, 1]
    window = (0.1, 0.0, 0.9, 1.0)
    clipped = fast.clip_boxes(refined, window)
    np.testing.assert_array_equal(clipped, naive.clip_boxes(refined, window))
    assert clipped[:, [0, 2]].min() >= 0.1 and clipped[:, [0, 2]].max() <= 0.9


@pytest.mark.parametrize("crop", [(7, 7), (14, 14), (1, 1), (3, 5)])
def test_crop_and_resize_matches_naive(crop):
    """Including boxes partly or wholly outside the image (extrapolated samples are 0), zero-area
    boxes (one pixel repeated) and flipped boxes (a mirrored crop)."""
    rng = np.random.default_rng(1)
    image = rng.normal(size=(2, 9, 11, 3)).astype(np.float32)
    boxes = _boxes(rng, 12, spread=1.3)
    boxes[0] = [0.5, 0.5, 0.5, 0.5]
    boxes[1] = [1.2, 1.2, 1.5, 1.6]
    boxes[2] = [0.9, 0.8, 0.1, 0.2]
    idx = rng.integers(0, 2, 12)
    got = fast.crop_and_resize(image, boxes, idx, crop)
    np.testing.assert_allclose(got, naive.crop_and_resize(image, boxes, idx, crop), rtol=1e-6, atol=1e-6)
    assert np.all(got[1] == 0)
    assert fast.crop_and_resize(image, np.zeros((0, 4)), np.zeros(0, int), crop).shape == (0, *crop, 3)


def test_conv2d_transpose_matches_naive():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 5, 6)).astype(np.float32)
    kernel = rng.normal(size=(2, 2, 7, 6)).astype(np.float32)     # (s, s, cout, cin)
    bias = rng.normal(size=7).astype(np.float32)
    want = naive.conv2d_transpose(x, kernel, bias, stride=2)
    np.testing.assert_allclose(fast.conv2d_transpose(x, kernel, bias, stride=2), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fast.conv2d_transpose(x, kernel, bias, stride=2, activation="relu"),
                               np.maximum(want, 0), rtol=1e-5, atol=1e-5)
