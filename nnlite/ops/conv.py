"""Fast conv2d and dense: matrix multiplies with bias and activation fused.

conv2d has two engines, chosen once per process by :mod:`nnlite.ops.engine` (``NNLITE_GEMM``):
"simd", nnlite's own AVX-512 implicit GEMM (:mod:`nnlite.ops.gemm`, the default where the CPU has AVX-512),
and "blas", described here, for other CPUs. dense uses BLAS, except with the "simd" engine for 1-4 rows
(a classifier at batch 1): a matrix-vector product on all threads (:mod:`nnlite.ops.gemv`).

* 1x1 convolution without padding: (N*H*W, cin) @ (cin, cout) on a reshaped view of x (no copy at stride 1).
* k x k convolution: im2col (a Numba kernel that also writes the zero padding) into a reused per-thread
  scratch buffer of shape (rows, kh*kw*cin), times the kernel viewed as (kh*kw*cin, cout). The column order
  (i, j, c) matches the kernel's C-order layout (kh, kw, cin, cout), so the kernel needs no copy. With few
  input channels (an RGB stem) im2col reads a zero-padded copy of x instead: no bounds tests, and each
  kernel row's kw*cin values are one contiguous run (a third faster on TinyFaceDetector's RGB stem).
* Work is split into chunks of output rows (:mod:`nnlite.ops.parallel`); each chunk does its im2col (at
  most ~4 MiB), its matmul and its bias+activation pass back to back, while its rows are still in cache.
Padding follows :mod:`nnlite.ops.padding` (TF 'same': extra row/column bottom/right).
"""

from __future__ import annotations

import functools

import numpy as np

from . import checks, engine, gemm, gemv, machine, parallel
from .activations import CODES, bias_act_, bias_act_rows, code_of, tiled
from .jit import kernel
from .padding import pair, resolve_padding_2d
from .prepare import sum_of
from .workspace import scratch

# a chunk's im2col columns stay in cache (machine.blocking().im2col_chunk bytes) ...
CHUNK_MIN_ROWS = 256  # ... but each matmul keeps enough rows to amortise BLAS packing the kernel
MATMUL_MIN_ROWS = 64  # fewest output rows worth a separate parallel matmul chunk
THIN_CIN = 8  # below this many input channels im2col copies from a padded copy of x (2x faster at cin = 3)


@kernel
def _im2col(x, kh, kw, sh, sw, dh, dw, top, left, oh, ow, cols, r0, r1):
    # x (N, H, W, C); image rows r = n*oh + oy in [r0, r1);
    # cols ((r1-r0)*ow, kh*kw*C): row (r - r0)*ow + ox, column (i, j, c)
    n_, h, w, c = x.shape
    for r in range(r0, r1):
        n, oy = r // oh, r % oh
        for ox in range(ow):
            row = (r - r0) * ow + ox
            col = 0
            for i in range(kh):
                iy = oy * sh + i * dh - top
                for j in range(kw):
                    ix = ox * sw + j * dw - left
                    if 0 <= iy < h and 0 <= ix < w:
                        for ch in range(c):
                            cols[row, col + ch] = x[n, iy, ix, ch]
                    else:
                        for ch in range(c):
                            cols[row, col + ch] = 0.0
                    col += c


@kernel
def _im2col_padded(xp, kh, kw, sh, sw, dh, dw, oh, ow, cols, r0, r1):
    # Same columns as _im2col, for few input channels (RGB stems): xp (N, Hp, Wp, C) is x already zero-padded,
    # so no bounds tests, and at dilation 1 the kw*C values of one kernel row are one contiguous run of xp.
    c = xp.shape[3]
    kwc = kw * c
    for r in range(r0, r1):
        n, oy = r // oh, r % oh
        for i in range(kh):
            xrow = xp[n, oy * sh + i * dh].reshape(-1)  # (Wp*C,) one padded input row
            col0 = i * kwc
            for ox in range(ow):
                dst = cols[(r - r0) * ow + ox]
                base = ox * sw * c
                if dw == 1:
                    for t in range(kwc):
                        dst[col0 + t] = xrow[base + t]
                else:
                    for j in range(kw):
                        for ch in range(c):
                            dst[col0 + j * c + ch] = xrow[base + j * dw * c + ch]


def _matmul_rows(a, k2, y2, tiled_bias, has_bias, code, alpha, r0, r1):
    """y2[r0:r1] = act(a[r0:r1] @ k2 + bias); ``tiled_bias`` from activations.tiled."""
    np.dot(a[r0:r1], k2, out=y2[r0:r1])
    bias_act_rows(y2, tiled_bias, has_bias, code, alpha, r0, r1)


