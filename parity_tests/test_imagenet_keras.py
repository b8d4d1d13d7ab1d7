"""Parity of the Keras-applications classifiers (NASNetMobile, Xception, ResNet50) with TensorFlow.

``tools/keras_reference.py`` builds ``keras.applications.X(weights=None)`` with seeded random weights and
non-trivial batch-norm statistics and saves it as a legacy ``.h5``, a Keras 3 ``.weights.h5`` and a TF
SavedModel (once per run, in ``cache_dir``). nnlite loads the ``.h5`` through the model registry and must
reproduce the SavedModel on real photos, image by image:

- the global-average-pool features and the logits: relative L2 <= 1e-4 (random-weight probabilities are
  close to uniform, so these are the comparisons with teeth);
- the probabilities: relative L2 <= 1e-4 and the same top-5.

A failure names the first nnlite layer that disagrees with Keras's own intermediate outputs.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np
import pytest

import nnlite
from nnlite import ops
from nnlite.graph import Model, relative_error
from nnlite.image import load_image
from nnlite.models.imagenet.keras_common import KerasLayers
from nnlite.models.imagenet.resnet50 import legacy_names
from tools.keras_reference import ensure_exported, keras_model_from_h5

MODELS = ("resnet50", "xception", "nasnet_mobile")
TOLERANCE = 1e-4
FEATURES = "avg_pool"   # nnlite's global-average-pool layer in all three models


@pytest.fixture(scope="module")
def photos(shared_dir) -> list[Path]:
    faceapi = shared_dir / "data" / "faceapi"
    chosen = [faceapi / "test-images" / "angry.jpg", faceapi / "test-images" / "faces.jpg",
              faceapi / "test-images" / "surprised_cropped.jpg", faceapi / "scenes" / "bbt1.jpg",
              faceapi / "scenes" / "bbt4.jpg"]
    try:   # scikit-image's cat and coffee photos, where it is installed
        import skimage.data
        root = Path(skimage.data.__file__).parent
        chosen += [p for p in (root / "chelsea.png", root / "coffee.png") if p.exists()]
    except ImportError:
        pass
    return chosen


@pytest.fixture(scope="module")
def exports(tf, cache_dir, photos):
    """name -> (paths of the exported files, the photos preprocessed for the model (n, h, w, 3)).

    Each model is exported on first use in a run, its batch norms calibrated on these photos so
    activations are O(1) on exactly the inputs compared."""
    def export(name: str):
        x = np.stack([preprocess(name)(load_image(p)) for p in photos])
        return ensure_exported(cache_dir / "keras", name, calibration=x), x
    return export


def preprocess(name: str):
    """Keras's preprocessing for ``name``: resize, then 'tf' (x/127.5 - 1) or 'caffe' (BGR - mean)."""
    from nnlite.vision.classify import caffe_preprocess, tf_preprocess
    return {"resnet50": caffe_preprocess((224, 224)), "xception": tf_preprocess((299, 299)),
            "nasnet_mobile": tf_preprocess((224, 224))}[name]


def classifier_from(h5: Path, name: str, home: Path, monkeypatch):
    """The registered classifier, found through the models cache as a user's fetched file would be."""
    models = home / "models"
    models.mkdir(parents=True, exist_ok=True)
    link = models / f"{name}.h5"
    if not link.exists():
        os.symlink(h5, link)
    monkeypatch.setenv("NNLITE_HOME", str(home))
    return nnlite.load(name)


def with_features(model: Model) -> Model:
    """The same layers, returning the pooled features as well as the logits."""
    return Model(model.name, model.inputs, model.layers, [FEATURES, model.outputs[0]])


