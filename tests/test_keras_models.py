"""The Keras-applications models without TensorFlow: weight lookup, batch-norm folding, errors.

Parity of the whole architectures with TensorFlow is in parity_tests/test_imagenet_keras.py.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import nnlite
from nnlite import ops
from nnlite.errors import WeightsError, WeightsMissingError
from nnlite.models.imagenet import nasnet_mobile, resnet50, xception
from nnlite.models.imagenet.keras_common import KerasLayers, split_batch_norm

rng = np.random.default_rng(7)


def bn_stats(c: int) -> list[np.ndarray]:
    return [rng.uniform(0.5, 1.5, c).astype(np.float32), rng.uniform(-1, 1, c).astype(np.float32),
            rng.uniform(-1, 1, c).astype(np.float32), rng.uniform(0.2, 2, c).astype(np.float32)]


def test_conv_bn_folding_equals_conv_then_batch_norm():
    kernel = rng.standard_normal((3, 3, 4, 6)).astype(np.float32)       # (kh, kw, cin, cout)
    stats = bn_stats(6)
    w = KerasLayers({"c": [kernel], "bn": stats}, "mem.h5")
    x = rng.standard_normal((2, 9, 9, 4)).astype(np.float32)
    folded = ops.conv2d(x, **w.conv_bn("c", "bn", epsilon=1e-3), padding="same")
    expected = ops.batch_norm(ops.conv2d(x, kernel, padding="same"), *stats, epsilon=1e-3)
    np.testing.assert_allclose(folded, expected, rtol=1e-4, atol=1e-4)


def test_separable_folding_equals_separable_then_batch_norm():
    depthwise = rng.standard_normal((3, 3, 4, 1)).astype(np.float32)    # (kh, kw, cin, 1)
    pointwise = rng.standard_normal((1, 1, 4, 5)).astype(np.float32)    # (1, 1, cin, cout)
    stats = bn_stats(5)
    w = KerasLayers({"s": [depthwise, pointwise], "s_bn": stats}, "mem.h5")
    x = rng.standard_normal((1, 8, 8, 4)).astype(np.float32)
    folded = ops.separable_conv2d(x, **w.separable_bn("s", "s_bn", epsilon=1e-3), padding="same")
    expected = ops.batch_norm(ops.separable_conv2d(x, depthwise, pointwise, padding="same"), *stats, epsilon=1e-3)
    np.testing.assert_allclose(folded, expected, rtol=1e-4, atol=1e-4)


def test_batch_norm_after_a_concat_folds_into_each_half():
    k1, k2 = (rng.standard_normal((1, 1, 3, 2)).astype(np.float32) for _ in range(2))
    stats = bn_stats(4)
    x = rng.standard_normal((1, 5, 5, 3)).astype(np.float32)
    halves = [ops.conv2d(x, *ops.fold_batch_norm(k, None, *split_batch_norm(stats, lo, lo + 2), epsilon=1e-3))
              for k, lo in ((k1, 0), (k2, 2))]
    expected = ops.batch_norm(ops.concat(ops.conv2d(x, k1), ops.conv2d(x, k2)), *stats, epsilon=1e-3)
    np.testing.assert_allclose(ops.concat(*halves), expected, rtol=1e-4, atol=1e-4)


def test_unnamed_layers_come_in_numbering_order_not_file_order():
    arrays = [np.zeros((1, 1, 1, 1), np.float32)]
    # a Keras 3 file lists groups alphabetically: conv2d_10 before conv2d_9
    w = KerasLayers({name: arrays for name in ("block1_conv1", "conv2d_10", "conv2d_8", "conv2d_9")}, "m.h5")
    assert w.unnamed("conv2d") == ["conv2d_8", "conv2d_9", "conv2d_10"]
    w = KerasLayers({name: arrays for name in ("conv2d_1", "conv2d")}, "m.h5")   # Keras 3 numbering
    assert w.unnamed("conv2d") == ["conv2d", "conv2d_1"]


def test_errors_name_the_file_and_the_layer():
    w = KerasLayers({"c": [np.zeros((3, 3, 2, 4), np.float32)], "bn": bn_stats(5)}, "model.h5")
    with pytest.raises(WeightsError, match=r"model.h5: layer 'missing'"):
        w.conv_bn("missing", None, epsilon=1e-3)
    with pytest.raises(WeightsError, match=r"model.h5: batch norm 'bn' gamma has shape \(5,\), expected \(4,\)"):
        w.conv_bn("c", "bn", epsilon=1e-3)
    with pytest.raises(WeightsError, match=r"layer 'bn' has 4 arrays, expected 2"):
        w.dense("bn")


def test_unused_layers_mean_another_models_file():
    w = KerasLayers({"a": [np.zeros((2, 3), np.float32), np.zeros(3, np.float32)],
                     "extra_head": [np.zeros((3, 3), np.float32)]}, "m.h5")
    w.dense("a")
    with pytest.raises(WeightsError, match=r"not part of resnet50: \['extra_head'\]"):
        w.require_all_used("resnet50")


def test_resnet50_accepts_the_original_caffe_style_names():
    names = resnet50.legacy_names()
    assert names["conv1_conv"] == "conv1" and names["conv1_bn"] == "bn_conv1"
    assert names["conv2_block1_0_conv"] == "res2a_branch1"
    assert names["conv2_block1_1_conv"] == "res2a_branch2a" and names["conv2_block1_1_bn"] == "bn2a_branch2a"
    assert names["conv4_block6_3_conv"] == "res4f_branch2c" and names["predictions"] == "fc1000"
    assert len(names) == 3 + 2 * (4 * 4 + 3 * 12)     # 4 projection blocks, 12 identity blocks
    w = KerasLayers({"res3d_branch2b": [np.zeros((3, 3, 1, 1), np.float32)]}, "old.h5", aliases=names)
    assert w.conv_bn("conv3_block4_2_conv", None, epsilon=1e-5)["kernel"].shape == (3, 3, 1, 1)


def test_nasnet_pads_stride_2_layers_like_keras_correct_pad():
    assert nasnet_mobile.correct_pad(111, 3) == (1, 1, 1, 1)     # odd input: symmetric
    assert nasnet_mobile.correct_pad(56, 5) == (1, 2, 1, 2)      # even input: one less before
    assert nasnet_mobile.correct_pad(28, 7) == (2, 3, 2, 3)


@pytest.mark.parametrize("name", ["nasnet_mobile", "xception", "resnet50"])
def test_missing_weights_name_the_fetch_command(name, tmp_path, monkeypatch):
    monkeypatch.setenv("NNLITE_HOME", str(tmp_path))
    with pytest.raises(WeightsMissingError, match=f"nnlite fetch {name}"):
        nnlite.load(name)


def test_another_models_file_is_a_weights_error(tmp_path):
    path = tmp_path / "not_xception.h5"
    with h5py.File(path, "w") as f:           # legacy Keras-2 layout, ':0' suffixes
        f.attrs["layer_names"] = [b"conv1"]
        group = f.create_group("conv1")
        group.attrs["weight_names"] = [b"conv1/kernel:0"]
        group.create_dataset("conv1/kernel:0", data=np.zeros((7, 7, 3, 64), np.float32))
    with pytest.raises(WeightsError, match="not_xception.h5"):
        xception.load_model(path)
    with pytest.raises(WeightsError, match="not_xception.h5: layer 'stem_conv1'"):
        nasnet_mobile.load_model(path)
