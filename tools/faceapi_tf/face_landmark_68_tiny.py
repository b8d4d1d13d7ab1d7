"""face_landmark_68_tiny in tf.nn ops -> SavedModel returning the raw (1, 136) output."""

from __future__ import annotations

from pathlib import Path

from .face_common import export
from .face_landmark_68 import forward as full_forward


def forward(tf, w, image):
    return full_forward(tf, w, image, n_blocks=3, n_convs=3)          # 3 dense blocks of 3 convs


def export_savedmodel(cache_dir: Path) -> Path:
    return export("face_landmark_68_tiny", cache_dir, forward)
