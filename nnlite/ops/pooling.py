"""Fast max and average pooling (Numba, threads split the (image, output row) pairs), and global average pooling.

Padding follows :mod:`nnlite.ops.padding`. Padded cells are skipped: they never win a max (as if -inf) and
are not counted in an average's divisor (TF's 'same' rule; explicit padding is treated the same way).
"""

from __future__ import annotations

import numpy as np
from numba import types

from ..errors import NnliteError
from . import bound, buffers, checks, drivers, parallel
from .conv import _plain_input
from .depthwise_simd import valid_range
from .jit import helper, kernel
from .padding import pair, resolve_padding_2d
from .simd import vadd, vdiv, vload, vload_n, vselect_gt, vsplat, vstore, vstore_n, vzero


@kernel
def _pool(x, kh, kw, sh, sw, top, left, rows_at, y, r0, r1):
    # x (N, H, W, C); y (N, oh, ow, C), rows r = n*oh + oy in [r0, r1); windows clipped to the image. rows_at: the
    # address of the rows function (:func:`_rows_name`; all three share POOL_ARGS), so a model compiles only
    # the ones its pools use
    bound.call(rows_at, "pool_avg", (x, kh, kw, sh, sw, top, left, y, r0, r1))


@helper
def _avg_pixels(x, kh, kw, sh, sw, top, left, y, r0, r1):
    # Any stride: 16 channels of an output pixel at a time in one register, summed from 0 over the real taps
    # row by row (one contiguous run of (x1 - x0) pixels each), divided by their count (TF 'same' divisor).
    n_, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    xf, yf = x.reshape(-1), y.reshape(-1)
    for r in range(r0, r1):
        n, oy = r // oh, r % oh
        y0, y1 = max(oy * sh - top, 0), min(oy * sh - top + kh, h)
        for ox in range(ow):
            x0, x1 = max(ox * sw - left, 0), min(ox * sw - left + kw, w)
            out = (r * ow + ox) * c
            count = vsplat(np.float32((y1 - y0) * (x1 - x0)))
            for c0 in range(0, c, 16):
                width = min(16, c - c0)
                acc = vzero()
                for iy in range(y0, y1):
                    q = ((n * h + iy) * w + x0) * c + c0
                    for ix in range(x1 - x0):
                        acc = vadd(acc, vload_n(xf, q + ix * c, width))
                vstore_n(yf, out + c0, vdiv(acc, count), width)


@helper
def _max_pixels(x, kh, kw, sh, sw, top, left, y, r0, r1):
    # Any stride: each output pixel's channels 64 at a time in four 16-lane registers (four independent chains
    # of maxima, full loads), then 16 at a time (the last block's loads masked). Taps row by row; a step is
    # max(acc, v) as Numba's max takes it (v if v > acc else acc: a NaN input never wins).
    n_, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    xf, yf = x.reshape(-1), y.reshape(-1)
    start = vsplat(np.float32(-np.inf))
    wide = c - c % 64  # channels in whole groups of 64
    for r in range(r0, r1):
        n, oy = r // oh, r % oh
        y0, y1 = max(oy * sh - top, 0), min(oy * sh - top + kh, h)
        for ox in range(ow):
            x0, x1 = max(ox * sw - left, 0), min(ox * sw - left + kw, w)
            out = (r * ow + ox) * c
            for c0 in range(0, wide, 64):
                a0, a1, a2, a3 = start, start, start, start
                for iy in range(y0, y1):
                    q = ((n * h + iy) * w + x0) * c + c0
                    for ix in range(x1 - x0):
                        p = q + ix * c
                        v0, v1, v2, v3 = vload(xf, p), vload(xf, p + 16), vload(xf, p + 32), vload(xf, p + 48)
                        a0, a1 = vselect_gt(v0, a0, v0, a0), vselect_gt(v1, a1, v1, a1)
                        a2, a3 = vselect_gt(v2, a2, v2, a2), vselect_gt(v3, a3, v3, a3)
                vstore(yf, out + c0, a0)
                vstore(yf, out + c0 + 16, a1)
                vstore(yf, out + c0 + 32, a2)
                vstore(yf, out + c0 + 48, a3)
            for c0 in range(wide, c, 16):
                width = min(16, c - c0)
                a = start
                for iy in range(y0, y1):
                    q = ((n * h + iy) * w + x0) * c + c0
                    for ix in range(x1 - x0):
                        v = vload(xf, q + ix * c) if width == 16 else vload_n(xf, q + ix * c, width)
                        a = vselect_gt(v, a, v, a)
                vstore_n(yf, out + c0, a, width)


@helper
def _max_rows_flat(x, kh, kw, sh, sw, top, left, y, r0, r1):
    # A max at column stride 1: for each window tap (i, j), the outputs it reaches in a row, [lo, hi), read
    # one contiguous run of (hi - lo) * C inputs, so each tap is one long loop over a flat output row, which
    # vectorises whatever C is (NASNet's 11-44 channels). Same values, taps in the same order, as _max_pixels.
    n_, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    xf, yf = x.reshape(-1), y.reshape(-1)
    row = ow * c
    for r in range(r0, r1):
        n, oy = r // oh, r % oh
        y0, y1 = max(oy * sh - top, 0), min(oy * sh - top + kh, h)
        out = yf[r * row:(r + 1) * row]
        for t in range(row):
            out[t] = np.float32(-np.inf)
        for iy in range(y0, y1):
            base = (n * h + iy) * w * c
            for j in range(kw):
                lo, hi = valid_range(ow, w, 1, j - left)   # outputs whose input column ox + j - left is real
                if hi <= lo:
                    continue
                dst = out[lo * c:hi * c]
                src = xf[base + (lo + j - left) * c:base + (hi + j - left) * c]
                for t in range(dst.shape[0]):
                    dst[t] = max(dst[t], src[t])


