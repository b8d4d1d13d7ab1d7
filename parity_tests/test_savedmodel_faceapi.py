"""Parity: the face-api.js TensorFlow SavedModels (tools/faceapi_tf/, built for the face parity tests) run
through nnlite.savedmodel exactly as TensorFlow runs them: the loader handles tf.function exports with
dynamic shapes (the in-graph input rule: Shape, Pad, ResizeBilinear, ...) and NonMaxSuppressionV3."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from PIL import Image

from nnlite.savedmodel import load

PHOTO = "data/faceapi/test-images/angry_cropped.jpg"
SCENE = "data/faceapi/scenes/bbt1.jpg"
CASES = [  # (net, signature, photo, TF's extra inputs)
    ("face_landmark_68_tiny", "serving_default", PHOTO, {}),
    ("face_recognition", "serving_default", PHOTO, {}),
    ("tiny_face_detector", "detect", SCENE, {"input_size": np.int32(416), "min_score": np.float32(0.5)}),
]


def _rgb(shared_dir, rel: str) -> np.ndarray:
    return np.asarray(Image.open(shared_dir / rel).convert("RGB"), np.float32)[None]


@pytest.mark.slow
@pytest.mark.parametrize("net, signature, photo, extra", CASES, ids=[c[0] for c in CASES])
def test_faceapi_savedmodel_runs_in_nnlite(tf, cache_dir, shared_dir, net, signature, photo, extra):
    path = importlib.import_module(f"tools.faceapi_tf.{net}").export_savedmodel(cache_dir)
    feeds = {"image": _rgb(shared_dir, photo), **extra}
    ref = tf.saved_model.load(str(path)).signatures[signature](**{k: tf.constant(v) for k, v in feeds.items()})
    m = load(path)
    keys = list(m.signatures[signature].outputs)
    ys = m.run(feeds, None, signature=signature)
    assert len(ys) == len(keys)
    for key, y in zip(keys, ys):
        r = ref[key].numpy()
        assert y.shape == r.shape, key
        if r.size:
            rel = np.linalg.norm(y - r) / np.linalg.norm(r)
            assert rel <= 1e-5, f"{net} {key}: relative L2 {rel:.2e}"
    if net == "tiny_face_detector":
        assert len(ys[1]) >= 2  # a group photo: faces kept by the in-graph NMS