def conv2d(x, kernel, bias=None, *, stride=1, padding="valid", dilation=1, activation=None, alpha=0.2):
    """2-D convolution (cross-correlation, as TF). x (N, H, W, cin), kernel (kh, kw, cin, cout) -> (N, oh, ow, cout).

    padding: "valid", TF "same" (extra row/column bottom/right) or (top, bottom, left, right).
    """
    if engine.simd():  # the common case, checked first (a model's hot path)
        fast = _fast_layout(x, kernel, bias, stride, padding, dilation, activation)
        if fast is not None:
            return gemm.run(x, kernel, bias, CODES[activation], alpha, fast)
    x = np.ascontiguousarray(checks.nhwc(x, "conv2d"))
    kernel = checks.array(kernel, "conv2d", "kernel (kh, kw, cin, cout)", 4)
    kh, kw, cin, cout = kernel.shape
    checks.channels("conv2d", f"kernel of shape {kernel.shape}", cin, x.shape[3])
    bias = checks.bias_vector(bias, cout, "conv2d")
    code = code_of(activation, "conv2d")
    (sh, sw), (dh, dw) = pair(stride, "stride"), pair(dilation, "dilation")
    (t, b, oh), (l, r, ow) = resolve_padding_2d(x.shape[1], x.shape[2], kh, kw, stride, dilation, padding)
    if engine.simd():
        return gemm.conv2d(x, kernel, bias, code, alpha, (sh, sw), (dh, dw), (t, b, l, r), (oh, ow))
    n = x.shape[0]
    y = np.empty((n, oh, ow, cout), np.float32)  # (N, oh, ow, cout)
    y2 = y.reshape(n * oh * ow, cout)
    k2 = np.ascontiguousarray(kernel).reshape(kh * kw * cin, cout)  # (kh*kw*cin, cout), rows in (i, j, c) order
    work = y2.size * k2.shape[0] // 4
    tb, has_bias = tiled(bias, cout), bias is not None  # (G*cout,) bias repeated for the fused pass
    if kh == kw == 1 and t == b == l == r == 0:
        if sh == sw == 1:
            a = x.reshape(-1, cin)  # (N*H*W, cin) view
        else:
            a = scratch("conv_strided", (n, oh, ow, cin))
            a[...] = x[:, ::sh, ::sw][:, :oh, :ow]
            a = a.reshape(-1, cin)
        # bias+act while the chunk is in cache
        out_rows = max(CHUNK_MIN_ROWS, machine.blocking().im2col_chunk // (4 * cout))
        parallel.run(lambda r0, r1: _matmul_rows(a, k2, y2, tb, has_bias, code, alpha, r0, r1), y2.shape[0], work,
                     min_parts=y2.shape[0] // out_rows if code or has_bias else 1, min_rows=MATMUL_MIN_ROWS)
        return y
    thin = cin < THIN_CIN
    if thin and t + b + l + r:  # pad once (small: few channels), then the column copy needs no bounds tests
        xp = np.zeros((n, x.shape[1] + t + b, x.shape[2] + l + r, cin), np.float32)  # (N, Hp, Wp, cin)
        xp[:, t:t + x.shape[1], l:l + x.shape[2]] = x
    else:
        xp = x

    def chunk(r0, r1):  # image rows [r0, r1) = output rows [r0*ow, r1*ow)
        cols = scratch("im2col", ((r1 - r0) * ow, k2.shape[0]))  # this thread's ((r1-r0)*ow, kh*kw*cin)
        if thin:
            _im2col_padded(xp, kh, kw, sh, sw, dh, dw, oh, ow, cols, r0, r1)
        else:
            _im2col(x, kh, kw, sh, sw, dh, dw, t, l, oh, ow, cols, r0, r1)
        np.dot(cols, k2, out=y2[r0 * ow:r1 * ow])
        bias_act_rows(y2, tb, has_bias, code, alpha, r0 * ow, r1 * ow)

    rows_per_chunk = max(CHUNK_MIN_ROWS, machine.blocking().im2col_chunk // (4 * k2.shape[0]))  # output rows per chunk
    parallel.run(chunk, n * oh, work, min_parts=y2.shape[0] // rows_per_chunk, min_rows=-(-MATMUL_MIN_ROWS // ow))
    return y


_F32 = np.dtype(np.float32)


def _plain(a, ndim: int) -> bool:
    """A C-contiguous float32 ndarray of ``ndim`` dimensions: usable as is, nothing to convert or check."""
    return type(a) is np.ndarray and a.dtype is _F32 and a.ndim == ndim and a.flags.c_contiguous


def _plain_input(x) -> bool:
    """:func:`_plain` for an NHWC activation, which must also be writable: Numba types a read-only array apart,
    and the kernels called by address take one type (the checked path copies a read-only input)."""
    return _plain(x, 4) and x.flags.writeable


@functools.lru_cache(maxsize=1024)
def _layout(x_shape, k_shape, stride, padding, dilation):
    (t, b, oh), (l, r, ow) = resolve_padding_2d(x_shape[1], x_shape[2], k_shape[0], k_shape[1], stride, dilation,
                                                padding)
    return gemm.layout(x_shape, k_shape, pair(stride, "stride"), pair(dilation, "dilation"), (t, b, l, r),
                       (oh, ow))


def prepare_conv2d(x, kernel, bias=None, *, stride=1, padding="valid", dilation=1, activation=None, alpha=0.2,
                   accumulate=None, into=None):
    """``conv2d(x, kernel, bias, ...)`` for inputs of ``x``'s shape as a function of the input alone, prepared
    once (:func:`nnlite.ops.gemm.prepare`); None unless conv2d's fast path takes these arguments.
    ``accumulate=(activation, alpha, keep)``: a residual add run in the kernel, as ``f(x, acc)`` (see
    :func:`nnlite.ops.separable.prepare_depthwise_pointwise`); None where the tiled GEMM does not run it.
    ``into=(channels, offset)``: ``f(x, out)`` writing the output into channels [offset, offset + cout) of
    ``out``, a wider map (see :func:`nnlite.ops.gemm.prepare`); None where the tiles would not."""
    if not engine.simd():
        return None
    fast = _fast_layout(x, kernel, bias, stride, padding, dilation, activation)
    if fast is None:
        return None
    sums = None if accumulate is None else sum_of(accumulate)
    if accumulate is not None and sums is None:  # an activation add does not know: add raises its error
        return None
    return gemm.prepare(kernel, bias, CODES[activation], alpha, fast, sums, into)


def _fast_layout(x, kernel, bias, stride, padding, dilation, activation):
    """conv2d's layout when every argument is already in final form (else None: the checked path runs,
    which converts what it can and raises nnlite's errors for the rest)."""
    if not (_plain_input(x) and _plain(kernel, 4) and x.shape[3] == kernel.shape[2]
            and (bias is None or (_plain(bias, 1) and bias.shape[0] == kernel.shape[3]))):
        return None
    return cached_geometry(_layout, (activation,), x.shape, kernel.shape, stride, padding, dilation)


def cached_geometry(geometry, activations, *key):
    """``geometry(*key)``, a layer's shape-derived arguments cached per shape, when every activation is one
    nnlite knows and every part of the key hashable; else None, and the caller's checked path runs (it
    converts what it can and raises nnlite's errors for the rest). The fast paths' common last step."""
    try:
        for activation in activations:
            if activation not in CODES:
                return None
        return geometry(*key)
    except TypeError:  # an unhashable argument (a list)
        return None


def dense(x, kernel, bias=None, *, activation=None, alpha=0.2):
    """x @ kernel + bias on the last axis, activation fused. x (..., in), kernel (in, out) -> (..., out)."""
    x = np.asarray(x, dtype=np.float32)
    kernel = checks.array(kernel, "dense", "kernel (in, out)", 2)
    checks.channels("dense", f"kernel of shape {kernel.shape}", kernel.shape[0], x.shape[-1])
    bias = checks.bias_vector(bias, kernel.shape[1], "dense")
    code = code_of(activation, "dense")
    x2 = np.ascontiguousarray(x).reshape(-1, kernel.shape[0])  # (rows, in)
    if engine.simd() and 0 < x2.shape[0] <= gemv.GEMV_MAX_ROWS:
        y2 = gemv.dense_rows(x2, np.ascontiguousarray(kernel), bias, code, alpha)
        return y2.reshape(x.shape[:-1] + (kernel.shape[1],))
    y = np.empty(x.shape[:-1] + (kernel.shape[1],), np.float32)
    np.dot(x2, np.ascontiguousarray(kernel), out=y.reshape(-1, kernel.shape[1]))
    return bias_act_(y, bias, code, alpha)


def prepare_dense(x, kernel, bias=None, *, activation=None, alpha=0.2):
    """``dense(x, kernel, bias, ...)`` for inputs of ``x``'s shape as a function of the input alone, where dense
    runs a matrix-vector product (the simd engine, 1-4 rows) and every argument is in final form; else None.
    The kernel's packed blocks are found and the arguments built once: the same kernel call, the same bits."""
    activation = None if activation == "linear" else activation
    if not (engine.simd() and type(x) is np.ndarray and x.dtype is _F32 and x.ndim >= 1 and x.flags.c_contiguous
            and _plain(kernel, 2) and kernel.shape[0] == x.shape[-1] > 0 and kernel.shape[1] > 0
            and (bias is None or (_plain(bias, 1) and bias.shape[0] == kernel.shape[1]))
            and isinstance(activation, (str, type(None))) and activation in CODES):
        return None
    rows = x.size // x.shape[-1]
    if not 0 < rows <= gemv.GEMV_MAX_ROWS:
        return None
    out_shape = x.shape[:-1] + (kernel.shape[1],)
    run = gemv.prepare_rows(kernel, bias, CODES[activation], alpha, (rows, kernel.shape[0]))

    def dense_prepared(x):
        return run(x.reshape(rows, -1)).reshape(out_shape)
    dense_prepared.out_shape = out_shape
    return dense_prepared
