"""The face-api.js nets written with TensorFlow ops (tf.nn) from the same weights, for parity tests.

Each module ``tools/faceapi_tf/<net>.py`` has ``export_savedmodel(cache_dir) -> Path``; the SavedModel is
written once per cache directory (parity ``cache_dir`` fixture) and reused. Nothing here is committed
output: these are test tools, and TensorFlow is a test-only dependency.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path


def cached_savedmodel(cache_dir: Path, name: str, build: Callable) -> Path:
    """Return ``cache_dir/name``; if it holds no SavedModel yet, ``build(tf)`` -> (module, signatures) is saved.

    The SavedModel is written to a temporary folder and renamed, so an interrupted export never leaves a
    half-written model that a later run would trust.
    """
    path = Path(cache_dir) / name
    if (path / "saved_model.pb").is_file():
        return path
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    module, signatures = build(tf)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tf.saved_model.save(module, str(tmp), signatures=signatures)
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    return path