def first_divergence_report(name: str, h5: Path, model: Model, x: np.ndarray) -> str:
    """Run Keras's own model on ``x`` (one image) and name the first nnlite layer that disagrees."""
    import keras
    reference_model = keras_model_from_h5(name, h5)
    wanted = {layer.output_name for layer in model.layers} | {layer.name for layer in model.layers}
    layers = [layer for layer in reference_model.layers[1:] if layer.name in wanted]
    probe = keras.Model(reference_model.input, [layer.output for layer in layers])
    activations = probe(x)
    reference = {layer.name: np.asarray(a) for layer, a in zip(layers, activations)}
    # only layers whose output is Keras's output of the same name (a BN-folded conv is compared
    # under its batch norm's or activation's name, never under its own)
    reference = {k: v for k, v in reference.items() if k in {layer.output_name for layer in model.layers}}
    divergence = model.first_divergence(reference, x, tolerance=TOLERANCE)
    return str(divergence) if divergence else "no layer diverges on this image (compared " \
        f"{len(reference)} Keras layer outputs)"


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_matches_tensorflow_on_photos(tf, exports, photos, name, tmp_path, monkeypatch):
    files, x = exports(name)                                           # x: (n, h, w, 3)
    classifier = classifier_from(files["h5"], name, tmp_path, monkeypatch)
    assert np.array_equal(np.stack([classifier.prepare(p) for p in photos]), x)
    features, logits = with_features(classifier.model)(x)              # (n, c), (n, 1000)
    probabilities = ops.softmax(logits, axis=-1)
    saved_model = tf.saved_model.load(str(files["savedmodel"]))   # keep a reference: it owns the variables
    ref_features, ref_logits, ref_probabilities = (np.asarray(t) for t in saved_model.serve(tf.constant(x)))

    for i, photo in enumerate(photos):
        errors = {"features": relative_error(features[i], ref_features[i]),
                  "logits": relative_error(logits[i], ref_logits[i]),
                  "probabilities": relative_error(probabilities[i], ref_probabilities[i])}
        ours, theirs = np.argsort(-probabilities[i])[:5], np.argsort(-ref_probabilities[i])[:5]
        if max(errors.values()) > TOLERANCE or not np.array_equal(ours, theirs):
            report = first_divergence_report(name, files["h5"], classifier.model, x[i:i + 1])
            pytest.fail(f"{name} on {photo.name}: relative errors {errors} (tolerance {TOLERANCE}), "
                        f"top-5 nnlite {ours.tolist()} vs TF {theirs.tolist()}; {report}")
    # the softmax must be neither flat nor one-hot, or the checks above would prove little
    assert ref_probabilities.max(axis=1).min() > 0.01 and ref_probabilities.max(axis=1).max() < 0.999


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_keras3_weights_layout_loads_the_same_model(tf, exports, name):
    files, _ = exports(name)
    module = importlib.import_module(f"nnlite.models.imagenet.{name}")
    legacy, keras3 = module.load_model(files["h5"]), module.load_model(files["keras3"])
    assert [layer.name for layer in keras3.layers] == [layer.name for layer in legacy.layers]
    for a, b in zip(legacy.layers, keras3.layers):
        assert a.weights.keys() == b.weights.keys(), a.name
        for key in a.weights:
            np.testing.assert_array_equal(a.weights[key], b.weights[key], err_msg=f"{a.name}.{key}")


@pytest.mark.slow
def test_resnet50_reads_keras2_names_and_suffixes(tf, exports, tmp_path):
    """The original Keras-2 file names ResNet50's layers after the Caffe model (``res2a_branch2a``)
    and its weights with ``:0``; rewrite the export that way and expect the same model."""
    import h5py
    files, _ = exports("resnet50")
    old_names = legacy_names()
    renamed = tmp_path / "resnet50_keras2.h5"
    with h5py.File(files["h5"], "r") as src, h5py.File(renamed, "w") as dst:
        layer_names = []
        for layer in (n.decode() if isinstance(n, bytes) else n for n in src.attrs["layer_names"]):
            new = old_names.get(layer, layer)
            layer_names.append(new.encode())
            group = dst.create_group(new)
            weight_names = []
            for w in src[layer].attrs["weight_names"]:
                w = w.decode() if isinstance(w, bytes) else w
                short = f"{new}/{w.split('/')[-1]}:0"
                group.create_dataset(short, data=src[layer][w][()])
                weight_names.append(short.encode())
            group.attrs["weight_names"] = weight_names
        dst.attrs["layer_names"] = layer_names
        dst.attrs["keras_version"] = b"2.2.4"
        dst.attrs["backend"] = b"tensorflow"
    assert "res2a_branch2a" in KerasLayers.from_file(renamed).weights
    module = importlib.import_module("nnlite.models.imagenet.resnet50")
    new, old = module.load_model(files["h5"]), module.load_model(renamed)
    for a, b in zip(new.layers, old.layers):
        for key in a.weights:
            np.testing.assert_array_equal(a.weights[key], b.weights[key], err_msg=f"{a.name}.{key}")


@pytest.mark.slow
def test_a_broken_layer_is_named_by_the_divergence_report(tf, exports):
    """The failure message of the parity test must point at the layer that is wrong."""
    files, x = exports("resnet50")
    model = importlib.import_module("nnlite.models.imagenet.resnet50").load_model(files["h5"])
    x = x[:1]
    broken = model["conv3_block2_2_conv"]
    broken.weights["kernel"] = broken.weights["kernel"] * np.float32(1.01)
    report = first_divergence_report("resnet50", files["h5"], model, x)
    assert "'conv3_block2_2_conv'" in report and "conv3_block2_2_relu" in report, report


@pytest.mark.parametrize("name, keras_module", [("resnet50", "resnet50"), ("xception", "xception"),
                                                ("nasnet_mobile", "nasnet")])
def test_preprocessing_is_keras_preprocess_input(tf, photos, name, keras_module):
    """After the resize, nnlite's recipe must be keras.applications.<module>.preprocess_input."""
    import keras

    from nnlite.vision.classify import resize
    size = {"xception": (299, 299)}.get(name, (224, 224))
    resized = resize(load_image(photos[0]), size).astype(np.float32)            # (h, w, 3) RGB 0..255
    expected = getattr(keras.applications, keras_module).preprocess_input(resized.copy())
    np.testing.assert_allclose(preprocess(name)(load_image(photos[0])), expected, rtol=0, atol=1e-5)
