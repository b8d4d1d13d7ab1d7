"""Winograd's F(2x2, 3x3) for 3x3 convolutions at stride 1 (nnlite.ops.winograd): against the float64 direct
twin, its own bits across thread counts, blocks and positions, the transform matrices, and when it is used.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

from nnlite import ops
from nnlite.ops import conv, gemm, machine, parallel, reference, winograd
from tests.closeness import TOL, rel


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _clear():
    gemm.layout.cache_clear()
    conv._layout.cache_clear()


@pytest.fixture
def everywhere(simd_engine, monkeypatch):
    """Winograd for every 3x3 stride-1 convolution, however small (its edges: 1-pixel maps, 1 channel)."""
    monkeypatch.setattr(winograd, "MIN_TILES", 1)
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 1)
    _clear()
    yield
    _clear()


def _uses_winograd(x, kernel, padding):
    lay = conv._fast_layout(x, kernel, None, 1, padding, 1, None)
    return lay is not None and lay.winograd


@pytest.mark.parametrize("seed", range(24))
def test_matches_the_float64_twin_on_random_shapes(everywhere, seed):
    rng = np.random.default_rng(seed)
    n, h, w = int(rng.integers(1, 4)), int(rng.integers(1, 13)), int(rng.integers(1, 13))
    cin, cout = int(rng.integers(1, 40)), int(rng.integers(1, 75))
    padding = ["same", (int(rng.integers(0, 3)), int(rng.integers(0, 3)), int(rng.integers(0, 3)),
                        int(rng.integers(0, 3))), "valid"][seed % 3]
    if padding == "valid":
        h, w = h + 2, w + 2
    act = [None, "relu", "relu6", "leaky_relu"][seed % 4]
    x, kernel, bias = rand(rng, n, h, w, cin), rand(rng, 3, 3, cin, cout), rand(rng, cout)
    assert _uses_winograd(x, kernel, padding)
    got = ops.conv2d(x, kernel, bias if seed % 2 else None, padding=padding, activation=act, alpha=0.1)
    want = reference.conv2d(x, kernel, bias if seed % 2 else None, padding=padding, activation=act, alpha=0.1)
    assert got.shape == want.shape
    assert rel(got, want) <= TOL


def test_the_transforms_compute_the_convolution():
    """A^T [(G g G^T) * (B^T d B)] A is the 2x2 correlation of a 4x4 patch d with a 3x3 g (float64), with
    kernel_transform's G and B, A written out here."""
    rng = np.random.default_rng(0)
    bt = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64)
    at = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)
    for _ in range(5):
        d, g = rng.standard_normal((4, 4)), rng.standard_normal((3, 3))
        u = winograd.kernel_transform(g.reshape(3, 3, 1, 1).astype(np.float32)).reshape(4, 4).astype(np.float64)
        got = at @ (u * (bt @ d @ bt.T)) @ at.T
        want = np.array([[np.sum(d[i:i + 3, j:j + 3] * g) for j in range(2)] for i in range(2)])
        assert np.allclose(got, want, rtol=1e-6, atol=1e-6)


def test_the_kernel_transform_keeps_each_channel_pair_apart():
    """Every (cin, cout) pair of a multi-channel kernel gets its own G g G^T (G written out here)."""
    g_mat = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
    g = np.random.default_rng(1).standard_normal((3, 3, 2, 5)).astype(np.float32)
    u = winograd.kernel_transform(g).reshape(4, 4, 2, 5)
    for c, k in np.ndindex(2, 5):
        assert np.array_equal(u[:, :, c, k], (g_mat @ g[:, :, c, k].astype(np.float64) @ g_mat.T).astype(np.float32))


def test_thread_counts_and_blocks_give_the_same_bits(everywhere, monkeypatch):
    """A tile's arithmetic does not depend on its block or thread: 1 and 2 threads, blocks of 16 tiles (a
    small L2) or of all of them, the same bits."""
    rng = np.random.default_rng(5)
    x, kernel, bias = rand(rng, 2, 23, 17, 24), rand(rng, 3, 3, 24, 40), rand(rng, 40)
    results = []
    before = ops.get_num_threads()
    try:
        for l2 in (1 << 14, 1 << 24):
            small = machine.caches()._replace(l2=l2)
            monkeypatch.setattr(machine, "caches", lambda small=small: small)
            assert winograd.block_tiles(24, 40, 2 * 12 * 9, 1) == (16 if l2 < 1 << 20 else 216)
            for threads in (1, 2):
                parallel.set_threads(threads)
                numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
                results.append(ops.conv2d(x, kernel, bias, padding="same", activation="relu"))
    finally:
        ops.set_num_threads(before)
    for r in results[1:]:
        assert np.array_equal(r, results[0])


