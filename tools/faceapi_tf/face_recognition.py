"""face_recognition (ResNet-like, scale layers unfused) in tf.nn ops -> SavedModel returning (1, 128)."""

from __future__ import annotations

from pathlib import Path

from .face_common import export, preprocess


def conv_layer(tf, w, name, x, stride, relu, padding="SAME"):
    out = tf.nn.conv2d(x, w[f"{name}/conv/filters"], strides=stride, padding=padding) + w[f"{name}/conv/bias"]
    out = out * w[f"{name}/scale/weights"] + w[f"{name}/scale/biases"]
    return tf.nn.relu(out) if relu else out


def residual(tf, w, name, x):
    out = conv_layer(tf, w, f"{name}/conv1", x, 1, True)
    out = conv_layer(tf, w, f"{name}/conv2", out, 1, False)
    return tf.nn.relu(out + x)


def residual_down(tf, w, name, x):
    out = conv_layer(tf, w, f"{name}/conv1", x, 2, True, "VALID")
    out = conv_layer(tf, w, f"{name}/conv2", out, 1, False)
    pooled = tf.nn.avg_pool2d(x, 2, 2, "VALID")
    if pooled.shape[1] != out.shape[1]:                # static shapes: the input is always 150x150
        out = tf.pad(out, [[0, 0], [0, 1], [0, 1], [0, 0]])
    if pooled.shape[3] != out.shape[3]:
        pooled = tf.concat([pooled, tf.zeros_like(pooled)], axis=3)
    return tf.nn.relu(pooled + out)


def forward(tf, w, image):
    x = preprocess(tf, image, 150, 256.0)
    x = tf.ensure_shape(x, [1, 150, 150, 3])
    x = conv_layer(tf, w, "conv32_down", x, 2, True, "VALID")
    x = tf.nn.max_pool2d(x, 3, 2, "VALID")
    for name in ("conv32_1", "conv32_2", "conv32_3", "conv64_down", "conv64_1", "conv64_2", "conv64_3",
                 "conv128_down", "conv128_1", "conv128_2", "conv256_down", "conv256_1", "conv256_2",
                 "conv256_down_out"):
        x = residual_down(tf, w, name, x) if name.endswith(("_down", "_down_out")) else residual(tf, w, name, x)
    return tf.matmul(tf.reduce_mean(x, axis=[1, 2]), w["fc"])          # (1, 128)


def export_savedmodel(cache_dir: Path) -> Path:
    return export("face_recognition", cache_dir, forward)
