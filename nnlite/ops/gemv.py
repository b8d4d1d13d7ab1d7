"""Dense layers with a few rows (a classifier at batch 1) as a matrix-vector product on 16-lane vectors.

A matrix-vector product is bound by reading the kernel (ResNet50's classifier: 8 MB), so its columns are
split across threads in blocks of 32, each block's sums kept in two vector registers while the kernel's
rows stream past. A thread sums two blocks at a time: read from memory, a kernel laid out block after block
(:func:`pack_blocks`) is then two streams, not one, and one core keeps more of its reads in flight (a single
stream read memory at about three quarters of two streams' rate, benchmarks/RESULTS.md, round 25). BLAS,
pinned to one thread (:mod:`nnlite.ops.threads`), would read it on one core.
Used by :func:`nnlite.ops.dense` with the "simd" engine.
"""

from __future__ import annotations

import numpy as np

from . import drivers, parallel, prepack
from .activations import LAST_REGISTER_CODE, LINEAR
from .jit import driven, kernel
from .simd import vfma, vload, vload_n, vsplat_at, vstore_n, vzero
from .tiles import act_block, finish, zeros

GEMV_MAX_ROWS = 4  # dense layers with at most this many rows run as matrix-vector products (_gemv_cols)
GEMV_COLS = 32  # output columns per block: two vectors of sums


@kernel
def pack_blocks(w, k, n, out):
    """out (blocks*k*GEMV_COLS,) = w (k*n,) cut into blocks of GEMV_COLS columns, each block's k rows one
    after the other (zeros past column n): the layout a block's sums read front to back."""
    for blk in range((n + GEMV_COLS - 1) // GEMV_COLS):
        c0 = blk * GEMV_COLS
        for kk in range(k):
            dst = (blk * k + kk) * GEMV_COLS
            for j in range(GEMV_COLS):
                out[dst + j] = w[kk * n + c0 + j] if c0 + j < n else np.float32(0)


@driven
def _gemv_cols(x, w, bias, code, alpha, y, rows, k, n, blocked, b0, b1):
    # y (rows*n,) = act(x (rows*k,) @ w (k*n,) + bias) for column blocks [b0, b1) of GEMV_COLS columns, two
    # blocks at a time: four vectors of sums over k, the two blocks' weights read as two streams (module
    # docstring). blocked: w is in pack_blocks' layout (each block contiguous) instead of (k, n)
    step = GEMV_COLS if blocked else n
    other = k * GEMV_COLS if blocked else GEMV_COLS  # from a block's weights to the next block's
    for blk in range(b0, b1, 2):  # each pair for every row in turn: rows after the first read it from cache
        c0 = blk * GEMV_COLS
        w0, w1 = min(16, n - c0), min(16, n - c0 - 16)
        w2, w3 = (min(16, n - c0 - 32), min(16, n - c0 - 48)) if blk + 1 < b1 else (0, 0)
        for r in range(rows):
            a0, a1, a2, a3 = vzero(), vzero(), vzero(), vzero()
            off = blk * k * GEMV_COLS if blocked else c0
            if w3 == 16:  # two whole blocks: plain loads (a masked load is several instructions on AVX2)
                for kk in range(k):
                    v = vsplat_at(x, r * k + kk)
                    a0 = vfma(v, vload(w, off), a0)
                    a1 = vfma(v, vload(w, off + 16), a1)
                    a2 = vfma(v, vload(w, off + other), a2)
                    a3 = vfma(v, vload(w, off + other + 16), a3)
                    off += step
            else:
                for kk in range(k):
                    v = vsplat_at(x, r * k + kk)
                    a0 = vfma(v, vload_n(w, off, w0), a0)
                    a1 = vfma(v, vload_n(w, off + 16, w1), a1)
                    a2 = vfma(v, vload_n(w, off + other, w2), a2)
                    a3 = vfma(v, vload_n(w, off + other + 16, w3), a3)
                    off += step
            out = r * n + c0
            vstore_n(y, out, finish(a0, vload_n(bias, c0, w0), code, alpha), w0)
            if w1 > 0:
                vstore_n(y, out + 16, finish(a1, vload_n(bias, c0 + 16, w1), code, alpha), w1)
            if w2 > 0:
                vstore_n(y, out + 32, finish(a2, vload_n(bias, c0 + 32, w2), code, alpha), w2)
            if w3 > 0:
                vstore_n(y, out + 48, finish(a3, vload_n(bias, c0 + 48, w3), code, alpha), w3)


_gemv_parallel = drivers.driver(_gemv_cols)


def pack_rows(view):
    """A (k, n) float32 matrix in :func:`pack_blocks`' layout (a new array)."""
    return _blocks(np.ascontiguousarray(view))


def _blocks(view):
    k, n = view.shape
    out = np.empty(-(-n // GEMV_COLS) * k * GEMV_COLS, np.float32)
    pack_blocks(view.reshape(-1), k, n, out)
    return out


def packed_blocks(kernel):
    """A read-only kernel (..., out) as (in, out) in :func:`pack_blocks`' layout, packed once (None when it
    is writable: see nnlite.ops.prepack). A conv kernel (kh, kw, cin, cout) gives its (kh*kw*cin, cout) matrix."""
    return prepack.once(kernel, "gemv", lambda view: _blocks(view.reshape(-1, view.shape[-1])))


def dense_rows(x2, kernel, bias, code, alpha, packed=None):
    """act(x2 @ kernel + bias) for a few rows: x2 (rows, in), kernel (in, out), both C-contiguous float32;
    bias (out,) float32 or None; packed: the kernel's :func:`packed_blocks`, if the caller has them."""
    return prepare_rows(kernel, bias, code, alpha, x2.shape, packed)(x2)


def prepare_rows(kernel, bias, code, alpha, x_shape, packed=None):
    """:func:`dense_rows` for inputs x2 of ``x_shape`` (rows, k) as a function of x2 alone: the kernel's packed
    blocks found and the arguments built once (the same kernel calls on the same arguments: the same bits).
    k is the kernel's rows, or fewer where ``packed`` leaves some out (a conv's rows that meet only padding)."""
    (rows, k), n = x_shape, kernel.shape[1]
    b = zeros(n) if bias is None else prepack.as_writable(bias)
    fused = code if code <= LAST_REGISTER_CODE else LINEAR
    blocks = -(-n // GEMV_COLS)
    if packed is None:
        packed = packed_blocks(kernel)  # a model's kernel: each block read front to back
    w = prepack.as_writable(kernel).reshape(-1) if packed is None else packed
    alpha32 = np.float32(alpha)
    head, tail, work = (w, b, fused, alpha32), (rows, k, n, packed is not None), rows * k * n // 4

    def matrix_vector(x2, _held=(kernel, bias)):  # _held: while their writable views are used
        y = np.empty((rows, n), np.float32)
        flat = y.reshape(-1)
        parallel.split(_gemv_cols, _gemv_parallel, (x2.reshape(-1), *head, flat, *tail), blocks, work)
        if code > LAST_REGISTER_CODE:
            act_block(flat, n, 0, rows, 0, n, code, alpha32)
        return y
    return matrix_vector
