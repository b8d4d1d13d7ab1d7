"""Convolution as an implicit GEMM on explicit AVX-512 tiles: nnlite's own matrix multiply.

Why not BLAS: a convolution layer at batch 1 is a modest matrix product (49 to 3136 rows), and NumPy's
OpenBLAS re-packs the whole kernel on every call and, where ``OPENBLAS_CORETYPE`` pins its AVX2 kernels on
an AVX-512 CPU, runs at half the machine's float32 rate. Its first version measured 170-220 GFLOP/s on one
Zen 5 core against OpenBLAS's 105-130 (Haswell kernels), on products of ResNet50's and MobileNetV2's layer
shapes (49-3136 rows, K 64-4608, 64-1280 columns; 2026-11-25); whole-model figures are in benchmarks/RESULTS.md.

The product: output row r (one output pixel) times kernel column j (one output channel) is
    y[r, j] = act(bias[j] + sum over taps t, channels c of  x[base(r) + tap(t) + c] * k[t*C + c, j])
where x is the (zero-padded) input flattened, ``base(r)`` the offset of the pixel's top-left input and
``tap(t)`` the offset of kernel tap t = (i, j). So a k x k convolution needs no im2col copy, a strided one
no gather, and a 1x1 convolution is the same loop with one tap. Without column dilation a kernel row's
kw taps read kw*C consecutive inputs, so the loop runs over kh "taps" of kw*C values each (fewer, longer
inner loops: an RGB stem's 3x3x3 is 3 runs of 9, not 9 of 3). The kernel matrix is the layer's own
(kh*kw*cin, cout) weights, unchanged.

Blocking: output channels go in panels of 32 (two 16-lane vectors). Each panel's slice of the kernel is
copied into a contiguous (K, 32) scratch (zero-filled past the last channel), then every tile of 8 output
rows is one pass over K keeping its 8x32 sums in 16 vector registers: per step, 2 vector loads, 8
broadcasts, 16 fused multiply-adds. Tiles past the last row recompute the last row and are not stored.
Bias and relu/relu6/leaky_relu are applied to the registers before the store; sigmoid/swish afterwards.

The sum over K runs in the same order (taps, then channels) whatever the thread split, so every thread
count gives bit-identical results. Reference twin: :func:`nnlite.ops.reference.conv2d`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import numba
from numba import njit, prange

from . import parallel
from .activations import act
from .simd import (vadd, vfma, vload, vload_n, vmul, vselect_ge, vselect_gt, vsplat, vstore, vstore_n, vzero)
from .workspace import scratch

MR = 8  # output rows per register tile
NR = 32  # output channels per panel (two vectors)


@njit(cache=True, nogil=True)
def _pack_panel(b, k, n, col0, width, pk):
    # pk[kk*32 : kk*32+32] = b[kk, col0 : col0+width] (b flat (k*n,)), zeros past width
    for kk in range(k):
        src, dst = kk * n + col0, kk * NR
        if width >= NR:
            vstore(pk, dst, vload(b, src))
            vstore(pk, dst + 16, vload(b, src + 16))
        elif width > 16:
            vstore(pk, dst, vload(b, src))
            vstore(pk, dst + 16, vload_n(b, src + 16, width - 16))
        else:
            vstore(pk, dst, vload_n(b, src, width))
            vstore(pk, dst + 16, vzero())


@njit(cache=True, nogil=True)
def _finish(v, bias, code, alpha):
    """bias + activation on one vector of sums (codes 0-3; 4/5 are applied after the store)."""
    v = vadd(v, bias)
    zero = vzero()
    if code == 1:
        return vselect_gt(v, zero, v, zero)
    if code == 2:
        six = vsplat(np.float32(6))
        v = vselect_gt(v, zero, v, zero)
        return vselect_gt(v, six, six, v)
    if code == 3:
        return vselect_ge(v, zero, v, vmul(v, vsplat(alpha)))
    return v


@njit(cache=True, nogil=True)
def _store_row(y, off, v0, v1, width):
    if width >= NR:
        vstore(y, off, v0)
        vstore(y, off + 16, v1)
    elif width > 16:
        vstore(y, off, v0)
        vstore_n(y, off + 16, v1, width - 16)
    else:
        vstore_n(y, off, v0, width)


@functools.lru_cache(maxsize=512)
def _offsets(n_img, hp, wp, c, kh, kw, sh, sw, dh, dw, oh, ow):
    """Read-only int64 offsets into the flattened padded input (N, hp, wp, c): ``taps``, where each run of
    inputs starts relative to a pixel's top-left input, and ``bases`` (n_img*oh*ow,), of each output pixel's
    top-left input. A run is one kernel row's kw*c inputs (contiguous when dw == 1: kh taps) or else one
    tap's c inputs (kh*kw taps). Cached: a model calls each layer with the same shapes every time."""
    if dw == 1:  # a kernel row's kw*c inputs are one contiguous run: one tap per row, runs of kw*c
        taps = np.array([i * dh * wp * c for i in range(kh)], np.int64)
    else:
        taps = np.array([(i * dh * wp + j * dw) * c for i in range(kh) for j in range(kw)], np.int64)
    img = np.arange(n_img, dtype=np.int64)[:, None, None] * (hp * wp * c)
    row = np.arange(oh, dtype=np.int64)[None, :, None] * (sh * wp * c)
    col = np.arange(ow, dtype=np.int64)[None, None, :] * (sw * c)
    bases = (img + row + col).reshape(-1)
    taps.flags.writeable = bases.flags.writeable = False
    return taps, bases


