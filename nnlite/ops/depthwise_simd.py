"""Depthwise convolution (multiplier 1) on explicit 16-lane vectors: the "simd" engine's kernel.

:func:`depthwise_rows` runs a layer's rows with the rows function chosen for it, called by address
(:mod:`nnlite.ops.bound`), so a model compiles only those it uses: square 3x3, 5x5 and 7x7 kernels at
stride 1 or 2 (the MobileNets', the face nets', Xception's, EfficientNet's, NASNet's) run the streaming
tiles of :mod:`nnlite.ops.depthwise_stream`; any other kernel runs :func:`rows_generic`: a tile of 8
output pixels x 16 channels sums its kh*kw taps in 8 vector registers (one weight load per tap for all 8
pixels), and the few pixels whose taps reach into padded columns (a row's ends) take :func:`_dw_pixel`'s
path, with each pixel's range of valid taps computed. Either way bias and activation are applied in
registers and each tile is stored once; padding is never copied (taps on padded rows and columns are
skipped), and each sum takes its taps in the same order, so both give the same bits. Called by
:func:`nnlite.ops.depthwise_conv2d` and, band by band, by :mod:`nnlite.ops.separable` and
:mod:`nnlite.ops.inverted`.
"""

from __future__ import annotations

import numpy as np
from numba import types

from . import bound, drivers
from .activations import LAST_REGISTER_CODE, LINEAR
from .jit import driven, helper, kernel
from .microkernels import dwconv_tile_8x16
from .simd import vfma, vload_n, vstore_n, vzero
from .tiles import ZERO, finish