def test_a_tile_has_the_same_bits_wherever_it_is(everywhere):
    """Cropping an even number of columns moves every tile to another place in the blocks and register
    tiles (and the last tiles across the edge): with 'valid' padding no output bit may change."""
    rng = np.random.default_rng(9)
    x, kernel = rand(rng, 1, 6, 40, 20), rand(rng, 3, 3, 20, 33)
    whole = ops.conv2d(x, kernel, padding="valid", activation="leaky_relu")
    for crop in range(2, 30, 2):
        part = ops.conv2d(np.ascontiguousarray(x[:, :, crop:]), kernel, padding="valid", activation="leaky_relu")
        assert np.array_equal(part, whole[:, :, crop:]), crop


def test_a_frozen_kernel_is_transformed_once_with_the_same_bits(everywhere):
    rng = np.random.default_rng(2)
    x, kernel = rand(rng, 1, 10, 10, 16), rand(rng, 3, 3, 16, 48)
    writable = ops.conv2d(x, kernel, padding="same")
    frozen = kernel.copy()
    frozen.flags.writeable = False
    assert np.array_equal(ops.conv2d(x, frozen, padding="same"), writable)
    from nnlite.ops import prepack
    assert prepack.once(frozen, "winograd-f2x3", lambda view: None) is not None  # kept from the call


@pytest.mark.parametrize("act", ["sigmoid", "swish"])
def test_exp_activations_stay_on_the_direct_gemm(simd_engine, monkeypatch, act):
    rng = np.random.default_rng(4)
    x, kernel = rand(rng, 1, 20, 20, 32), rand(rng, 3, 3, 32, 32)
    _clear()
    assert _uses_winograd(x, kernel, "same")
    got = ops.conv2d(x, kernel, padding="same", activation=act)
    monkeypatch.setattr(winograd, "enabled", lambda: False)
    _clear()
    try:
        assert np.array_equal(got, ops.conv2d(x, kernel, padding="same", activation=act))
    finally:
        _clear()


def test_conv_then_pool_keeps_the_bits_of_the_two_ops(everywhere):
    from nnlite.ops.convpool import conv2d_max_pool
    rng = np.random.default_rng(6)
    x, kernel, bias = rand(rng, 1, 12, 12, 16), rand(rng, 3, 3, 16, 24), rand(rng, 24)
    fused = conv2d_max_pool(x, kernel, bias, padding="same", activation="relu", pool_size=2)
    apart = ops.max_pool2d(ops.conv2d(x, kernel, bias, padding="same", activation="relu"), pool_size=2)
    assert np.array_equal(fused, apart)


def test_when_it_is_chosen(monkeypatch):
    assert winograd.chosen((3, 3, 64, 64), (1, 1), (1, 1), (1, 56, 56, 64))
    assert not winograd.chosen((3, 3, 64, 64), (2, 2), (1, 1), (1, 28, 28, 64))     # strided
    assert not winograd.chosen((3, 3, 64, 64), (1, 1), (2, 2), (1, 56, 56, 64))     # dilated
    assert not winograd.chosen((5, 5, 64, 64), (1, 1), (1, 1), (1, 56, 56, 64))     # not 3x3
    assert not winograd.chosen((3, 3, 3, 64), (1, 1), (1, 1), (1, 56, 56, 64))      # an RGB stem
    assert not winograd.chosen((3, 3, 512, 512), (1, 1), (1, 1), (1, 7, 7, 512))   # 16 tiles
    assert winograd.chosen((3, 3, 128, 128), (1, 1), (1, 1), (1, 9, 9, 128))       # 25 tiles
    assert winograd.chosen((3, 3, 512, 512), (1, 1), (1, 1), (8, 7, 7, 512))       # 128 tiles
    monkeypatch.setenv("NNLITE_WINOGRAD", "0")
    winograd.enabled.cache_clear()
    try:
        assert not winograd.chosen((3, 3, 64, 64), (1, 1), (1, 1), (1, 56, 56, 64))
    finally:
        monkeypatch.delenv("NNLITE_WINOGRAD")
        winograd.enabled.cache_clear()
