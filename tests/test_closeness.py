"""tests/closeness.py's value-by-value check can fail, and takes what float32 rounding does."""

from __future__ import annotations

import numpy as np
import pytest

from nnlite import ops
from nnlite.ops import reference
from tests.closeness import TOL, assert_within_rounding, rel, term_scale


def _rand(seed, *shape, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def test_the_rounding_bound_takes_a_cancelled_sum_and_rejects_an_error_of_a_term():
    """The dense draw that cancels (pinned as an example of tests/test_ops.py's dense test) passes the check where
    the relative measure fails it; a weight dropped, or one value off by a thousandth of its terms' size, fails."""
    x, k, b = _rand(283, 1, 21, scale=4), _rand(284, 21, 1), _rand(285, 1)
    got, want = ops.dense(x, k, b), reference.dense(x, k, b)
    assert rel(got, want) > TOL
    assert_within_rounding(got, want, term_scale(reference.dense, x, k, b))
    x, k, b = _rand(1, 1, 9, 9, 6), _rand(2, 3, 3, 6, 5), _rand(3, 5)
    kwargs = dict(padding="same", activation="relu6")
    want, scale = reference.conv2d(x, k, b, **kwargs), term_scale(reference.conv2d, x, k, b, **kwargs)
    assert_within_rounding(ops.conv2d(x, k, b, **kwargs), want, scale)
    dropped = k.copy()
    dropped[1, 1, 3, 2] = 0
    off = ops.conv2d(x, k, b, **kwargs)
    off[0, 4, 4, 2] += 1e-3 * scale[0, 4, 4, 2]
    for bad in (ops.conv2d(x, dropped, b, **kwargs), off):
        with pytest.raises(AssertionError, match="> bound"):
            assert_within_rounding(bad, want, scale)