_pool_parallel = drivers.driver(_pool)
_F4 = types.float32[:, :, :, ::1]
POOL_ARGS = (_F4, *(types.int64,) * 6, _F4, types.int64, types.int64)  # x, kh, kw, sh, sw, top, left, y, r0, r1
bound.declare("pool_avg", _avg_pixels, POOL_ARGS)
bound.declare("pool_max_flat", _max_rows_flat, POOL_ARGS)
bound.declare("pool_max_pixels", _max_pixels, POOL_ARGS)


def _rows_name(is_max: bool, sw: int) -> str:
    """The rows function of a pool: an average takes _avg_pixels (1.3-1.6x faster than the per-pixel and flat
    paths it replaced at 11-176 channels, benchmarks/RESULTS.md round 9), a max at column stride 1 the flat
    path, else _max_pixels."""
    return "pool_avg" if not is_max else "pool_max_flat" if sw == 1 else "pool_max_pixels"


def _geometry(x_shape, pool_size, stride, padding, op):
    """(kh, kw, sh, sw, top, left, out_shape) of a pool on an input of ``x_shape`` (nnlite errors for bad
    arguments)."""
    kh, kw = pair(pool_size, f"{op} pool_size")
    sh, sw = (kh, kw) if stride is None else pair(stride, f"{op} stride")
    checks.pool_padding(padding, kh, kw, op)
    (t, _, oh), (l, _, ow) = resolve_padding_2d(x_shape[1], x_shape[2], kh, kw, (sh, sw), 1, padding)
    return kh, kw, sh, sw, t, l, (x_shape[0], oh, ow, x_shape[3])


def _pooling(x_shape, pool_size, stride, padding, is_max, op):
    """The pool as a function of a C-contiguous float32 input of ``x_shape`` alone (``.out_shape``)."""
    kh, kw, sh, sw, t, l, out_shape = _geometry(x_shape, pool_size, stride, padding, op)
    rows, work = out_shape[0] * out_shape[1], int(np.prod(out_shape)) * kh * kw // 4
    rows_at = bound.address(_rows_name(is_max, sw))

    def pooled(x):  # x writable (checks.nhwc and a model's feed copy a read-only one): the rows' one type
        y = buffers.empty(out_shape)
        parallel.split(_pool, _pool_parallel, (x, kh, kw, sh, sw, t, l, rows_at, y), rows, work)
        return y
    pooled.out_shape = out_shape
    return pooled


def _pool2d(x, pool_size, stride, padding, is_max, op):
    x = np.ascontiguousarray(checks.nhwc(x, op))
    return _pooling(x.shape, pool_size, stride, padding, is_max, op)(x)


def prepare_pool2d(x, *, pool_size, stride=None, padding="valid", is_max: bool):
    """``max_pool2d`` (``is_max``) or ``avg_pool2d`` for inputs of ``x``'s shape as a function of the input
    alone (``.out_shape``), or None where the op itself should run (it raises nnlite's error for bad
    arguments)."""
    if not _plain_input(x):
        return None
    try:
        return _pooling(x.shape, pool_size, stride, padding, is_max, "max_pool2d" if is_max else "avg_pool2d")
    except NnliteError:
        return None


def max_pool2d(x, *, pool_size, stride=None, padding="valid"):
    """Max over each window; padded cells never win. stride None means pool_size."""
    return _pool2d(x, pool_size, stride, padding, True, "max_pool2d")


def avg_pool2d(x, *, pool_size, stride=None, padding="valid"):
    """Mean over each window, divided by the count of real (unpadded) inputs under it (TF 'same' rule)."""
    return _pool2d(x, pool_size, stride, padding, False, "avg_pool2d")


@kernel
def _global_mean(x, y):
    # x (N, P, C) float32, y (N, C) float32: each mean summed in float64 pixel by pixel, then divided by P (the
    # order NumPy's mean over a non-contiguous axis takes: the same bits, without its float64 temporaries)
    n_, p_, c = x.shape
    acc = np.empty(c, np.float64)
    for n in range(n_):
        for ch in range(c):
            acc[ch] = 0.0
        for p in range(p_):
            row = x[n, p]
            for ch in range(c):
                acc[ch] += row[ch]
        for ch in range(c):
            y[n, ch] = np.float32(acc[ch] / p_)


def global_avg_pool2d(x, *, keepdims=False):
    """Mean over H and W (accumulated in float64): (N, C), or (N, 1, 1, C) with keepdims."""
    x = checks.nhwc(x, "global_avg_pool2d")
    if x.shape[1] * x.shape[2] and x.flags.c_contiguous:
        y = np.empty((x.shape[0], x.shape[3]), np.float32)
        _global_mean(x.reshape(x.shape[0], -1, x.shape[3]), y)
    else:
        y = x.reshape(x.shape[0], -1, x.shape[3]).mean(axis=1, dtype=np.float64).astype(np.float32)
    return y.reshape(x.shape[0], 1, 1, x.shape[3]) if keepdims else y
