"""face_landmark_68 (and its tiny twin) in tf.nn ops -> SavedModel returning the raw (1, 136) output."""

from __future__ import annotations

from pathlib import Path

from .face_common import dense_extractor, export, preprocess


def forward(tf, w, image, n_blocks: int = 4, n_convs: int = 4):
    x = preprocess(tf, image, 112, 255.0)
    x = dense_extractor(tf, w, x, n_blocks, n_convs)                  # (1, 256)
    return tf.matmul(x, w["fc/weights"]) + w["fc/bias"]               # (1, 136)


def export_savedmodel(cache_dir: Path) -> Path:
    return export("face_landmark_68", cache_dir, forward)