@njit(cache=True, nogil=True)
def _tile(x, c, taps, bases, pk, kk, m0, m_end, y, ldy, col0, width, bias0, bias1, code, alpha):
    """Rows m0..m0+7 (those < m_end stored) x one panel (packed at pk[kk:]): 8 rows of 32 sums in 16
    vector registers."""
    last = m_end - 1
    q0 = bases[min(m0, last)]
    q1 = bases[min(m0 + 1, last)]
    q2 = bases[min(m0 + 2, last)]
    q3 = bases[min(m0 + 3, last)]
    q4 = bases[min(m0 + 4, last)]
    q5 = bases[min(m0 + 5, last)]
    q6 = bases[min(m0 + 6, last)]
    q7 = bases[min(m0 + 7, last)]
    a00, a01, a10, a11, a20, a21, a30, a31 = vzero(), vzero(), vzero(), vzero(), vzero(), vzero(), vzero(), vzero()
    a40, a41, a50, a51, a60, a61, a70, a71 = vzero(), vzero(), vzero(), vzero(), vzero(), vzero(), vzero(), vzero()
    for t in range(taps.shape[0]):
        tap = taps[t]
        p0, p1, p2, p3, p4, p5, p6, p7 = q0 + tap, q1 + tap, q2 + tap, q3 + tap, q4 + tap, q5 + tap, q6 + tap, q7 + tap
        for ch in range(c):
            w0 = vload(pk, kk)
            w1 = vload(pk, kk + 16)
            kk += NR
            v = vsplat(x[p0 + ch])
            a00, a01 = vfma(v, w0, a00), vfma(v, w1, a01)
            v = vsplat(x[p1 + ch])
            a10, a11 = vfma(v, w0, a10), vfma(v, w1, a11)
            v = vsplat(x[p2 + ch])
            a20, a21 = vfma(v, w0, a20), vfma(v, w1, a21)
            v = vsplat(x[p3 + ch])
            a30, a31 = vfma(v, w0, a30), vfma(v, w1, a31)
            v = vsplat(x[p4 + ch])
            a40, a41 = vfma(v, w0, a40), vfma(v, w1, a41)
            v = vsplat(x[p5 + ch])
            a50, a51 = vfma(v, w0, a50), vfma(v, w1, a51)
            v = vsplat(x[p6 + ch])
            a60, a61 = vfma(v, w0, a60), vfma(v, w1, a61)
            v = vsplat(x[p7 + ch])
            a70, a71 = vfma(v, w0, a70), vfma(v, w1, a71)
    off = m0 * ldy + col0
    _store_row(y, off, _finish(a00, bias0, code, alpha), _finish(a01, bias1, code, alpha), width)
    if m0 + 1 < m_end:
        _store_row(y, off + ldy, _finish(a10, bias0, code, alpha), _finish(a11, bias1, code, alpha), width)
    if m0 + 2 < m_end:
        _store_row(y, off + 2 * ldy, _finish(a20, bias0, code, alpha), _finish(a21, bias1, code, alpha), width)
    if m0 + 3 < m_end:
        _store_row(y, off + 3 * ldy, _finish(a30, bias0, code, alpha), _finish(a31, bias1, code, alpha), width)
    if m0 + 4 < m_end:
        _store_row(y, off + 4 * ldy, _finish(a40, bias0, code, alpha), _finish(a41, bias1, code, alpha), width)
    if m0 + 5 < m_end:
        _store_row(y, off + 5 * ldy, _finish(a50, bias0, code, alpha), _finish(a51, bias1, code, alpha), width)
    if m0 + 6 < m_end:
        _store_row(y, off + 6 * ldy, _finish(a60, bias0, code, alpha), _finish(a61, bias1, code, alpha), width)
    if m0 + 7 < m_end:
        _store_row(y, off + 7 * ldy, _finish(a70, bias0, code, alpha), _finish(a71, bias1, code, alpha), width)


