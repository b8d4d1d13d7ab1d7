"""Parity: the bundled pretrained ImageNet classifiers in nnlite vs TensorFlow running the same weight files.

The reference is a Keras model built by ``tools/imagenet_tf`` from the bundled weights - real batch-norm
layers with the source framework's epsilon, explicit symmetric padding for torchvision, TF 'same' where
the source used it - exported as a TF SavedModel into the parity cache and reloaded. Both sides get the
same preprocessed real photos. Criterion: relative L2 ||nnlite - tf|| / ||tf|| <= 1e-4 on the
raw output and on the probabilities, and the same top-5 classes. A failure names the first layer that
diverges (``graph.Model.first_divergence`` against the Keras intermediates).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import nnlite
from nnlite.graph import relative_error
from nnlite.paths import data_dir
from tools import imagenet_tf

MODELS = list(imagenet_tf.MODULES)
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def photos(shared_dir) -> dict[str, np.ndarray]:
    """Real photos of different sizes and subjects: cat, coffee, a group of faces, a TV-show scene."""
    paths = [data_dir() / "samples" / n for n in ("chelsea.png", "coffee.png", "faces.jpg")]
    paths.append(shared_dir / "data" / "faceapi" / "scenes" / "bbt1.jpg")
    out = {}
    for p in paths:
        with Image.open(p) as im:
            out[p.name] = np.asarray(im.convert("RGB"))
    return out


def _divergence_report(name: str, model, x: np.ndarray) -> str:
    ref = imagenet_tf.reference_activations(name, x)
    div = model.first_divergence(ref, x, tolerance=TOLERANCE)
    return str(div) if div else f"no single layer exceeds {TOLERANCE} (compared {len(ref)} layers)"


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_bundled_classifier_matches_tensorflow(name, tf, cache_dir, photos):
    clf = nnlite.load(name)
    saved = tf.saved_model.load(str(imagenet_tf.export_savedmodel(name, cache_dir)))   # keep: owns the variables
    x = np.stack([clf.prepare(img) for img in photos.values()])          # (N, h, w, 3)

    ours_raw = np.asarray(clf.model(x))
    ref_raw = saved.serve(tf.constant(x)).numpy()
    ours_p = clf.probabilities(x)
    ref_p = tf.nn.softmax(ref_raw).numpy() if clf.output == "logits" else ref_raw

    for i, photo in enumerate(photos):
        errors = {"raw output": relative_error(ours_raw[i], ref_raw[i]),
                  "probabilities": relative_error(ours_p[i], ref_p[i])}
        ours_top = list(np.argsort(-ours_p[i], kind="stable")[:5])
        ref_top = list(np.argsort(-ref_p[i], kind="stable")[:5])
        bad = {k: e for k, e in errors.items() if not e <= TOLERANCE}
        if bad or ours_top != ref_top:
            report = _divergence_report(name, clf.model, x[i:i + 1])
            pytest.fail(f"{name} on {photo}: relative L2 {errors} (tolerance {TOLERANCE}), top-5 nnlite "
                        f"{ours_top} vs TF {ref_top}; {report}")


@pytest.mark.slow
def test_divergence_report_names_the_layer_with_the_wrong_convention(monkeypatch, photos):
    """The report is what a developer reads when parity breaks: give MobileNetV2 TF 'same' padding instead of
    torchvision's symmetric padding, and the report must point at the first stride-2 conv, features.0.0."""
    clf = nnlite.load("mobilenet_v2")
    x = clf.prepare(photos["chelsea.png"])[None]
    ref = imagenet_tf.reference_activations("mobilenet_v2", x)
    assert clf.model.first_divergence(ref, x, tolerance=TOLERANCE) is None

    from nnlite.models.imagenet import _torch, mobilenet_v2
    monkeypatch.setattr(_torch, "symmetric_padding", lambda k: "same")
    broken = mobilenet_v2.load_model()
    div = broken.first_divergence(ref, x, tolerance=TOLERANCE)
    assert div is not None and div.layer == "features.0.0", div
