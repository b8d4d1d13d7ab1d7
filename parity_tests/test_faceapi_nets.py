"""Parity: the five face nets in nnlite vs the same nets written in tf.nn ops (tools/faceapi_tf/).

Both sides get the same real face crops as raw RGB and do the whole face-api.js input rule themselves
(centred pad to square, legacy bilinear resize, mean/divisor), so the input rule is checked too.
Criterion: relative L2 error ||nnlite - tf|| / ||tf|| <= 1e-4 on every raw output.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from PIL import Image

from nnlite.graph import relative_error

NETS = {  # manifest name -> (nnlite module, class)
    "face_landmark_68": ("face_landmark_68", "FaceLandmark68Net"),
    "face_landmark_68_tiny": ("face_landmark_68_tiny", "FaceLandmark68TinyNet"),
    "face_recognition": ("face_recognition", "FaceRecognitionNet"),
    "age_gender": ("age_gender", "AgeGenderNet"),
    "face_expression": ("face_expression", "FaceExpressionNet"),
}
# square greyscale, portrait RGB (odd pad), two expression crops, identity crops of other sizes
IMAGES = ["test-images/face1.png", "test-images/face2.png", "test-images/face_rectangular.png",
          "test-images/angry_cropped.jpg", "test-images/surprised_cropped.jpg",
          "identities/amy/amy1.png", "identities/raj/raj3.png"]
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def images(shared_dir):
    out = {}
    for rel in IMAGES:
        with Image.open(shared_dir / "data" / "faceapi" / rel) as im:
            out[rel] = np.asarray(im.convert("RGB"))
    return out


def _outputs(value) -> list[np.ndarray]:
    return [np.asarray(v) for v in (value if isinstance(value, tuple) else (value,))]


@pytest.mark.slow
@pytest.mark.parametrize("net", list(NETS))
def test_face_net_matches_tensorflow(net, tf, cache_dir, images):
    tool = importlib.import_module(f"tools.faceapi_tf.{net}")
    serve = tf.saved_model.load(str(tool.export_savedmodel(cache_dir))).signatures["serving_default"]
    module, cls = NETS[net]
    ours_net = getattr(importlib.import_module(f"nnlite.models.faceapi.{module}"), cls)()

    batch = list(images.values())
    ours_batch = _outputs(ours_net.forward(batch))          # one batch of mixed sizes
    for i, (name, img) in enumerate(images.items()):
        ref = serve(image=tf.constant(img[None].astype(np.float32)))
        refs = [ref[f"output_{k}"].numpy() for k in range(len(ref))]
        ours = _outputs(ours_net.forward([img]))
        assert len(ours) == len(refs)
        for k, (o, r) in enumerate(zip(ours, refs)):
            err = relative_error(o, r)
            assert err <= TOLERANCE, f"{net} output {k} on {name}: relative L2 {err:.3g} > {TOLERANCE}"
            err_b = relative_error(ours_batch[k][i:i + 1], r)
            assert err_b <= TOLERANCE, f"{net} output {k} on {name} in a batch: relative L2 {err_b:.3g}"