@helper
def valid_range(n_out, n_in, stride, offset):
    """Output indices o in [lo, hi) whose input index o*stride + offset lies inside [0, n_in)."""
    lo = 0 if offset >= 0 else (-offset + stride - 1) // stride
    hi = 0 if n_in - offset <= 0 else min(n_out, (n_in - offset - 1) // stride + 1)
    return lo, max(hi, lo)


@helper
def _dw_pixel(xf, top, i0, i1, h, w, c, k, kw, sw, dh, dw, left, ox, c0):
    # One output pixel's sums over its valid taps (rows i in [i0, i1), columns tested here) for channels
    # [c0, c0 + 64): four independent 16-lane sums, so consecutive multiply-adds do not wait on each other.
    # top = offset of input row 0 of tap i = 0 (may be < 0).
    w0, w1, w2, w3 = min(16, c - c0), min(16, c - c0 - 16), min(16, c - c0 - 32), min(16, c - c0 - 48)
    a0, a1, a2, a3 = vzero(), vzero(), vzero(), vzero()
    ix0 = ox * sw - left  # input column of tap j = 0
    j0, j1 = valid_range(kw, w, dw, ix0)  # taps j whose column ix0 + j*dw is inside [0, w)
    for i in range(i0, i1):
        for j in range(j0, j1):
            q = top + i * dh * w * c + (ix0 + j * dw) * c + c0
            t = (i * kw + j) * c + c0
            a0 = vfma(vload_n(xf, q, w0), vload_n(k, t, w0), a0)
            a1 = vfma(vload_n(xf, q + 16, w1), vload_n(k, t + 16, w1), a1)
            a2 = vfma(vload_n(xf, q + 32, w2), vload_n(k, t + 32, w2), a2)
            a3 = vfma(vload_n(xf, q + 48, w3), vload_n(k, t + 48, w3), a3)
    return a0, a1, a2, a3


@driven
def depthwise_rows(xf, h, w, c, k, bias, kh, kw, sh, sw, dh, dw, top_pad, left, code, alpha, yf, oh, ow,
                   row_off, act_at, rows_at, l1, l2, r0, r1):
    # Multiplier 1 on explicit 16-lane vectors (nnlite.ops.simd). xf = x (N, H, W, C) flattened; k (kh*kw*C,)
    # taps in (i, j) order; yf = y (N, oh, ow, C) flattened; rows r = n*oh + oy in [r0, r1), stored at row
    # r - row_off of yf. rows_at: the address of the rows function for this layer
    # (nnlite.ops.depthwise_stream.rows_address: a streaming one, or rows_generic), which applies bias and the
    # activations of the register epilogue, given l1, the L1 data cache's bytes; act_at: tiles.act_address(code)
    # (sigmoid, swish: applied here after the rows are stored).
    fused = code if code <= LAST_REGISTER_CODE else LINEAR
    # every rows function takes rows_generic's arguments (ROWS_ARGS): its name here only types the call
    bound.call(rows_at, "rows_generic", (xf, h, w, c, k, bias, kh, kw, sh, sw, dh, dw, top_pad, left, fused, alpha,
                                         yf, oh, ow, row_off, l1, l2, r0, r1))
    if code > LAST_REGISTER_CODE:
        bound.call(act_at, "act_block", (yf, ow * c, r0 - row_off, r1 - row_off, ZERO, ow * c, code, alpha))


@kernel
def rows_generic(xf, h, w, c, k, bias, kh, kw, sh, sw, dh, dw, top_pad, left, fused, alpha, yf, oh, ow, row_off, l1,
                 l2, r0, r1):
    # depthwise_rows' rows for any kernel (l1, l2 unused): the tiles of dwconv_tile_8x16 over each row's valid taps
    # (one flat loop of up to kh*kw steps per tile), all channel blocks of 8 pixels done before moving on, while
    # their kh input rows are in L1, and _dw_pixel for the pixels at the row's ends. A last partial tile of 4-7
    # pixels recomputes its last pixel in the missing slots (not stored); 1-3 leftover pixels go one at a time.
    taps = np.empty(2 * kh * kw, np.int64)  # a row's valid taps: input offsets, then kernel offsets
    _generic_rows(xf, h, w, c, k, bias, kh, kw, sh, sw, dh, dw, top_pad, left, fused, alpha, yf, oh, ow, row_off,
                  taps[:kh * kw], taps[kh * kw:], r0, r1)


@helper
def _generic_rows(xf, h, w, c, k, bias, kh, kw, sh, sw, dh, dw, top_pad, left, fused, alpha, yf, oh, ow, row_off,
                  tap_x, tap_k, r0, r1):
    # rows_generic's work, with its scratch arrays (a helper does not allocate)
    lo = min(ow, (left + sw - 1) // sw)  # first output column whose kw taps are all inside the image
    hi = max(lo, min(ow, (w - 1 - (kw - 1) * dw + left) // sw + 1))  # one past the last such column
    # tap_x, tap_k (kh*kw,): this row's valid taps, input offset from column 0's pixel and kernel offset
    for r in range(r0, r1):
        n = r // oh
        iy0 = (r - n * oh) * sh - top_pad  # input row of tap i = 0
        i0, i1 = valid_range(kh, h, dh, iy0)  # taps i whose row iy0 + i*dh is inside [0, h)
        top = (n * h + iy0) * w * c
        taps = ZERO  # a plain int64: a literal 0 here would compile a second copy of the tile
        for i in range(i0, i1):
            for j in range(kw):
                tap_x[taps] = top + (i * dh * w + j * dw - left) * c
                tap_k[taps] = (i * kw + j) * c
                taps += 1
        out_row = (r - row_off) * ow * c
        tiled_hi = hi if (hi - lo) % 8 >= 4 else hi - (hi - lo) % 8  # interior tiles end; the rest: singles
        for b in range(lo + ow - tiled_hi):  # pixels [0, lo) and [tiled_hi, ow), one at a time
            ox = b if b < lo else tiled_hi + b - lo
            for c0 in range(0, c, 64):
                a0, a1, a2, a3 = _dw_pixel(xf, top, i0, i1, h, w, c, k, kw, sw, dh, dw, left, ox, c0)
                out = out_row + ox * c + c0
                for v, acc in enumerate((a0, a1, a2, a3)):
                    width = min(16, c - c0 - 16 * v)
                    if width > 0:
                        bv = vload_n(bias, c0 + 16 * v, width)
                        vstore_n(yf, out + 16 * v, finish(acc, bv, fused, alpha), width)
        last = tiled_hi - 1
        for ox0 in range(lo, tiled_hi, 8):
            for c0 in range(0, c, 16):
                dwconv_tile_8x16(xf, k, bias, tap_x, tap_k, taps, yf, out_row + ox0 * c + c0, c, c0,
                                 min(16, c - c0), ox0, last, sw, tiled_hi, fused, alpha)


depthwise_rows_parallel = drivers.driver(depthwise_rows)
_F, _I = types.float32[::1], types.int64
ROWS_ARGS = (_F, _I, _I, _I, _F, _F, *[_I] * 9, types.float32, _F, *[_I] * 7)  # every rows function's arguments
bound.declare("depthwise_rows", depthwise_rows, (*ROWS_ARGS[:-4], _I, _I, *ROWS_ARGS[-4:]))
bound.declare("rows_generic", rows_generic, ROWS_ARGS)