@njit(cache=True, nogil=True)
def _tile_narrow(x, c, taps, bases, pk, kk, m0, m_end, y, ldy, col0, width, bias0, code, alpha):
    """As :func:`_tile` for a panel of at most 16 channels: one vector per row, and 16 rows (16 independent
    sums keep both FMA pipes busy; with 8 each multiply-add would wait on the previous one's latency)."""
    last = m_end - 1
    q0 = bases[min(m0, last)]
    q1 = bases[min(m0 + 1, last)]
    q2 = bases[min(m0 + 2, last)]
    q3 = bases[min(m0 + 3, last)]
    q4 = bases[min(m0 + 4, last)]
    q5 = bases[min(m0 + 5, last)]
    q6 = bases[min(m0 + 6, last)]
    q7 = bases[min(m0 + 7, last)]
    q8 = bases[min(m0 + 8, last)]
    q9 = bases[min(m0 + 9, last)]
    q10 = bases[min(m0 + 10, last)]
    q11 = bases[min(m0 + 11, last)]
    q12 = bases[min(m0 + 12, last)]
    q13 = bases[min(m0 + 13, last)]
    q14 = bases[min(m0 + 14, last)]
    q15 = bases[min(m0 + 15, last)]
    a0, a1, a2, a3, a4, a5, a6, a7 = vzero(), vzero(), vzero(), vzero(), vzero(), vzero(), vzero(), vzero()
    a8, a9, a10, a11, a12, a13, a14, a15 = vzero(), vzero(), vzero(), vzero(), vzero(), vzero(), vzero(), vzero()
    for t in range(taps.shape[0]):
        tap = taps[t]
        p0, p1, p2, p3, p4, p5, p6, p7 = q0 + tap, q1 + tap, q2 + tap, q3 + tap, q4 + tap, q5 + tap, q6 + tap, q7 + tap
        p8, p9, p10, p11, p12, p13, p14, p15 = (q8 + tap, q9 + tap, q10 + tap, q11 + tap, q12 + tap, q13 + tap,
                                                q14 + tap, q15 + tap)
        for ch in range(c):
            w0 = vload(pk, kk)
            kk += NR
            a0 = vfma(vsplat(x[p0 + ch]), w0, a0)
            a1 = vfma(vsplat(x[p1 + ch]), w0, a1)
            a2 = vfma(vsplat(x[p2 + ch]), w0, a2)
            a3 = vfma(vsplat(x[p3 + ch]), w0, a3)
            a4 = vfma(vsplat(x[p4 + ch]), w0, a4)
            a5 = vfma(vsplat(x[p5 + ch]), w0, a5)
            a6 = vfma(vsplat(x[p6 + ch]), w0, a6)
            a7 = vfma(vsplat(x[p7 + ch]), w0, a7)
            a8 = vfma(vsplat(x[p8 + ch]), w0, a8)
            a9 = vfma(vsplat(x[p9 + ch]), w0, a9)
            a10 = vfma(vsplat(x[p10 + ch]), w0, a10)
            a11 = vfma(vsplat(x[p11 + ch]), w0, a11)
            a12 = vfma(vsplat(x[p12 + ch]), w0, a12)
            a13 = vfma(vsplat(x[p13 + ch]), w0, a13)
            a14 = vfma(vsplat(x[p14 + ch]), w0, a14)
            a15 = vfma(vsplat(x[p15 + ch]), w0, a15)
    off = m0 * ldy + col0
    vstore_n(y, off, _finish(a0, bias0, code, alpha), width)
    if m0 + 1 < m_end:
        vstore_n(y, off + ldy, _finish(a1, bias0, code, alpha), width)
    if m0 + 2 < m_end:
        vstore_n(y, off + 2 * ldy, _finish(a2, bias0, code, alpha), width)
    if m0 + 3 < m_end:
        vstore_n(y, off + 3 * ldy, _finish(a3, bias0, code, alpha), width)
    if m0 + 4 < m_end:
        vstore_n(y, off + 4 * ldy, _finish(a4, bias0, code, alpha), width)
    if m0 + 5 < m_end:
        vstore_n(y, off + 5 * ldy, _finish(a5, bias0, code, alpha), width)
    if m0 + 6 < m_end:
        vstore_n(y, off + 6 * ldy, _finish(a6, bias0, code, alpha), width)
    if m0 + 7 < m_end:
        vstore_n(y, off + 7 * ldy, _finish(a7, bias0, code, alpha), width)
    if m0 + 8 < m_end:
        vstore_n(y, off + 8 * ldy, _finish(a8, bias0, code, alpha), width)
    if m0 + 9 < m_end:
        vstore_n(y, off + 9 * ldy, _finish(a9, bias0, code, alpha), width)
    if m0 + 10 < m_end:
        vstore_n(y, off + 10 * ldy, _finish(a10, bias0, code, alpha), width)
    if m0 + 11 < m_end:
        vstore_n(y, off + 11 * ldy, _finish(a11, bias0, code, alpha), width)
    if m0 + 12 < m_end:
        vstore_n(y, off + 12 * ldy, _finish(a12, bias0, code, alpha), width)
    if m0 + 13 < m_end:
        vstore_n(y, off + 13 * ldy, _finish(a13, bias0, code, alpha), width)
    if m0 + 14 < m_end:
        vstore_n(y, off + 14 * ldy, _finish(a14, bias0, code, alpha), width)
    if m0 + 15 < m_end:
        vstore_n(y, off + 15 * ldy, _finish(a15, bias0, code, alpha), width)


