"""The classification API: labels, Predictions, Classifier, preprocessing, bundled models and their figures.

The reference figures are torchvision's own outputs for its MobileNetV2 on scikit-image's photos
and, for SqueezeNet 1.1, the Keras run recorded in ../shared/README.md; nnlite must meet them to 1e-3.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import nnlite
from nnlite.errors import ConfigError, ImageError, ShapeError, WeightsError, WeightsMissingError
from nnlite.graph import GraphBuilder
from nnlite.models import registry
from nnlite.paths import data_dir
from nnlite.vision.classify import (
    Classifier,
    Prediction,
    Predictions,
    resize_shorter,
    torch_center_crop,
    torch_preprocess,
)
from nnlite.vision.labels import imagenet_labels

SAMPLES = data_dir() / "samples"
BUNDLED = ("mobilenet_v2", "squeezenet1_1", "efficientnet_lite0")

# (label, score) top-5 as printed by torchvision's MobileNetV2
TORCHVISION_MOBILENET_V2 = {
    "chelsea.png": [("Egyptian_cat", 0.7166), ("tiger_cat", 0.1471), ("tabby", 0.1295), ("lynx", 0.0050),
                    ("plastic_bag", 0.0011)],
    "coffee.png": [("espresso", 0.9921), ("consomme", 0.0043), ("cup", 0.0014), ("soup_bowl", 0.0013),
                   ("coffee_mug", 0.0004)],
}
# top-1 of the same SqueezeNet weights run in Keras (../shared/README.md)
KERAS_SQUEEZENET_TOP1 = {"chelsea.png": ("Egyptian_cat", 0.498), "coffee.png": ("espresso", 0.999)}


@pytest.fixture(scope="module")
def classifiers():
    return {name: nnlite.load(name) for name in BUNDLED}


# -- labels ---------------------------------------------------------------------------------------

def test_labels_are_the_shared_class_index(shared_dir):
    labels = imagenet_labels()
    shared = json.loads((shared_dir / "data" / "imagenet_class_index.json").read_text())
    assert len(labels) == 1000 == len(shared)
    assert all([labels.wnids[i], labels.names[i]] == shared[str(i)] for i in range(1000))
    assert labels.wnids == tuple(sorted(labels.wnids))   # index order = sorted WordNet ids
    assert labels.index_of("Egyptian_cat") == 285 == labels.index_of("n02124075")


# -- Predictions ----------------------------------------------------------------------------------

def test_best_ranks_by_score_and_fills_every_field():
    labels = imagenet_labels()
    p = np.zeros(1000, np.float32)
    p[[285, 281, 967]] = [0.5, 0.3, 0.2]
    preds = Predictions(p, labels)
    assert preds.best(2) == [Prediction("Egyptian_cat", "n02124075", 285, 0.5),
                             Prediction("tabby", "n02123045", 281, pytest.approx(0.3))]
    assert [q.index for q in preds.best(4)] == [285, 281, 967, 0]   # ties keep index order
    assert len(preds.best(5000)) == 1000
    assert preds["espresso"] == pytest.approx(0.2)
    with pytest.raises(ConfigError):
        preds.best(0)


def test_predictions_reject_a_wrong_class_count():
    with pytest.raises(ShapeError, match="10 classes"):
        Predictions(np.ones(10), imagenet_labels())


# -- Classifier on a tiny graph -------------------------------------------------------------------

def _tiny_classifier(output: str) -> Classifier:
    """Global average of the 3 input channels, tiled to 1000 'logits' scaled by the class index."""
    g = GraphBuilder("tiny")
    x = g.input("input", (8, 8, 3))
    scale = np.linspace(0, 3, 1000, dtype=np.float32)

    def head(v):
        return v.mean(axis=(1, 2, 3))[:, None] * scale

    x = g.layer(head, "head", x)
    return Classifier("tiny", g.build([x]), lambda img: img[:8, :8].astype(np.float32) / 255, output=output)


def test_logits_output_is_softmaxed_and_batches_match_single_images():
    clf = _tiny_classifier("logits")
    clf.batch_size = 2   # 5 images -> chunks of 2, 2, 1
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (10 + i, 12, 3), dtype=np.uint8) for i in range(5)]
    batch = clf.classify_batch(images)
    assert len(batch) == 5
    for img, preds in zip(images, batch):
        single = clf.classify(img)
        np.testing.assert_allclose(preds.probabilities, single.probabilities, rtol=1e-6)
        assert preds.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
        assert single.best(1)[0].index == 999   # largest logit for positive mean


def test_classify_refuses_bad_images(tmp_path):
    clf = _tiny_classifier("probabilities")
    bad = tmp_path / "not_an_image.jpg"
    bad.write_bytes(b"this is text")
    with pytest.raises(ImageError, match="not_an_image.jpg"):
        clf.classify(bad)
    with pytest.raises(ImageError):
        clf.classify(tmp_path / "missing.png")


# -- preprocessing --------------------------------------------------------------------------------

def test_torch_geometry_follows_torchvision_rules():
    img = np.zeros((300, 451, 3), np.uint8)
    assert resize_shorter(img, 256).shape == (256, 384, 3)        # int(256 * 451 / 300) = 384
    assert resize_shorter(img.transpose(1, 0, 2), 256).shape == (384, 256, 3)
    ramp = np.broadcast_to(np.arange(259, dtype=np.uint8)[:, None, None], (259, 10, 3))
    assert torch_center_crop(ramp, (224, 10))[0, 0, 0] == 18      # round(35 / 2) = 18 (half to even)
    x = torch_preprocess()(np.full((300, 451, 3), 255, np.uint8))
    assert x.shape == (224, 224, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0], (1 - np.array([0.485, 0.456, 0.406])) / [0.229, 0.224, 0.225], rtol=1e-5)


# -- bundled models -------------------------------------------------------------------------------

@pytest.mark.parametrize("photo", list(TORCHVISION_MOBILENET_V2))
def test_mobilenet_v2_meets_torchvision_figures(classifiers, photo):
    best = classifiers["mobilenet_v2"].classify(SAMPLES / photo).best(5)
    assert [p.label for p in best] == [label for label, _ in TORCHVISION_MOBILENET_V2[photo]]
    for p, (label, score) in zip(best, TORCHVISION_MOBILENET_V2[photo]):
        assert abs(p.score - score) <= 1e-3, f"{photo} {label}: nnlite {p.score:.5f} vs torchvision {score}"


@pytest.mark.parametrize("photo", list(KERAS_SQUEEZENET_TOP1))
def test_squeezenet_meets_keras_figures(classifiers, photo):
    top = classifiers["squeezenet1_1"].classify(SAMPLES / photo).best(1)[0]
    label, score = KERAS_SQUEEZENET_TOP1[photo]
    assert top.label == label and abs(top.score - score) <= 1e-3, top


def test_efficientnet_lite0_sees_cats_and_espresso(classifiers):
    clf = classifiers["efficientnet_lite0"]
    cat, coffee = clf.classify_batch([SAMPLES / "chelsea.png", SAMPLES / "coffee.png"])
    assert {p.label for p in cat.best(3)} == {"Egyptian_cat", "tiger_cat", "tabby"}
    assert coffee.best(1)[0].label == "espresso"


@pytest.mark.parametrize("name", BUNDLED)
def test_registry_entry_matches_the_loaded_model(classifiers, name):
    spec = registry.get(name)
    clf = classifiers[name]
    assert spec.family == "imagenet" and spec.weights_present()
    assert spec.params == clf.model.params
    assert spec.input_size == clf.input_size
    assert clf.prepare(np.zeros((50, 70, 3), np.uint8)).shape == (*spec.input_size, 3)


def test_missing_weights_under_nnlite_weights_name_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("NNLITE_WEIGHTS", str(tmp_path))
    assert not registry.get("mobilenet_v2").weights_present()
    with pytest.raises(WeightsMissingError, match="NNLITE_WEIGHTS is set to"):
        nnlite.load("mobilenet_v2")


@pytest.mark.parametrize("module", ["mobilenet_v2", "squeezenet", "efficientnet_lite0"])
def test_corrupt_weights_raise_weights_error(tmp_path, module):
    import importlib
    bad = tmp_path / "weights.bin"
    bad.write_bytes(b"\x80\x02garbage")
    with pytest.raises(WeightsError, match="weights.bin"):
        importlib.import_module(f"nnlite.models.imagenet.{module}").load_model(bad)


@pytest.mark.parametrize("photo", ["chelsea.png", "coffee.png"])
def test_bundled_samples_are_scikit_images_photos(photo):
    """The figures above are for scikit-image's photos: the bundled copies must be exactly those pixels."""
    import skimage.data as skdata  # test extra: a missing install must fail, not skip
    from PIL import Image
    with Image.open(SAMPLES / photo) as im:
        ours = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(ours, getattr(skdata, photo.removesuffix(".png"))())
