"""TinyFaceDetector written with tf.nn ops from the face-api.js architecture facts -> a TF SavedModel.

Independent of nnlite's model code (only the weights come through nnlite's tfjs loader). The leaky ReLU
is face-api.js's form relu(x - 0.1 x) + 0.1 x; NMS is ``tf.image.non_max_suppression`` (IoU 0.4, no cap).

Signatures (``image``: one RGB photo as float32 (1, H, W, 3), any size; ``input_size``: int32, multiple of 32):
- ``raw(image, input_size)`` -> ``output`` (S/32, S/32, 25);
- ``detect(image, input_size, min_score)`` -> ``boxes`` (K, 4) as (x, y, w, h) in image pixels, ``scores``
  (K,), best first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import cached_savedmodel

MEAN_RGB = (117.001, 114.697, 97.404)
ANCHORS = ((1.603231, 2.094468), (6.041143, 7.080126), (2.882459, 3.518061), (4.266906, 5.178857),
           (9.041765, 10.66308))


def _leaky(tf, x):
    low = x * 0.10000000149011612
    return tf.nn.relu(x - low) + low


def _separable(tf, w, name, x):
    x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    out = tf.nn.separable_conv2d(x, w[f"{name}/depthwise_filter"], w[f"{name}/pointwise_filter"],
                                 strides=[1, 1, 1, 1], padding="VALID")
    return _leaky(tf, out + w[f"{name}/bias"])


def _net_input(tf, image, size):
    shape = tf.shape(image)
    h, w = shape[1], shape[2]
    side = tf.maximum(h, w)
    square = tf.pad(image, [[0, 0], [0, side - h], [0, side - w], [0, 0]])
    x = tf.compat.v1.image.resize_bilinear(square, tf.stack([size, size]), align_corners=False,
                                           half_pixel_centers=False)
    return (x - tf.constant(MEAN_RGB, tf.float32)) / 256.0


def raw_output(tf, w, image, size):
    x = _net_input(tf, image, size)
    x = _leaky(tf, tf.nn.conv2d(x, w["conv0/filters"], 1, "VALID") + w["conv0/bias"])
    x = tf.nn.max_pool2d(x, 2, 2, "SAME")
    for k in range(1, 6):
        x = _separable(tf, w, f"conv{k}", x)
        x = tf.nn.max_pool2d(x, 2, 2 if k < 5 else 1, "SAME")
    return (tf.nn.conv2d(x, w["conv8/filters"], 1, "VALID") + w["conv8/bias"])[0]


def detections(tf, w, image, size, min_score):
    out = raw_output(tf, w, image, size)
    grid = tf.shape(out)[0]
    t = tf.reshape(out, [grid, grid, 5, 5])
    cells = tf.cast(grid, tf.float32)
    idx = tf.cast(tf.range(grid), tf.float32)
    col = tf.reshape(idx, [1, -1, 1])
    row = tf.reshape(idx, [-1, 1, 1])
    anchors = tf.constant(ANCHORS, tf.float32)
    cx = (col + tf.sigmoid(t[..., 0])) / cells
    cy = (row + tf.sigmoid(t[..., 1])) / cells
    bw = tf.exp(t[..., 2]) * anchors[:, 0] / cells
    bh = tf.exp(t[..., 3]) * anchors[:, 1] / cells
    scores = tf.reshape(tf.sigmoid(t[..., 4]), [-1])
    x0, y0 = tf.reshape(cx - bw / 2, [-1]), tf.reshape(cy - bh / 2, [-1])
    bw, bh = tf.reshape(bw, [-1]), tf.reshape(bh, [-1])
    corners = tf.stack([y0, x0, y0 + bh, x0 + bw], 1)
    keep = tf.image.non_max_suppression(corners, scores, max_output_size=tf.size(scores), iou_threshold=0.4,
                                        score_threshold=min_score)
    shape = tf.cast(tf.shape(image), tf.float32)
    h, w_ = shape[1], shape[2]
    s = tf.cast(size, tf.float32)
    scale = s / tf.maximum(h, w_)
    # face-api.js maps with the reshaped size rounded half-up (JavaScript Math.round)
    sx = s / tf.floor(w_ * scale + 0.5) * w_
    sy = s / tf.floor(h * scale + 0.5) * h
    xywh = tf.stack([tf.gather(x0, keep) * sx, tf.gather(y0, keep) * sy, tf.gather(bw, keep) * sx,
                     tf.gather(bh, keep) * sy], 1)
    return xywh, tf.gather(scores, keep)


def export_savedmodel(cache_dir: Path) -> Path:
    def build(tf):
        from nnlite.models.faceapi.weights import load_net_weights
        loaded = load_net_weights("tiny_face_detector")
        weights = {k: tf.constant(np.asarray(v, np.float32)) for k, v in loaded.items()}
        image_spec = tf.TensorSpec([1, None, None, 3], tf.float32, name="image")
        size_spec = tf.TensorSpec([], tf.int32, name="input_size")

        class Net(tf.Module):
            @tf.function(input_signature=[image_spec, size_spec])
            def raw(self, image, input_size):
                return {"output": raw_output(tf, weights, image, input_size)}

            @tf.function(input_signature=[image_spec, size_spec, tf.TensorSpec([], tf.float32, name="min_score")])
            def detect(self, image, input_size, min_score):
                boxes, scores = detections(tf, weights, image, input_size, min_score)
                return {"boxes": boxes, "scores": scores}

        net = Net()
        return net, {"raw": net.raw, "detect": net.detect}

    return cached_savedmodel(cache_dir, "faceapi_tiny_face_detector", build)