@njit(cache=True, nogil=True)
def _panels(x, c, taps, bases, b, bias, code, alpha, y, n, r0, r1, p0, p1, pk):
    # output rows [r0, r1) x channel panels [p0, p1); b flat (K*n,), bias (n,), y flat (rows*n,); each panel
    # is packed into pk (K*32,) just before its tiles run
    k = taps.shape[0] * c
    for p in range(p0, p1):
        _pack_panel(b, k, n, p * NR, min(NR, n - p * NR), pk)
        _panel_tiles(x, c, taps, bases, pk, 0, bias, code, alpha, y, n, r0, r1, p)


@njit(cache=True, nogil=True)
def _pack_all(b, k, n, packed):
    # every panel of b flat (k*n,) into packed (panels*k*32,), panel p at p*k*32
    for p in range((n + NR - 1) // NR):
        _pack_panel(b, k, n, p * NR, min(NR, n - p * NR), packed[p * k * NR:(p + 1) * k * NR])


@njit(cache=True, nogil=True)
def _panel_tiles(x, c, taps, bases, pk, kk, bias, code, alpha, y, n, r0, r1, p):
    # rows [r0, r1) of panel p, whose packed kernel starts at pk[kk]
    col0 = p * NR
    width = min(NR, n - col0)
    bias0 = vload_n(bias, col0, min(16, width))
    if width > 16:
        bias1 = vload_n(bias, col0 + 16, width - 16)
        for m0 in range(r0, r1, MR):
            _tile(x, c, taps, bases, pk, kk, m0, r1, y, n, col0, width, bias0, bias1, code, alpha)
    else:
        for m0 in range(r0, r1, 2 * MR):
            _tile_narrow(x, c, taps, bases, pk, kk, m0, r1, y, n, col0, width, bias0, code, alpha)


@njit(cache=True, nogil=True)
def _act_block(y, n, r0, r1, c0, c1, code, alpha):
    # sigmoid/swish (codes 4, 5) in place on rows [r0, r1) x columns [c0, c1) of y flat (rows*n,)
    for r in range(r0, r1):
        for j in range(r * n + c0, r * n + c1):
            y[j] = act(y[j], code, alpha)


@njit(cache=True, nogil=True)
def _units(x, c, taps, bases, b, bias, code, alpha, y, n, rows, by_rows, u0, u1):
    # units [u0, u1) of the output: 8-row tiles (by_rows) or 32-channel panels; then codes 4/5 on them
    pk = np.empty(taps.shape[0] * c * NR, np.float32)  # this piece's packed panel (L1/L2-sized)
    fused = code if code <= 3 else 0
    panels = (n + NR - 1) // NR
    if by_rows:
        r0, r1, p0, p1 = u0 * MR, min(rows, u1 * MR), 0, panels
    else:
        r0, r1, p0, p1 = 0, rows, u0, u1
    _panels(x, c, taps, bases, b, bias, fused, alpha, y, n, r0, r1, p0, p1, pk)
    if code > 3:
        _act_block(y, n, r0, r1, p0 * NR, min(n, p1 * NR), code, alpha)


@njit(cache=True, nogil=True, parallel=True)
def _units_parallel(x, c, taps, bases, b, bias, code, alpha, y, n, rows, by_rows, units, pieces):
    for i in prange(pieces):
        _units(x, c, taps, bases, b, bias, code, alpha, y, n, rows, by_rows, units * i // pieces,
               units * (i + 1) // pieces)


@njit(cache=True, nogil=True)
def _pad_into(x, top, left, xp):
    # xp (N, Hp, Wp, C) = x (N, H, W, C) placed at (top, left), zeros around
    n_, h, w, c = x.shape
    for n in range(n_):
        for i in range(xp.shape[1]):
            iy = i - top
            dst = xp[n, i].reshape(-1)
            if iy < 0 or iy >= h:
                dst[:] = 0.0
                continue
            dst[:left * c] = 0.0
            dst[left * c:(left + w) * c] = x[n, iy].reshape(-1)
            dst[(left + w) * c:] = 0.0


class Layout(NamedTuple):
    """What conv2d derives from shapes and geometry alone (see :func:`layout`)."""
    pads: tuple[int, int, int, int]   # top, bottom, left, right
    out_shape: tuple[int, int, int, int]
    taps: np.ndarray                  # read-only, see _offsets
    bases: np.ndarray
    run: int                          # inputs per tap: kw*cin or cin
    rows: int                         # output pixels
    work: int                         # multiply-adds / 4, for parallel.parts


@functools.lru_cache(maxsize=1024)
def layout(x_shape, k_shape, stride, dilation, pads, out_hw) -> Layout:
    """The :class:`Layout` of a convolution; cached, since a model calls each layer with the same shapes.
    Arguments as :func:`conv2d` takes them (shapes as tuples)."""
    n_img, h, w, c = x_shape
    kh, kw, _, cout = k_shape
    (sh, sw), (dh, dw), (top, bottom, left, right), (oh, ow) = stride, dilation, pads, out_hw
    taps, bases = _offsets(n_img, h + top + bottom, w + left + right, c, kh, kw, sh, sw, dh, dw, oh, ow)
    rows = n_img * oh * ow
    return Layout(tuple(pads), (n_img, oh, ow, cout), taps, bases, kh * kw * c // taps.shape[0], rows,
                  rows * cout * kh * kw * c // 4)


def conv2d(x, kernel, bias, code, alpha, stride, dilation, pads, out_hw):
    """y = act(conv(x, kernel) + bias) as one implicit GEMM. x (N, H, W, cin) C-contiguous float32, kernel
    (kh, kw, cin, cout), bias (cout,) or None, pads (top, bottom, left, right), out_hw (oh, ow)."""
    return run(x, kernel, bias, code, alpha, layout(x.shape, kernel.shape, stride, dilation, tuple(pads), out_hw))


def run(x, kernel, bias, code, alpha, lay: Layout):
    """:func:`conv2d` with its :class:`Layout` already known: x, kernel, bias as there, and C-contiguous."""
    top, bottom, left, right = lay.pads
    if top or bottom or left or right:
        n_img, h, w, c = x.shape
        xp = scratch("gemm_pad", (n_img, h + top + bottom, w + left + right, c))
        _pad_into(x, top, left, xp)
    else:
        xp = x
    cout = lay.out_shape[3]
    b = _zeros(cout) if bias is None else bias
    y = np.empty(lay.out_shape, np.float32)
    tiles, panels = -(-lay.rows // MR), -(-cout // NR)
    threads = numba.get_num_threads()
    by_rows = tiles >= 4 * threads or panels < threads  # few rows (late layers at batch 1): split channels
    units = tiles if by_rows else panels
    args = (xp.reshape(-1), lay.run, lay.taps, lay.bases, kernel.reshape(-1), b, code, np.float32(alpha),
            y.reshape(-1), cout, lay.rows, by_rows)
    parallel.split(_units, _units_parallel, args, units, lay.work)
    return y


@functools.lru_cache(maxsize=64)
def _zeros(n: int) -> np.ndarray:
    """A float32 zero vector of length n (the bias of a conv without one). Shared: kernels only read it (it is
    not marked read-only because Numba would compile every kernel again for read-only arrays)."""
    return np.zeros(n, np.float32)
