"""nnlite's detection kernels against TensorFlow's: tf.image.crop_and_resize, tf.image.non_max_suppression,
tf.nn.top_k and Keras's Conv2DTranspose, on random inputs with the edge cases matterport meets
(boxes outside the image, zero-area boxes, equal scores)."""

import numpy as np
import pytest

from nnlite.ops import detection as fast


def _boxes(rng, n):
    a = rng.uniform(-0.3, 1.1, (n, 2)).astype(np.float32)
    return np.concatenate([a, a + rng.uniform(0, 0.6, (n, 2)).astype(np.float32)], axis=1)


@pytest.mark.parametrize("crop", [(7, 7), (14, 14), (1, 1)])
def test_crop_and_resize_matches_tf(tf, crop):
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, 16, 13, 8)).astype(np.float32)
    boxes = _boxes(rng, 40)
    boxes[:3] = [[0.5, 0.5, 0.5, 0.5], [0, 0, 0, 0], [0.8, 0.9, 0.2, 0.1]]
    idx = rng.integers(0, 2, 40).astype(np.int32)
    want = tf.image.crop_and_resize(image, boxes, idx, crop, method="bilinear").numpy()
    np.testing.assert_allclose(fast.crop_and_resize(image, boxes, idx, crop), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_nms_matches_tf(tf, seed):
    rng = np.random.default_rng(seed)
    boxes = _boxes(rng, 300)
    boxes[:5] = [[0.4, 0.4, 0.4, 0.4]] * 5                       # zero-area boxes
    scores = rng.random(300).astype(np.float32)
    if seed % 2:
        scores = np.round(scores * 8) / 8                         # equal scores
    for threshold, limit in ((0.7, 1000), (0.3, 100), (0.5, 7)):
        want = tf.image.non_max_suppression(boxes, scores, limit, threshold).numpy()
        np.testing.assert_array_equal(fast.non_max_suppression(boxes, scores, limit, threshold), want)


def test_top_k_matches_tf(tf):
    scores = np.random.default_rng(0).integers(0, 10, 500).astype(np.float32)
    want = tf.nn.top_k(scores, 200, sorted=True).indices.numpy()
    np.testing.assert_array_equal(fast.top_k_indices(scores, 200), want)


def test_conv2d_transpose_matches_keras(tf):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 6, 8)).astype(np.float32)
    layer = tf.keras.layers.Conv2DTranspose(4, 2, strides=2, activation="relu")
    want = layer(x).numpy()
    kernel, bias = (w.numpy() for w in layer.weights)           # (2, 2, 4, 8), (4,)
    bias = rng.normal(size=4).astype(np.float32)
    layer.bias.assign(bias)
    want = layer(x).numpy()
    np.testing.assert_allclose(fast.conv2d_transpose(x, kernel, bias, stride=2, activation="relu"), want,
                               rtol=1e-5, atol=1e-5)
