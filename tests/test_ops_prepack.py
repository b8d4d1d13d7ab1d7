"""Kernels packed once (nnlite.ops.prepack): only read-only ones, the same bits as packing per call, kept
exactly as long as the kernel, and a model's kernels become read-only when it first runs."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from nnlite import graph, ops
from nnlite.ops import gemv, prepack, reference

CASES = [  # (n, h, w, cin, cout, kernel size): more output channels than output pixels, so packed once
    (1, 7, 7, 40, 70, 3),
    (1, 3, 3, 64, 96, 1),
    (2, 2, 3, 24, 33, 3),   # a 1-wide last panel, two images
]


def frozen_copy(array):
    out = array.copy()
    out.flags.writeable = False
    return out


pytestmark = pytest.mark.usefixtures("simd_engine")


@pytest.mark.parametrize("case", CASES)
def test_a_read_only_kernel_is_packed_once_and_gives_the_same_bits(case):
    n, h, w, cin, cout, k = case
    rng = np.random.default_rng(cout)
    x = rng.standard_normal((n, h, w, cin)).astype(np.float32)
    kernel = rng.standard_normal((k, k, cin, cout)).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32)
    writable = ops.conv2d(x, kernel, bias, padding="same", activation="relu")
    fixed = frozen_copy(kernel)
    assert prepack.panels(kernel) is None                      # writable: packed on every call
    first = ops.conv2d(x, fixed, bias, padding="same", activation="relu")
    packed = prepack.panels(fixed)
    assert packed is not None and prepack.panels(fixed) is packed  # made once, then reused
    assert np.array_equal(first, writable)
    assert np.array_equal(ops.conv2d(x, fixed, bias, padding="same", activation="relu"), writable)
    want = reference.conv2d(x, kernel, bias, padding="same", activation="relu")
    assert np.linalg.norm(first - want) <= 1e-5 * np.linalg.norm(want)


def test_fused_depthwise_pointwise_with_a_packed_pointwise_kernel_gives_the_same_bits():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 6, 6, 48)).astype(np.float32)
    dk = rng.standard_normal((3, 3, 48, 1)).astype(np.float32)
    pk = rng.standard_normal((1, 1, 48, 80)).astype(np.float32)
    want = ops.separable_conv2d(x, dk, pk, padding="same", activation="relu6")
    got = ops.separable_conv2d(x, dk, frozen_copy(pk), padding="same", activation="relu6")
    assert np.array_equal(got, want)


@pytest.mark.parametrize("rows, n_in, n_out", [(1, 96, 1000), (3, 40, 64), (2, 17, 5)])
def test_a_read_only_dense_kernel_is_blocked_once_and_gives_the_same_bits(rows, n_in, n_out):
    rng = np.random.default_rng(n_out)
    x = rng.standard_normal((rows, n_in)).astype(np.float32)
    kernel = rng.standard_normal((n_in, n_out)).astype(np.float32)
    bias = rng.standard_normal(n_out).astype(np.float32)
    want = ops.dense(x, kernel, bias, activation="relu6")
    fixed = frozen_copy(kernel)
    assert np.array_equal(ops.dense(x, fixed, bias, activation="relu6"), want)
    assert prepack.once(fixed, "gemv", None) is not None     # made by that call, not remade
    assert np.array_equal(ops.dense(x, fixed, bias, activation="relu6"), want)
    assert np.linalg.norm(want - reference.dense(x, kernel, bias, activation="relu6")) <= 1e-5 * np.linalg.norm(want)


@pytest.mark.parametrize("shape, padding, rows", [((1, 3, 3, 40), "valid", 9), ((1, 2, 2, 24), "same", 9),
                                                   ((2, 1, 2, 9), "same", 3)])
def test_a_read_only_conv_kernel_on_a_few_pixels_is_blocked_once_and_gives_the_same_bits(shape, padding, rows):
    """A conv with at most four output pixels is a matrix-vector product: its read-only kernel is laid out in
    column blocks once, as a dense kernel's is; on a map one row high the kernel's top and bottom rows only
    ever meet padding and are left out (``rows``: the taps kept)."""
    rng = np.random.default_rng(shape[3])
    x = rng.standard_normal(shape).astype(np.float32)
    kernel = rng.standard_normal((3, 3, shape[3], 70)).astype(np.float32)
    bias = rng.standard_normal(70).astype(np.float32)
    want = ops.conv2d(x, kernel, bias, padding=padding, activation="relu")
    assert want.shape[1] * want.shape[2] * want.shape[0] <= 4
    fixed = frozen_copy(kernel)
    assert np.array_equal(ops.conv2d(x, fixed, bias, padding=padding, activation="relu"), want)
    (name, blocks), = prepack._entry(fixed)[2].items()   # one layout made
    assert name == "gemv" if rows == 9 else name.startswith("gemv-rows-")
    assert blocks.size == -(-70 // gemv.GEMV_COLS) * gemv.GEMV_COLS * rows * shape[3]  # (taps*cin) rows per block
    assert np.array_equal(ops.conv2d(x, fixed, bias, padding=padding, activation="relu"), want)
    assert prepack.once(fixed, name, None) is blocks  # not remade


def test_a_view_of_a_writable_array_is_not_frozen_and_an_entry_dies_with_its_kernel():
    base = np.zeros((3, 3, 8, 8), np.float32)
    view = base[:]
    view.flags.writeable = False
    assert not prepack.frozen(view)          # base could still change it
    assert prepack.panels(view) is None
    prepack.freeze(view)
    assert prepack.frozen(view) and not base.flags.writeable
    assert prepack.frozen(np.frombuffer(bytes(16), np.float32))
    assert not prepack.frozen(np.frombuffer(bytearray(16), np.float32))
    fixed = frozen_copy(np.ones((1, 1, 4, 40), np.float32))
    prepack.panels(fixed)
    key = id(fixed)
    assert key in prepack._cache
    del fixed
    gc.collect()
    assert key not in prepack._cache


def test_as_writable_aliases_the_same_memory():
    fixed = frozen_copy(np.arange(12, dtype=np.float32).reshape(3, 4))
    alias = prepack.as_writable(fixed)
    assert alias.flags.writeable and alias.shape == fixed.shape
    assert alias.ctypes.data == fixed.ctypes.data and np.array_equal(alias, fixed)
    plain = np.zeros(3, np.float32)
    assert prepack.as_writable(plain) is plain


def test_a_model_freezes_its_convolution_kernels_on_its_first_run():
    rng = np.random.default_rng(1)
    kernel = rng.standard_normal((1, 1, 8, 64)).astype(np.float32)
    g = graph.GraphBuilder("tiny")
    g.layer("conv2d", "conv", g.input("x", (2, 2, 8)), kernel=kernel, padding="same")
    model = g.build(["conv"])
    x = rng.standard_normal((1, 2, 2, 8)).astype(np.float32)
    kernel[0, 0, 0, 0] = 1.0                 # before the first run: still writable
    first = model(x)
    with pytest.raises(ValueError):
        kernel[0, 0, 0, 0] = 2.0             # read-only from now on: no silently stale packed copy
    changed = kernel.copy()
    changed[0, 0, 0, 0] = 2.0
    model["conv"].weights["kernel"] = changed  # a new array is packed anew
    assert not np.array_equal(model(x), first)
    assert np.array_equal(model(x), ops.conv2d(x, changed.copy(), padding="same"))


def test_prepacking_can_be_turned_off(monkeypatch):
    from nnlite.errors import ConfigError
    fixed = frozen_copy(np.ones((1, 1, 4, 40), np.float32))
    try:
        monkeypatch.setenv("NNLITE_PREPACK", "0")
        prepack.enabled.cache_clear()
        assert prepack.panels(fixed) is None
        monkeypatch.setenv("NNLITE_PREPACK", "yes")
        prepack.enabled.cache_clear()
        with pytest.raises(ConfigError, match="NNLITE_PREPACK"):
            prepack.panels(fixed)
    finally:
        monkeypatch.delenv("NNLITE_PREPACK")
        prepack.enabled.cache_clear()
    assert prepack.panels(fixed) is not None
