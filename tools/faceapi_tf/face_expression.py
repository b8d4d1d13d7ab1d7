"""face_expression in tf.nn ops -> SavedModel returning the (1, 7) softmax."""

from __future__ import annotations

from pathlib import Path

from .face_common import dense_extractor, export, preprocess


def forward(tf, w, image):
    x = preprocess(tf, image, 112, 255.0)
    x = dense_extractor(tf, w, x, 4, 4)                                # (1, 256)
    return tf.nn.softmax(tf.matmul(x, w["fc/weights"]) + w["fc/bias"])


def export_savedmodel(cache_dir: Path) -> Path:
    return export("face_expression", cache_dir, forward)
