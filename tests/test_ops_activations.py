"""Standalone activations and softmax on inputs split over threads: the float64 twins' values, NaN and
infinities as the twins have them, the same bits at 1 and 2 threads, the caller's array left alone."""

from __future__ import annotations

import numpy as np
import pytest

from nnlite import ops
from nnlite.ops import reference
from tests.test_ops import TOL, rand, rel


@pytest.mark.parametrize("name", ["relu", "relu6", "leaky_relu", "sigmoid", "swish"])
def test_standalone_activation_on_threads_leaves_its_input_alone(name):
    """A large input (split over threads): the naive twin's values, the same bits at 1 and 2 threads, NaN and
    infinities as the twin has them, and the caller's array unchanged."""
    x = rand(7, 1, 41, 39, 70, scale=8)   # 112k values: above parallel.MIN_WORK
    x.reshape(-1)[:3] = (np.nan, np.inf, -np.inf)
    before = x.copy()
    got = getattr(ops, name)(x)
    assert np.array_equal(x, before, equal_nan=True)
    with np.errstate(over="ignore", invalid="ignore"):
        want = getattr(reference, name)(x)
    assert np.allclose(got, want, rtol=1e-6, atol=1e-6, equal_nan=True)
    threads = ops.get_num_threads()
    ops.set_num_threads(1)
    try:
        assert np.array_equal(getattr(ops, name)(x), got, equal_nan=True)
    finally:
        ops.set_num_threads(threads)


def test_softmax_rows_on_threads_match_the_twin():
    """Softmax along the last axis (one compiled pass per row, rows split over threads): the float64 twin's
    values, large logits, a row of one value, NaN and infinities as the twin has them (the whole row NaN), the
    same bits at 1 and 2 threads, and another axis or a strided input the same as a contiguous copy."""
    x = rand(11, 3, 97, 23, 41, scale=30)   # 8.9k rows of 41: split over threads
    x[0, 0, 0, 5], x[0, 0, 1, 7], x[0, 0, 2, :] = np.nan, np.inf, -np.inf
    x[1, 2, 3] = np.float32(3e38)
    got = ops.softmax(x)
    with np.errstate(invalid="ignore"):
        want = reference.softmax(x)
    assert np.allclose(got, want, rtol=1e-6, atol=1e-7, equal_nan=True)
    assert np.array_equal(np.isnan(got), np.isnan(want)) and np.isnan(got[0, 0, :3]).all()
    assert np.allclose(got[1:].sum(axis=-1), 1.0, rtol=1e-6)
    threads = ops.get_num_threads()
    ops.set_num_threads(1)
    try:
        assert np.array_equal(ops.softmax(x), got, equal_nan=True)
    finally:
        ops.set_num_threads(threads)
    assert np.array_equal(ops.softmax(x[:, ::2]), ops.softmax(np.ascontiguousarray(x[:, ::2])), equal_nan=True)
    assert np.array_equal(ops.softmax(rand(3, 5, 1)), np.ones((5, 1), np.float32))
    y = rand(12, 4, 6, 5)
    assert rel(ops.softmax(y, axis=1), reference.softmax(y, axis=1)) <= TOL
    assert np.array_equal(ops.softmax(y, axis=2), ops.softmax(y, axis=-1))


SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 6.0, -1e-30, 7.5, -3.0], np.float32)


def _act_row_twin():
    """act_row applied to a copy, in place, as the two-pass loops did it: the bits the one-pass loops keep."""
    from numba import njit

    from nnlite.ops.activations import act_row

    @njit
    def twin(row, code, alpha):
        act_row(row, code, alpha)
    return twin


@pytest.mark.parametrize("code", range(6))
@pytest.mark.parametrize("n", [1, 15, 16, 17, 63, 130])
def test_one_pass_activation_loops_give_act_rows_bits(code, n):
    """act_copy(dst, src), act_sum(dst, a, b), act_sum_into(y, a) and act_sum_kept (the standalone activation,
    and the sums of an add or of a kernel's residual run: out of place, in place, the sum kept) against act_row
    on the copy / the float32 sum: NaN, infinities and signed zeros included, at lengths on either side of a
    vector; act_sum also with dst the same array as an input (its scalar path)."""
    from numba import njit

    from nnlite.ops.activations import act_copy, act_sum, act_sum_into, act_sum_kept

    @njit
    def copy(dst, src, code, alpha):
        act_copy(dst, src, code, alpha)

    @njit
    def summed(dst, a, b, code, alpha):
        act_sum(dst, a, b, code, alpha)

    @njit
    def summed_into(y, a, code, alpha):
        act_sum_into(y, a, code, alpha)

    @njit
    def summed_kept(dst, kept, a, b, code, alpha):
        act_sum_kept(dst, kept, a, b, code, alpha)
    twin = _act_row_twin()
    rng = np.random.default_rng(n * 7 + code)
    a, b = rand(n, n, scale=8).reshape(-1), rand(n + 1, n, scale=8).reshape(-1)
    a[: min(n, SPECIALS.size)] = SPECIALS[:n]
    b[: min(n, SPECIALS.size)] = rng.permutation(SPECIALS)[:n]
    alpha = np.float32(0.3)
    with np.errstate(over="ignore", invalid="ignore"):
        want = a.copy()
        twin(want, code, alpha)
        got = np.empty_like(a)
        copy(got, a, code, alpha)
        assert np.array_equal(got.view(np.int32), want.view(np.int32))   # the bits, NaN and -0.0 included
        want = a + b
        twin(want, code, alpha)
        summed(got, a, b, code, alpha)
        assert np.array_equal(got.view(np.int32), want.view(np.int32))
        inplace = b.copy()
        summed(inplace, a, inplace, code, alpha)
        assert np.array_equal(inplace.view(np.int32), want.view(np.int32))
        inplace = b.copy()
        summed_into(inplace, a, code, alpha)
        assert np.array_equal(inplace.view(np.int32), want.view(np.int32))
        inplace, kept = b.copy(), np.empty_like(a)   # act_sum_kept: the sum kept too (a dense block's chain)
        summed_kept(inplace, kept, a, inplace, code, alpha)
        assert np.array_equal(inplace.view(np.int32), want.view(np.int32))
        assert np.array_equal(kept.view(np.int32), (a + b).view(np.int32))
