"""Keras .h5 weights in all three layouts, checked against what Keras itself holds (layer.get_weights())."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from nnlite.errors import WeightsError
from nnlite.io.keras_h5 import LayerNotFoundError, load_keras_h5

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Keras's own get/set_weights trip a NumPy 2 deprecation inside Keras; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    """A small seeded model (all weight kinds + a nested model) and MobileNetV2, saved in every layout."""
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    keras.utils.set_random_seed(0)
    inner_in = keras.Input((9, 9, 3))
    y = keras.layers.Conv2D(4, 3, name="b_conv")(inner_in)
    y = keras.layers.BatchNormalization(name="b_bn")(y)
    backbone = keras.Model(inner_in, y, name="backbone")
    inp = keras.Input((9, 9, 3))
    x = backbone(inp)
    x = keras.layers.SeparableConv2D(5, 3, name="sep")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(12, name="fc")(x)
    tiny = keras.Model(inp, x, name="tiny")
    mobilenet = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None)
    rng = np.random.default_rng(0)
    for model in (tiny, mobilenet):  # distinct random values everywhere, so a swapped gamma/beta would show
        for layer in model.layers:
            layer.set_weights([rng.standard_normal(w.shape).astype(w.dtype) for w in layer.get_weights()])
    out = tmp_path_factory.mktemp("keras")
    files = {}
    for tag, model in (("tiny", tiny), ("mobilenet", mobilenet)):
        model.save(out / f"{tag}_full.h5")
        model.save_weights(out / f"{tag}.weights.h5")
        with h5py.File(out / f"{tag}_legacy.h5", "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, model)
        expected = {}
        for layer in _flat_layers(model):
            if layer.weights:
                expected[layer.name] = ([w.numpy() for w in layer.weights],
                                        [w.path.rsplit("/", 1)[-1] for w in layer.weights])
        files[tag] = (out, expected)
    return files


def _flat_layers(model):
    for layer in model.layers:
        yield from (_flat_layers(layer) if hasattr(layer, "layers") else [layer])


LAYOUTS = [("_full.h5", "legacy-model"), ("_legacy.h5", "legacy-weights"), (".weights.h5", "keras3")]


@pytest.mark.parametrize("tag", ["tiny", "mobilenet"])
@pytest.mark.parametrize("suffix,layout", LAYOUTS)
def test_layouts_match_keras(keras_files, tag, suffix, layout):
    out, expected = keras_files[tag]
    weights = load_keras_h5(out / f"{tag}{suffix}")
    assert weights.layout == layout
    assert set(weights) == set(expected)
    if layout != "keras3":  # legacy files keep the model's layer order
        assert list(weights) == list(expected)
    for name, (arrays, short_names) in expected.items():
        got = weights[name]
        assert len(got) == len(arrays), name
        for g, want in zip(got, arrays):
            assert g.dtype == np.float32
            np.testing.assert_array_equal(g, want, err_msg=name)
        assert weights.weight_names(name) == (None if layout == "keras3" else short_names)


def test_expected_short_names(keras_files):
    out, _ = keras_files["tiny"]
    w = load_keras_h5(out / "tiny_legacy.h5")
    assert w.weight_names("b_bn") == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert w.weight_names("sep") == ["depthwise_kernel", "pointwise_kernel", "bias"]
    assert list(w.named("b_conv")) == ["kernel", "bias"]
    with pytest.raises(WeightsError, match="unnamed"):
        load_keras_h5(out / "tiny.weights.h5").named("b_conv")


def test_missing_layer_names_the_file_and_near_matches(keras_files):
    out, _ = keras_files["mobilenet"]
    w = load_keras_h5(out / "mobilenet_legacy.h5")
    assert "Conv1" in w and "Conv_1" in w and "nope" not in w and w.get("nope") is None
    with pytest.raises(LayerNotFoundError, match=r"mobilenet_legacy.h5.*'Conv2'.*closest: Conv1"):
        w["Conv2"]


def test_keras2_style_names_with_colon_suffix_and_bytes(tmp_path):
    """The published Keras-2 files: byte-string attributes, ':0' suffixes, names repeating the layer."""
    rng = np.random.default_rng(3)
    kernel, bias = rng.standard_normal((3, 3, 3, 8)).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    path = tmp_path / "keras2.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([b"input_1", b"block1_conv1", b"predictions"], dtype="S")
        f.create_group("input_1").attrs["weight_names"] = np.array([], dtype="S")
        g = f.create_group("block1_conv1")
        g.attrs["weight_names"] = np.array([b"block1_conv1/block1_conv1/kernel:0",
                                            b"block1_conv1/block1_conv1/bias:0"], dtype="S")
        g["block1_conv1/block1_conv1/kernel:0"], g["block1_conv1/block1_conv1/bias:0"] = kernel, bias
        p = f.create_group("predictions")
        p.attrs["weight_names"] = np.array([b"predictions/kernel:0"], dtype="S")
        p["predictions/kernel:0"] = kernel[0, 0]
    w = load_keras_h5(path)
    assert list(w) == ["block1_conv1", "predictions"]
    assert w.weight_names("block1_conv1") == ["kernel", "bias"] and w.weight_names("predictions") == ["kernel"]
    np.testing.assert_array_equal(w["block1_conv1"][0], kernel)
    np.testing.assert_array_equal(w["block1_conv1"][1], bias)


def test_keras3_vars_are_read_in_numeric_order(tmp_path):
    path = tmp_path / "many.weights.h5"
    with h5py.File(path, "w") as f:
        v = f.create_group("layers/custom/vars")
        v.attrs["name"] = "custom"
        for i in range(12):  # h5py lists '10', '11' before '2'
            v[str(i)] = np.full((1,), i, np.float32)
    assert [int(a[0]) for a in load_keras_h5(path)["custom"]] == list(range(12))


# ---------------------------------------------------------------- malformed files


def _h5(path, build):
    with h5py.File(path, "w") as f:
        build(f)
    return path


@pytest.mark.parametrize("build,message", [
    (lambda f: f.create_dataset("x", data=[1.0]), "not a Keras weights file"),
    (lambda f: f.attrs.__setitem__("layer_names", np.array([b"conv1"], "S")), "'conv1'.*no group"),
    (lambda f: f.create_group("conv1").attrs.__setitem__("weight_names", np.array([b"conv1/kernel:0"], "S"))
     or f.attrs.__setitem__("layer_names", np.array([b"conv1"], "S")), "'conv1'.*'conv1/kernel:0'.*no such"),
    (lambda f: f.create_group("layers/dense/vars").create_dataset("1", data=[1.0]), r"expected 0\.\.0"),
])
def test_structurally_broken_h5(tmp_path, build, message):
    path = _h5(tmp_path / "broken.h5", build)
    with pytest.raises(WeightsError, match=f"broken.h5.*{message}"):
        load_keras_h5(path)


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(64), bytes(range(256)) * 16,
                                     b"\x89HDF\r\n\x1a\n" + bytes(100)])
def test_not_hdf5(tmp_path, content):
    path = tmp_path / "model.h5"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="model.h5"):
        load_keras_h5(path)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_truncated_h5(keras_files, tmp_path, fraction):
    out, _ = keras_files["mobilenet"]
    for name in ("mobilenet_full.h5", "mobilenet.weights.h5"):
        data = (out / name).read_bytes()
        path = tmp_path / f"cut_{name}"
        path.write_bytes(data[: int(len(data) * fraction)])
        with pytest.raises(WeightsError, match=f"cut_{name}"):
            load_keras_h5(path)


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match="not found.*gone.h5"):
        load_keras_h5(tmp_path / "gone.h5")
