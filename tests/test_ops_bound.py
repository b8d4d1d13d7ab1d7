"""Kernels calling a declared kernel by address: same results as a direct call; other argument types refused."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit, types
from numba.core.errors import TypingError

from nnlite.ops import bound


@njit(nogil=True)
def _axpy(x, y, a, r0, r1):
    for i in range(r0, r1):
        y[i] += a * x[i]


bound.declare("test_axpy", _axpy, (types.float32[::1], types.float32[::1], types.float32, types.int64, types.int64))


@njit
def _halves(x, y, a, where):
    n = x.shape[0]
    bound.call(where, "test_axpy", (x, y, a, 0, n // 2))
    bound.call(where, "test_axpy", (x, y, a, n // 2, n))


@njit
def _with_float64(x, y, where):
    bound.call(where, "test_axpy", (x, y, 2.0, 0, x.shape[0]))


def test_a_bound_call_computes_what_the_direct_call_computes():
    rng = np.random.default_rng(5)
    x = rng.standard_normal(101).astype(np.float32)
    want, got = np.ones_like(x), np.ones_like(x)
    _axpy(x, want, np.float32(0.5), 0, x.shape[0])
    _halves(x, got, np.float32(0.5), bound.address("test_axpy"))
    assert np.array_equal(got, want)


def test_arguments_of_other_types_do_not_compile():
    x = np.ones(4, np.float32)
    with pytest.raises(TypingError, match="declared"):
        _with_float64(x, x.copy(), bound.address("test_axpy"))
