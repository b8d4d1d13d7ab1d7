"""The fast batch-norm fold must give the naive twin's exact bits (it only avoids float64 temporaries)."""

from __future__ import annotations

import numpy as np
import pytest

from nnlite import ops
from nnlite.errors import ShapeError
from nnlite.ops import reference


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("depthwise,shape", [(False, (3, 3, 8, 4)), (False, (16, 10)), (True, (3, 3, 5, 2)),
                                             (True, (5, 5, 7, 1))])
@pytest.mark.parametrize("with_bias", [False, True])
def test_fold_batch_norm_matches_reference_bitwise(dtype, depthwise, shape, with_bias):
    rng = np.random.default_rng(7)
    kernel = (rng.standard_normal(shape) * 3).astype(dtype)
    cout = shape[-2] * shape[-1] if depthwise else shape[-1]
    gamma, beta, mean = (rng.standard_normal(cout).astype(np.float32) for _ in range(3))
    variance = rng.random(cout).astype(np.float32) + 0.01
    bias = rng.standard_normal(cout).astype(np.float32) if with_bias else None
    want = reference.fold_batch_norm(kernel, bias, gamma, beta, mean, variance, epsilon=1e-3, depthwise=depthwise)
    got = ops.fold_batch_norm(kernel, bias, gamma, beta, mean, variance, epsilon=1e-3, depthwise=depthwise)
    assert got[0].dtype == np.float32 and got[0].shape == kernel.shape
    np.testing.assert_array_equal(got[0].view(np.uint32), want[0].view(np.uint32))
    np.testing.assert_array_equal(got[1].view(np.uint32), want[1].view(np.uint32))


def test_fold_batch_norm_gamma_beta_none_and_bad_stats():
    kernel = np.ones((1, 1, 2, 3), np.float32)
    want = reference.fold_batch_norm(kernel, None, None, None, np.zeros(3), np.ones(3), epsilon=0.0)
    got = ops.fold_batch_norm(kernel, None, None, None, np.zeros(3), np.ones(3), epsilon=0.0)
    np.testing.assert_array_equal(got[0], want[0])
    with pytest.raises(ShapeError, match="mean"):
        ops.fold_batch_norm(kernel, None, None, None, np.zeros(4), np.ones(4), epsilon=0.0)


def test_fold_into_out_and_in_place_give_the_same_bits():
    rng = np.random.default_rng(11)
    kernel = rng.standard_normal((3, 3, 4, 6)).astype(np.float32)
    stats = [rng.standard_normal(6).astype(np.float32) for _ in range(3)] + [rng.random(6).astype(np.float32) + 0.5]
    want_k, want_b = ops.fold_batch_norm(kernel, None, *stats, epsilon=1e-3)
    out = np.empty_like(kernel)
    got_k, got_b = ops.fold_batch_norm(kernel, None, *stats, epsilon=1e-3, out=out)
    assert got_k is out and np.array_equal(got_k, want_k) and np.array_equal(got_b, want_b)
    same = kernel.copy()
    got_k, _ = ops.fold_batch_norm(same, None, *stats, epsilon=1e-3, out=same)  # in place
    assert got_k is same and np.array_equal(same, want_k)
    with pytest.raises(ShapeError, match="out must be"):
        ops.fold_batch_norm(kernel, None, *stats, epsilon=1e-3, out=np.empty((3, 3), np.float32))
