"""TensorFlow twins of the face nets' shared pieces: input rule, separable convs, dense blocks, export.

Written from face-api.js's architecture facts directly in ``tf.nn`` ops (not from nnlite's code), so a
parity test compares two independent implementations of the same weights. Every SavedModel here takes
ONE RGB image as a float32 (1, H, W, 3) tensor of any size and does the whole face-api.js input rule
itself: centred zero pad to a square (odd difference: the extra line bottom/right), legacy bilinear
resize (align_corners=False, half_pixel_centers=False), then (x - mean RGB) / divisor.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import cached_savedmodel

MEAN_RGB = (122.782, 117.001, 104.298)


def preprocess(tf, image, size: int, divisor: float):
    """(1, H, W, 3) float32 -> normalised (1, size, size, 3)."""
    shape = tf.shape(image)
    h, w = shape[1], shape[2]
    diff = tf.abs(h - w)
    after = (diff + 1) // 2
    before = diff - after
    zero = tf.constant(0, tf.int32)
    rows = tf.where(h < w, tf.stack([before, after]), tf.stack([zero, zero]))
    cols = tf.where(w < h, tf.stack([before, after]), tf.stack([zero, zero]))
    square = tf.pad(image, tf.stack([tf.stack([zero, zero]), rows, cols, tf.stack([zero, zero])]))
    resized = tf.compat.v1.image.resize_bilinear(square, [size, size], align_corners=False,
                                                 half_pixel_centers=False)
    return (resized - tf.constant(MEAN_RGB, tf.float32)) / divisor


def separable(tf, w: dict, name: str, x, stride: int = 1):
    """depthwise 3x3 + pointwise 1x1, 'SAME', plus bias (face-api.js depthwiseSeparableConv)."""
    out = tf.nn.separable_conv2d(x, w[f"{name}/depthwise_filter"], w[f"{name}/pointwise_filter"],
                                 strides=[1, stride, stride, 1], padding="SAME")
    return out + w[f"{name}/bias"]


def dense_block(tf, w: dict, name: str, x, n_convs: int, first: bool):
    if first:
        out0 = tf.nn.conv2d(x, w[f"{name}/conv0/filters"], strides=2, padding="SAME") + w[f"{name}/conv0/bias"]
    else:
        out0 = separable(tf, w, f"{name}/conv0", x, stride=2)
    outs = [tf.nn.relu(out0)]
    inp = outs[0]
    for k in range(1, n_convs):
        outs.append(separable(tf, w, f"{name}/conv{k}", inp))
        inp = tf.nn.relu(tf.add_n(outs))
    return inp


def dense_extractor(tf, w: dict, x, n_blocks: int, n_convs: int):
    for b in range(n_blocks):
        x = dense_block(tf, w, f"dense{b}", x, n_convs, first=(b == 0))
    pool = 112 // 2 ** n_blocks
    x = tf.nn.avg_pool2d(x, pool, 2, "VALID")
    return tf.reshape(x, [tf.shape(x)[0], -1])


def export(net: str, cache_dir: Path, forward: Callable) -> Path:
    """Save ``forward(tf, weights, image) -> output(s)`` as the SavedModel ``cache_dir/faceapi_<net>``.

    Signature ``serving_default``: ``image`` (1, H, W, 3) float32 -> ``output_0``, ``output_1``, ...
    Written once per cache directory (see :func:`tools.faceapi_tf.cached_savedmodel`).
    """
    def build(tf):
        from nnlite.models.faceapi.weights import load_net_weights
        weights = {k: tf.constant(np.asarray(v, np.float32)) for k, v in load_net_weights(net).items()}

        class Net(tf.Module):
            @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32, name="image")])
            def serve(self, image):
                outs = forward(tf, weights, image)
                outs = outs if isinstance(outs, tuple) else (outs,)
                return {f"output_{i}": o for i, o in enumerate(outs)}

        module = Net()
        return module, {"serving_default": module.serve}

    return cached_savedmodel(cache_dir, f"faceapi_{net}", build)
