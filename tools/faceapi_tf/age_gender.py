"""age_gender (tiny Xception, 2 middle blocks) in tf.nn ops -> SavedModel returning (age (1, 1), gender (1, 2))."""

from __future__ import annotations

from pathlib import Path

from .face_common import export, preprocess, separable


def conv(tf, w, name, x, stride):
    return tf.nn.conv2d(x, w[f"{name}/filters"], strides=stride, padding="SAME") + w[f"{name}/bias"]


def reduction_block(tf, w, name, x, activate_input=True):
    out = tf.nn.relu(x) if activate_input else x
    out = separable(tf, w, f"{name}/separable_conv0", out)
    out = separable(tf, w, f"{name}/separable_conv1", tf.nn.relu(out))
    out = tf.nn.max_pool2d(out, 3, 2, "SAME")
    return out + conv(tf, w, f"{name}/expansion_conv", x, 2)


def main_block(tf, w, name, x):
    out = separable(tf, w, f"{name}/separable_conv0", tf.nn.relu(x))
    out = separable(tf, w, f"{name}/separable_conv1", tf.nn.relu(out))
    out = separable(tf, w, f"{name}/separable_conv2", tf.nn.relu(out))
    return out + x


def forward(tf, w, image):
    x = preprocess(tf, image, 112, 256.0)
    x = tf.nn.relu(conv(tf, w, "entry_flow/conv_in", x, 2))
    x = reduction_block(tf, w, "entry_flow/reduction_block_0", x, activate_input=False)
    x = reduction_block(tf, w, "entry_flow/reduction_block_1", x)
    for i in range(2):
        x = main_block(tf, w, f"middle_flow/main_block_{i}", x)
    x = reduction_block(tf, w, "exit_flow/reduction_block", x)
    x = tf.nn.relu(separable(tf, w, "exit_flow/separable_conv", x))
    x = tf.reshape(tf.nn.avg_pool2d(x, 7, 2, "VALID"), [1, -1])          # (1, 512)
    age = tf.matmul(x, w["fc/age/weights"]) + w["fc/age/bias"]
    gender = tf.nn.softmax(tf.matmul(x, w["fc/gender/weights"]) + w["fc/gender/bias"])
    return age, gender


def export_savedmodel(cache_dir: Path) -> Path:
    return export("age_gender", cache_dir, forward)
