"""The one parallel driver: a kernel run in pieces through it equals the kernel run once over the whole range."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit, types

from nnlite.ops import drivers


@njit(nogil=True)
def _scaled_rows(x, y, scale, width, r0, r1):
    # y[r] = x[r] * scale + r for rows [r0, r1) of width values; a zero width divides by zero
    for r in range(r0, r1):
        extra = r // width * width + r % width
        for j in range(width):
            y[r * width + j] = x[r * width + j] * scale + extra


def test_pieces_give_the_bits_of_one_serial_call():
    rng = np.random.default_rng(3)
    rows, width = 37, 5
    x = rng.standard_normal(rows * width).astype(np.float32)
    want = np.zeros_like(x)
    _scaled_rows(x, want, np.float32(1.5), width, 0, rows)
    drive = drivers.driver(_scaled_rows)
    for pieces in (1, 2, 3, 8, rows):
        got = np.full_like(x, np.nan)
        drive(x, got, np.float32(1.5), width, rows, pieces)
        assert np.array_equal(got, want), pieces


def test_other_argument_types_bind_their_own_specialisation():
    drive = drivers.driver(_scaled_rows)
    x32 = np.arange(12, dtype=np.float32)
    x64 = np.arange(12, dtype=np.float64)
    for x in (x32, x64, x32):
        want, got = np.zeros_like(x), np.zeros_like(x)
        _scaled_rows(x, want, x.dtype.type(2), 3, 0, 4)
        drive(x, got, x.dtype.type(2), 3, 4, 2)
        assert np.array_equal(got, want) and got.dtype == x.dtype
    assert len(drive._by_key) == 2


def test_an_error_in_a_piece_is_raised_with_its_message():
    x = np.ones(8, np.float32)
    with pytest.raises(ZeroDivisionError):
        drivers.driver(_scaled_rows)(x, np.zeros_like(x), np.float32(1), 0, 4, 2)


def test_type_key_depends_only_on_the_types():
    a = (types.float32[::1], types.int64, types.int64)
    assert drivers.type_key(a) == drivers.type_key(tuple(a))
    assert drivers.type_key(a) != drivers.type_key((types.float64[::1], types.int64, types.int64))
    assert 0 <= drivers.type_key(a) < 2 ** 63
