"""SsdMobilenetv1 written with tf.nn ops from the face-api.js architecture facts -> a TF SavedModel.

Independent of nnlite's model code (only the weights come through nnlite's tfjs loader): batch norm is
applied with ``tf.nn.batch_normalization`` (not folded), NMS is ``tf.image.non_max_suppression``.

Signatures (``image``: one RGB photo as float32 (1, H, W, 3), any size):
- ``raw(image)`` -> ``boxes`` (5118, 4) as (ymin, xmin, ymax, xmax) in the padded square, ``scores`` (5118,);
- ``detect(image, min_score)`` -> ``boxes`` (K, 4) as (x, y, w, h) in image pixels, ``scores`` (K,), best
  first (NMS IoU 0.5, at most 100, score > min_score; boxes clipped to the square and mapped with
  face-api.js's rounded reshaped size).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import cached_savedmodel

SIZE = 512
EPSILON = 0.0010000000474974513


def _pointwise(tf, w, name, x, stride):
    out = tf.nn.conv2d(x, w[f"{name}/weights"], strides=stride, padding="SAME")
    return tf.clip_by_value(out + w[f"{name}/convolution_bn_offset"], 0.0, 6.0)


def _depthwise(tf, w, name, x, stride):
    out = tf.nn.depthwise_conv2d(x, w[f"{name}/depthwise_weights"], strides=[1, stride, stride, 1],
                                 padding="SAME")
    out = tf.nn.batch_normalization(out, w[f"{name}/BatchNorm/moving_mean"],
                                    w[f"{name}/BatchNorm/moving_variance"], w[f"{name}/BatchNorm/beta"],
                                    w[f"{name}/BatchNorm/gamma"], EPSILON)
    return tf.clip_by_value(out, 0.0, 6.0)


def _predictor(tf, w, index, x):
    name = f"Prediction/BoxPredictor_{index}"
    enc = tf.nn.conv2d(x, w[f"{name}/BoxEncodingPredictor/weights"], 1, "SAME") + \
        w[f"{name}/BoxEncodingPredictor/biases"]
    cls = tf.nn.conv2d(x, w[f"{name}/ClassPredictor/weights"], 1, "SAME") + w[f"{name}/ClassPredictor/biases"]
    return tf.reshape(enc, [-1, 4]), tf.reshape(cls, [-1, 3])


def _net_input(tf, image):
    shape = tf.shape(image)
    h, w = shape[1], shape[2]
    side = tf.maximum(h, w)
    square = tf.pad(image, [[0, 0], [0, side - h], [0, side - w], [0, 0]])
    x = tf.compat.v1.image.resize_bilinear(square, [SIZE, SIZE], align_corners=False, half_pixel_centers=False)
    return x * 0.007843137718737125 - 1.0


def raw_outputs(tf, w, image):
    x = _net_input(tf, image)
    x = _pointwise(tf, w, "MobilenetV1/Conv2d_0_pointwise", x, 2)
    maps = []
    for k in range(1, 14):
        x = _depthwise(tf, w, f"MobilenetV1/Conv2d_{k}_depthwise", x, 2 if k in (2, 4, 6, 12) else 1)
        x = _pointwise(tf, w, f"MobilenetV1/Conv2d_{k}_pointwise", x, 1)
        if k == 11:
            maps.append(x)
    maps.append(x)
    for k in range(8):
        x = _pointwise(tf, w, f"Prediction/Conv2d_{k}_pointwise", x, 2 if k % 2 else 1)
        if k % 2:
            maps.append(x)
    heads = [_predictor(tf, w, i, m) for i, m in enumerate(maps)]
    enc = tf.concat([h[0] for h in heads], 0)                      # (5118, 4): ty, tx, th, tw
    logits = tf.concat([h[1] for h in heads], 0)                   # (5118, 3)
    anchors = w["Output/extra_dim"][0]                             # (5118, 4): ymin, xmin, ymax, xmax
    size = anchors[:, 2:] - anchors[:, :2]
    centre = anchors[:, :2] + size / 2.0
    mid = enc[:, :2] / 10.0 * size + centre
    half = tf.exp(enc[:, 2:] / 5.0) * size / 2.0
    boxes = tf.concat([mid - half, mid + half], 1)
    return boxes, tf.sigmoid(logits[:, 1])


def detections(tf, w, image, min_score):
    boxes, scores = raw_outputs(tf, w, image)
    keep = tf.image.non_max_suppression(boxes, scores, max_output_size=100, iou_threshold=0.5,
                                        score_threshold=min_score)
    b, s = tf.gather(boxes, keep), tf.gather(scores, keep)
    shape = tf.cast(tf.shape(image), tf.float32)
    h, w_ = shape[1], shape[2]
    scale = SIZE / tf.maximum(h, w_)
    # face-api.js maps with the reshaped size rounded half-up (JavaScript Math.round)
    sy = SIZE / tf.floor(h * scale + 0.5)
    sx = SIZE / tf.floor(w_ * scale + 0.5)
    top, bottom = tf.maximum(b[:, 0], 0.0) * sy, tf.minimum(b[:, 2], 1.0) * sy
    left, right = tf.maximum(b[:, 1], 0.0) * sx, tf.minimum(b[:, 3], 1.0) * sx
    xywh = tf.stack([left * w_, top * h, (right - left) * w_, (bottom - top) * h], 1)
    return xywh, s


def export_savedmodel(cache_dir: Path) -> Path:
    def build(tf):
        from nnlite.models.faceapi.weights import load_net_weights
        loaded = load_net_weights("ssd_mobilenetv1")
        weights = {k: tf.constant(np.asarray(v, np.float32)) for k, v in loaded.items()}
        image_spec = tf.TensorSpec([1, None, None, 3], tf.float32, name="image")

        class Net(tf.Module):
            @tf.function(input_signature=[image_spec])
            def raw(self, image):
                boxes, scores = raw_outputs(tf, weights, image)
                return {"boxes": boxes, "scores": scores}

            @tf.function(input_signature=[image_spec, tf.TensorSpec([], tf.float32, name="min_score")])
            def detect(self, image, min_score):
                boxes, scores = detections(tf, weights, image, min_score)
                return {"boxes": boxes, "scores": scores}

        net = Net()
        return net, {"raw": net.raw, "detect": net.detect}

    return cached_savedmodel(cache_dir, "faceapi_ssd_mobilenetv1", build)
