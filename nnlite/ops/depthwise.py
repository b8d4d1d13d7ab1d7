"""Fast depthwise and separable convolution, bias and activation fused.

Depthwise convolution is memory-bound (kh*kw multiply-adds per output value; judge it by bytes moved), so
each output value is summed in registers or while its row sits in L1, and written to memory once with
bias and activation applied. Output channel c*mult + m reads input channel c (TF's layout for a
(kh, kw, cin, mult) kernel). Padding follows :mod:`nnlite.ops.padding`: padded taps are skipped, which is
the same as multiplying by zero.

* "simd" engine (AVX-512 CPUs, :mod:`nnlite.ops.gemm`), multiplier 1: :func:`_depthwise_simd`, tiles of 8
  pixels x 16 channels in vector registers; Numba's threads split the (image, output row) pairs.
  :func:`depthwise_pointwise` (separable convolutions, and a depthwise layer feeding a 1x1 conv in a
  model's plan, see :mod:`nnlite.graph`) also runs the 1x1 conv on each band of depthwise rows while it
  is in L2, so the depthwise output never goes to memory.
* Otherwise: a channel loop per pixel (:func:`_depthwise`), an unrolled 3x3 (:func:`_depthwise3x3`) or,
  with few channels (NASNet's 11-44), whole output rows at once (:func:`_depthwise_flat`), on the Python
  pool.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange

from ..errors import ShapeError
from . import checks, conv, parallel
from .activations import CODES, act_row, code_of
from .conv import _plain, conv2d
from .gemm import NR, _act_block, _finish, _pack_all, _panel_tiles, _zeros
from .simd import vfma, vload_n, vstore_n, vzero
from .padding import pair, resolve_padding_2d
from .workspace import scratch

# Multiplier 1: the flat-row kernel _depthwise_flat up to this many channels (measured,
# 1 thread: 7x7 at 11 channels 5x faster, 5x5 at 128 1.1x; at 240 channels the channel loop is as fast; with
# stride > 1 its gather costs more, so it only wins below ~32 channels). Against the unrolled 3x3 kernel it wins
# at stride 1 below 32 channels (11 channels: 3x) and loses at stride 2.
FLAT_MAX_C = 128
FLAT_MAX_C_STRIDED = 31
FLAT_MAX_C_3X3 = 31


@njit(cache=True, inline="always")
def _valid_range(n_out, n_in, stride, offset):
    """Output indices o in [lo, hi) whose input index o*stride + offset lies inside [0, n_in)."""
    lo = 0 if offset >= 0 else (-offset + stride - 1) // stride
    hi = 0 if n_in - offset <= 0 else min(n_out, (n_in - offset - 1) // stride + 1)
    return lo, max(hi, lo)


@njit(cache=True, nogil=True)
def _depthwise(x, k, bias, mult, sh, sw, dh, dw, top, left, code, alpha, y, r0, r1):
    # x (N, H, W, cin); k (kh, kw, cin*mult); bias (cin*mult,); y (N, oh, ow, cin*mult); rows r = n*oh + oy
    n_, h, w, cin = x.shape
    kh, kw, cout = k.shape
    _, oh, ow, _ = y.shape
    for r in range(r0, r1):  # plain 4-D indexing: array views in this hot loop measured ~20% slower
        n, oy = r // oh, r % oh
        for ox in range(ow):
            for oc in range(cout):
                y[n, oy, ox, oc] = bias[oc]
        for i in range(kh):
            iy = oy * sh + i * dh - top
            if iy < 0 or iy >= h:
                continue  # a padded row contributes zero
            for j in range(kw):
                lo, hi = _valid_range(ow, w, sw, j * dw - left)  # skip padded columns without a branch
                for ox in range(lo, hi):
                    ix = ox * sw + j * dw - left
                    if mult == 1:
                        for c in range(cout):
                            y[n, oy, ox, c] += x[n, iy, ix, c] * k[i, j, c]
                    else:
                        for oc in range(cout):
                            y[n, oy, ox, oc] += x[n, iy, ix, oc // mult] * k[i, j, oc]
        act_row(y[n, oy].reshape(ow * cout), code, alpha)


@njit(cache=True, nogil=True)
def _depthwise_flat(xf, shape, kt, bias_t, sh, sw, dh, dw, top, left, code, alpha, yf, oh, ow, buf, r0, r1):
    # Multiplier 1, few channels: an output row is one flat run of ow*C values, and at stride 1 each tap
    # (i, j) is one long multiply-add over it (x shifted by j columns, times the tap's weights tiled over
    # the row), which vectorises whatever C is; _depthwise's channel loop is too short to vectorise at C = 11.
    # Stride > 1: the tap's input columns are first gathered into ``buf``. Same order of operations as
    # _depthwise (bias, then taps row by row), so results are identical. Flat 1-D arrays and explicit
    # offsets: xf = x (N, H, W, C) flattened; kt (kh*kw*ow*C,) taps tiled; bias_t (ow*C,); yf = y flattened.
    n_, h, w, c = shape
    kh, kw = kt.shape[0], kt.shape[1]
    kt = kt.reshape(-1)
    row = ow * c
    for r in range(r0, r1):
        n, oy = r // oh, r % oh
        y0 = r * row
        for t in range(row):
            yf[y0 + t] = bias_t[t]
        for i in range(kh):
            iy = oy * sh + i * dh - top
            if iy < 0 or iy >= h:
                continue  # a padded row contributes zero
            x0 = (n * h + iy) * w * c
            for j in range(kw):
                lo, hi = _valid_range(ow, w, sw, j * dw - left)
                k0 = (i * kw + j) * row
                m = (hi - lo) * c
                if m <= 0:
                    continue
                ys = yf[y0 + lo * c:y0 + hi * c]
                ks = kt[k0 + lo * c:k0 + hi * c]
                if sw == 1:
                    s0 = x0 + (lo + j * dw - left) * c
                    xs = xf[s0:s0 + m]
                else:
                    s0 = x0 + (lo * sw + j * dw - left) * c
                    step = sw * c
                    for p in range(hi - lo):  # gather the strided input pixels into one run
                        src = xf[s0 + p * step:s0 + p * step + c]
                        dst = buf[p * c:p * c + c]
                        for ch in range(c):
                            dst[ch] = src[ch]
                    xs = buf[:m]
                for q in range(m):  # indices from 0: no negative-index wraparound test, so it vectorises
                    ys[q] += xs[q] * ks[q]
        act_row(yf[y0:y0 + row], code, alpha)


@njit(cache=True, nogil=True)
def _depthwise3x3(x, k, bias, sh, sw, top, left, code, alpha, y, r0, r1):
    # The common case (3x3, multiplier 1, no dilation), unrolled: the 9 products of a pixel are summed in
    # registers and stored once, in the same order as _depthwise (bias first, then taps row by row), so
    # results are identical. Padded rows read a zero row; columns at the border take the generic path.
    # x (N, H, W, C); k (3, 3, C); bias (C,); y (N, oh, ow, C); rows r = n*oh + oy in [r0, r1)
    n_, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    zero = np.zeros((w, c), np.float32)
    lo = min(ow, (left + sw - 1) // sw)  # first output column whose 3 taps are all inside the image
    hi = max(lo, min(ow, (w - 3 + left) // sw + 1))  # one past the last such column
    for r in range(r0, r1):
        n, oy = r // oh, r % oh
        iy = oy * sh - top
        a = x[n, iy] if 0 <= iy < h else zero  # (W, C) input rows of taps i = 0, 1, 2
        b = x[n, iy + 1] if 0 <= iy + 1 < h else zero
        d = x[n, iy + 2] if 0 <= iy + 2 < h else zero
        for ox in range(lo, hi):
            ix = ox * sw - left
            for ch in range(c):
                y[n, oy, ox, ch] = (bias[ch] + a[ix, ch] * k[0, 0, ch] + a[ix + 1, ch] * k[0, 1, ch]
                                    + a[ix + 2, ch] * k[0, 2, ch] + b[ix, ch] * k[1, 0, ch]
                                    + b[ix + 1, ch] * k[1, 1, ch] + b[ix + 2, ch] * k[1, 2, ch]
                                    + d[ix, ch] * k[2, 0, ch] + d[ix + 1, ch] * k[2, 1, ch]
                                    + d[ix + 2, ch] * k[2, 2, ch])
        for ox in list(range(0, lo)) + list(range(hi, ow)):  # border columns: skip taps outside the image
            for ch in range(c):
                y[n, oy, ox, ch] = bias[ch]
            for i, src in ((0, a), (1, b), (2, d)):
                for j in range(3):
                    ix = ox * sw + j - left
                    if 0 <= ix < w:
                        for ch in range(c):
                            y[n, oy, ox, ch] += src[ix, ch] * k[i, j, ch]
        act_row(y[n, oy].reshape(ow * c), code, alpha)


def depthwise_conv2d(x, kernel, bias=None, *, stride=1, padding="valid", dilation=1, activation=None, alpha=0.2):
    """Depthwise conv. x (N, H, W, cin), kernel (kh, kw, cin, mult) -> (N, oh, ow, cin*mult), channel c*mult + m."""
    x = np.ascontiguousarray(checks.nhwc(x, "depthwise_conv2d"))
    kernel = checks.array(kernel, "depthwise_conv2d", "kernel (kh, kw, cin, mult)", 4)
    kh, kw, cin, mult = kernel.shape
    checks.channels("depthwise_conv2d", f"kernel of shape {kernel.shape}", cin, x.shape[3])
    bias = checks.bias_vector(bias, cin * mult, "depthwise_conv2d")
    code = code_of(activation, "depthwise_conv2d")
    (sh, sw), (dh, dw) = pair(stride, "stride"), pair(dilation, "dilation")
    (t, _, oh), (l, _, ow) = resolve_padding_2d(x.shape[1], x.shape[2], kh, kw, stride, dilation, padding)
    k = np.ascontiguousarray(kernel).reshape(kh, kw, cin * mult)  # (kh, kw, cout), channel c*mult + m
    b = np.zeros(cin * mult, np.float32) if bias is None else bias
    y = np.empty((x.shape[0], oh, ow, cin * mult), np.float32)
    unrolled = kh == kw == 3 and mult == 1 and dh == dw == 1
    if mult == 1 and conv.ENGINE["depthwise"] == "simd":
        args = (x.reshape(-1), x.shape[1], x.shape[2], cin, k.reshape(-1), b, kh, kw, sh, sw, dh, dw, t, l, code,
                np.float32(alpha), y.reshape(-1), oh, ow)
        rows = x.shape[0] * oh
        pieces = parallel.parts(rows, y.size * kh * kw // 4)
        if pieces == 1:
            _depthwise_simd(*args, 0, rows)
        else:
            parallel.launch(_depthwise_simd_parallel, *args, rows, pieces)
        return y
    if sw == 1:
        flat_max = FLAT_MAX_C_3X3 if unrolled else FLAT_MAX_C
    else:
        flat_max = 0 if unrolled else FLAT_MAX_C_STRIDED
    if mult == 1 and cin <= flat_max:
        kt = np.ascontiguousarray(np.broadcast_to(k[:, :, None, :], (kh, kw, ow, cin))).reshape(kh, kw, ow * cin)
        bt = np.ascontiguousarray(np.broadcast_to(b, (ow, cin))).reshape(ow * cin)  # (ow*C,) bias tiled
        xf, yf = x.reshape(-1), y.reshape(-1)

        def task(r0, r1):
            buf = scratch("depthwise_row", (ow * cin,))  # this thread's gather row (stride > 1)
            _depthwise_flat(xf, x.shape, kt, bt, sh, sw, dh, dw, t, l, code, np.float32(alpha), yf, oh, ow, buf,
                            r0, r1)
    elif unrolled:
        def task(r0, r1):
            _depthwise3x3(x, k, b, sh, sw, t, l, code, np.float32(alpha), y, r0, r1)
    else:
        def task(r0, r1):
            _depthwise(x, k, b, mult, sh, sw, dh, dw, t, l, code, np.float32(alpha), y, r0, r1)
    parallel.run(task, x.shape[0] * oh, y.size * kh * kw // 4)
    return y


def separable_conv2d(x, depthwise_kernel, pointwise_kernel, bias=None, *, stride=1, padding="valid", dilation=1,
                     activation=None, alpha=0.2):
    """Depthwise (kh, kw, cin, mult) then pointwise (1, 1, cin*mult, cout); bias and activation after both."""
    pointwise_kernel = checks.array(pointwise_kernel, "separable_conv2d", "pointwise kernel (1, 1, cin*mult, cout)", 4)
    if (conv.ENGINE["depthwise"] == "simd" and conv.ENGINE["conv"] == "simd"
            and np.ndim(depthwise_kernel) == 4 and np.shape(depthwise_kernel)[3] == 1):
        return depthwise_pointwise(x, depthwise_kernel, None, pointwise_kernel, bias, stride=stride,
                                   padding=padding, dilation=dilation, activation=activation, alpha=alpha)
    mid = depthwise_conv2d(x, depthwise_kernel, stride=stride, padding=padding, dilation=dilation)
    return conv2d(mid, pointwise_kernel, bias, activation=activation, alpha=alpha)


BAND_BYTES = 192 << 10  # depthwise rows computed at once by depthwise_pointwise: they stay in L2 for the GEMM
# Larger pointwise kernels run unfused: each band's GEMM would stream the whole kernel from L3, which cost
# more than the saved memory pass (measured, 2 threads: 19x19x728 -> 728 900 us unfused, 1094 fused;
# 128x128x128 -> 128 2169 unfused, 1717 fused; the crossover lies between 64 and 256 KiB of kernel).
FUSE_MAX_WEIGHT_BYTES = 128 << 10


def depthwise_pointwise(x, depthwise_kernel, depthwise_bias, pointwise_kernel, pointwise_bias, *, stride=1,
                        padding="valid", dilation=1, depthwise_activation=None, activation=None, alpha=0.2,
                        depthwise_alpha=0.2):
    """act(pointwise(act_d(depthwise(x) + depthwise_bias)) + pointwise_bias) without writing the depthwise
    output to memory: each thread computes a band of depthwise rows into a buffer that stays in L2 and
    multiplies it by the pointwise kernel at once (:func:`_separable_rows`); with a pointwise kernel over
    :data:`FUSE_MAX_WEIGHT_BYTES` the two run one after the other. The same arithmetic, in the same
    order, as depthwise_conv2d then conv2d with the "simd" engine, so results are bit-identical to them.
    Multiplier 1 only. depthwise_kernel (kh, kw, cin, 1), pointwise_kernel (1, 1, cin, cout)."""
    if conv.ENGINE["conv"] == "simd" and conv.ENGINE["depthwise"] == "simd":  # hot path: nothing to convert
        geo = _fast_pair_geometry(x, depthwise_kernel, depthwise_bias, pointwise_kernel, pointwise_bias, stride,
                                  padding, dilation, depthwise_activation, activation)
        if geo is not None:
            return _run_pair(x, depthwise_kernel, depthwise_bias, pointwise_kernel, pointwise_bias,
                             CODES[depthwise_activation], depthwise_alpha, CODES[activation], alpha, geo)
    x = np.ascontiguousarray(checks.nhwc(x, "separable_conv2d"))
    dk = checks.array(depthwise_kernel, "separable_conv2d", "depthwise kernel (kh, kw, cin, 1)", 4)
    pk = checks.array(pointwise_kernel, "separable_conv2d", "pointwise kernel (1, 1, cin, cout)", 4)
    kh, kw, cin, mult = dk.shape
    checks.channels("separable_conv2d", f"depthwise kernel of shape {dk.shape}", cin, x.shape[3])
    checks.channels("separable_conv2d", f"pointwise kernel of shape {pk.shape}", pk.shape[2], cin * mult)
    if mult != 1 or pk.shape[:2] != (1, 1):
        raise ShapeError(f"separable_conv2d: fused path needs multiplier 1 and a 1x1 pointwise kernel, got "
                         f"{dk.shape} and {pk.shape}")
    cout = pk.shape[3]
    db = checks.bias_vector(depthwise_bias, cin, "separable_conv2d")
    pb = checks.bias_vector(pointwise_bias, cout, "separable_conv2d")
    dcode, pcode = code_of(depthwise_activation, "separable_conv2d"), code_of(activation, "separable_conv2d")
    if cin * cout * 4 > FUSE_MAX_WEIGHT_BYTES:  # same results either way (see the docstring)
        mid = depthwise_conv2d(x, dk, db, stride=stride, padding=padding, dilation=dilation,
                               activation=depthwise_activation, alpha=depthwise_alpha)
        return conv2d(mid, pk, pb, activation=activation, alpha=alpha)
    geo = _pair_geometry(x.shape, dk.shape, pk.shape, pair(stride, "stride"), pair(dilation, "dilation"),
                         resolve_padding_2d(x.shape[1], x.shape[2], kh, kw, stride, dilation, padding))
    return _run_pair(x, np.ascontiguousarray(dk), db, np.ascontiguousarray(pk), pb, dcode, depthwise_alpha, pcode,
                     alpha, geo)


@functools.lru_cache(maxsize=1024)
def _pair_geometry(x_shape, dk_shape, pk_shape, stride, dilation, resolved):
    """Shape-derived arguments of _separable_rows, and (rows, band, work); cached per layer shape."""
    n, h, w, cin = x_shape
    kh, kw = dk_shape[0], dk_shape[1]
    cout = pk_shape[3]
    (t, _, oh), (l, _, ow) = resolved
    rows = n * oh
    band = max(1, min(rows, BAND_BYTES // (4 * ow * cin)))
    return (h, w, cin, kh, kw, *stride, *dilation, t, l, oh, ow, cout, rows, band,
            rows * ow * cin * (kh * kw + cout) // 4)


@functools.lru_cache(maxsize=1024)
def _fast_pair_key(x_shape, dk_shape, pk_shape, stride, padding, dilation):
    if not (dk_shape[2] == x_shape[3] and dk_shape[3] == 1 and pk_shape[:3] == (1, 1, x_shape[3])
            and x_shape[3] * pk_shape[3] * 4 <= FUSE_MAX_WEIGHT_BYTES):
        return None
    resolved = resolve_padding_2d(x_shape[1], x_shape[2], dk_shape[0], dk_shape[1], stride, dilation, padding)
    return _pair_geometry(x_shape, dk_shape, pk_shape, pair(stride, "stride"), pair(dilation, "dilation"),
                          resolved)


def _fast_pair_geometry(x, dk, db, pk, pb, stride, padding, dilation, dact, act):
    """depthwise_pointwise's geometry when every argument is in final form and fusable, else None."""
    if not (_plain(x, 4) and _plain(dk, 4) and _plain(pk, 4) and (db is None or _plain(db, 1))
            and (pb is None or _plain(pb, 1))):
        return None
    try:
        if dact not in CODES or act not in CODES:
            return None
        geo = _fast_pair_key(x.shape, dk.shape, pk.shape, stride, padding, dilation)
    except TypeError:  # an unhashable argument (a list): the checked path handles it
        return None
    if geo is None or (db is not None and db.shape[0] != x.shape[3]) or (pb is not None and pb.shape[0] != geo[13]):
        return None
    return geo


def _run_pair(x, dk, db, pk, pb, dcode, dalpha, pcode, alpha, geo):
    h, w, cin, kh, kw, sh, sw, dh, dw, t, l, oh, ow, cout, rows, band, work = geo
    y = np.empty((x.shape[0], oh, ow, cout), np.float32)
    args = (x.reshape(-1), h, w, cin, dk.reshape(-1), _zeros(cin) if db is None else db, kh, kw, sh, sw, dh, dw,
            t, l, dcode, np.float32(dalpha), pk.reshape(-1), _zeros(cout) if pb is None else pb, pcode,
            np.float32(alpha), y.reshape(-1), oh, ow, cout, band)
    pieces = parallel.parts(rows, work)
    if pieces == 1:
        _separable_rows(*args, 0, rows)
    else:
        parallel.launch(_separable_parallel, *args, rows, pieces)
    return y


@njit(cache=True, nogil=True)
def _dw_pixel(xf, top, i0, i1, h, w, c, k, kw, sw, dh, dw, left, ox, c0):
    # One output pixel's sums over its valid taps (rows i in [i0, i1), columns tested here) for channels
    # [c0, c0 + 64): four independent 16-lane sums, so consecutive multiply-adds do not wait on each other.
    # top = offset of input row 0 of tap i = 0 (may be < 0).
    w0, w1, w2, w3 = min(16, c - c0), min(16, c - c0 - 16), min(16, c - c0 - 32), min(16, c - c0 - 48)
    a0, a1, a2, a3 = vzero(), vzero(), vzero(), vzero()
    ix0 = ox * sw - left  # input column of tap j = 0
    j0, j1 = _valid_range(kw, w, dw, ix0)  # taps j whose column ix0 + j*dw is inside [0, w)
    for i in range(i0, i1):
        for j in range(j0, j1):
            q = top + i * dh * w * c + (ix0 + j * dw) * c + c0
            t = (i * kw + j) * c + c0
            a0 = vfma(vload_n(xf, q, w0), vload_n(k, t, w0), a0)
            a1 = vfma(vload_n(xf, q + 16, w1), vload_n(k, t + 16, w1), a1)
            a2 = vfma(vload_n(xf, q + 32, w2), vload_n(k, t + 32, w2), a2)
            a3 = vfma(vload_n(xf, q + 48, w3), vload_n(k, t + 48, w3), a3)
    return a0, a1, a2, a3


@njit(cache=True, nogil=True)
def _depthwise_simd(xf, h, w, c, k, bias, kh, kw, sh, sw, dh, dw, top_pad, left, code, alpha, yf, oh, ow,
                    r0, r1, row_off=0):
    # Multiplier 1 on explicit 16-lane vectors (nnlite.ops.simd): a tile of 8 output pixels x 16 channels
    # sums its kh*kw taps in 8 registers (one weight load per tap for all 8), then bias and activation are
    # applied and the tile is stored once. All channel blocks of 8 pixels are done before moving on, while
    # their kh input rows are in L1. Padding is never copied: taps on padded rows are skipped, and the few
    # pixels whose taps reach into padded columns (the row's ends) take _dw_pixel's path, with the ranges
    # of valid taps computed per pixel. A last partial tile of 4-7 pixels recomputes its last pixel in the
    # missing slots (not stored); 1-3 leftover pixels go one at a time.
    # xf = x (N, H, W, C) flattened; k (kh*kw*C,) taps in (i, j) order; yf = y (N, oh, ow, C) flattened;
    # rows r = n*oh + oy in [r0, r1), stored at row r - row_off of yf.
    fused = code if code <= 3 else 0
    lo = min(ow, (left + sw - 1) // sw)  # first output column whose kw taps are all inside the image
    hi = max(lo, min(ow, (w - 1 - (kw - 1) * dw + left) // sw + 1))  # one past the last such column
    tap_x = np.empty(kh * kw, np.int64)  # this row's valid taps: input offset from column 0's pixel ...
    tap_k = np.empty(kh * kw, np.int64)  # ... and kernel offset: one flat loop of up to kh*kw steps per tile
    for r in range(r0, r1):
        n = r // oh
        iy0 = (r - n * oh) * sh - top_pad  # input row of tap i = 0
        i0, i1 = _valid_range(kh, h, dh, iy0)  # taps i whose row iy0 + i*dh is inside [0, h)
        top = (n * h + iy0) * w * c
        taps = 0
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
                        vstore_n(yf, out + 16 * v, _finish(acc, bv, fused, alpha), width)
        last = tiled_hi - 1
        for ox0 in range(lo, tiled_hi, 8):
            for c0 in range(0, c, 16):
                width = min(16, c - c0)
                q0 = min(ox0, last) * sw * c + c0
                q1 = min(ox0 + 1, last) * sw * c + c0
                q2 = min(ox0 + 2, last) * sw * c + c0
                q3 = min(ox0 + 3, last) * sw * c + c0
                q4 = min(ox0 + 4, last) * sw * c + c0
                q5 = min(ox0 + 5, last) * sw * c + c0
                q6 = min(ox0 + 6, last) * sw * c + c0
                q7 = min(ox0 + 7, last) * sw * c + c0
                a0, a1, a2, a3 = vzero(), vzero(), vzero(), vzero()
                a4, a5, a6, a7 = vzero(), vzero(), vzero(), vzero()
                for t in range(taps):
                    p = tap_x[t]
                    wv = vload_n(k, tap_k[t] + c0, width)
                    a0 = vfma(vload_n(xf, p + q0, width), wv, a0)
                    a1 = vfma(vload_n(xf, p + q1, width), wv, a1)
                    a2 = vfma(vload_n(xf, p + q2, width), wv, a2)
                    a3 = vfma(vload_n(xf, p + q3, width), wv, a3)
                    a4 = vfma(vload_n(xf, p + q4, width), wv, a4)
                    a5 = vfma(vload_n(xf, p + q5, width), wv, a5)
                    a6 = vfma(vload_n(xf, p + q6, width), wv, a6)
                    a7 = vfma(vload_n(xf, p + q7, width), wv, a7)
                bv = vload_n(bias, c0, width)
                out = out_row + ox0 * c + c0
                vstore_n(yf, out, _finish(a0, bv, fused, alpha), width)
                if ox0 + 1 < tiled_hi:
                    vstore_n(yf, out + c, _finish(a1, bv, fused, alpha), width)
                if ox0 + 2 < tiled_hi:
                    vstore_n(yf, out + 2 * c, _finish(a2, bv, fused, alpha), width)
                if ox0 + 3 < tiled_hi:
                    vstore_n(yf, out + 3 * c, _finish(a3, bv, fused, alpha), width)
                if ox0 + 4 < tiled_hi:
                    vstore_n(yf, out + 4 * c, _finish(a4, bv, fused, alpha), width)
                if ox0 + 5 < tiled_hi:
                    vstore_n(yf, out + 5 * c, _finish(a5, bv, fused, alpha), width)
                if ox0 + 6 < tiled_hi:
                    vstore_n(yf, out + 6 * c, _finish(a6, bv, fused, alpha), width)
                if ox0 + 7 < tiled_hi:
                    vstore_n(yf, out + 7 * c, _finish(a7, bv, fused, alpha), width)
        if code > 3:
            act_row(yf[out_row:out_row + ow * c], code, alpha)


@njit(cache=True, nogil=True, parallel=True)
def _depthwise_simd_parallel(xf, h, w, c, k, bias, kh, kw, sh, sw, dh, dw, top_pad, left, code, alpha, yf, oh, ow,
                             rows, pieces):
    for i in prange(pieces):
        _depthwise_simd(xf, h, w, c, k, bias, kh, kw, sh, sw, dh, dw, top_pad, left, code, alpha, yf, oh, ow,
                        rows * i // pieces, rows * (i + 1) // pieces)


@njit(cache=True, nogil=True)
def _separable_rows(xf, h, w, c, dk, dbias, kh, kw, sh, sw, dh, dw, top_pad, left, dcode, dalpha, pk, pbias, pcode,
                    palpha, yf, oh, ow, cout, band, r0, r1):
    # Output rows [r0, r1) of depthwise_pointwise, ``band`` rows at a time: the depthwise rows go to ``mid``
    # (band*ow, c), then nnlite.ops.gemm's tiles multiply them by the pointwise kernel pk (c*cout,).
    mid = np.empty(band * ow * c, np.float32)
    panels = (cout + NR - 1) // NR
    packed = np.empty(panels * c * NR, np.float32)  # the pointwise kernel packed once, for every band
    _pack_all(pk, c, cout, packed)
    bases = np.arange(band * ow) * c
    taps = np.zeros(1, np.int64)
    fused = pcode if pcode <= 3 else 0
    for b0 in range(r0, r1, band):
        b1 = min(r1, b0 + band)
        _depthwise_simd(xf, h, w, c, dk, dbias, kh, kw, sh, sw, dh, dw, top_pad, left, dcode, dalpha, mid, oh, ow,
                        b0, b1, b0)
        out = yf[b0 * ow * cout:b1 * ow * cout]
        n_rows = (b1 - b0) * ow
        for p in range(panels):
            _panel_tiles(mid, c, taps, bases, packed, p * c * NR, pbias, fused, palpha, out, cout, 0, n_rows, p)
        if pcode > 3:
            _act_block(out, cout, 0, n_rows, 0, cout, pcode, palpha)


@njit(cache=True, nogil=True, parallel=True)
def _separable_parallel(xf, h, w, c, dk, dbias, kh, kw, sh, sw, dh, dw, top_pad, left, dcode, dalpha, pk, pbias,
                        pcode, palpha, yf, oh, ow, cout, band, rows, pieces):
    for i in prange(pieces):
        _separable_rows(xf, h, w, c, dk, dbias, kh, kw, sh, sw, dh, dw, top_pad, left, dcode, dalpha, pk, pbias,
                        pcode, palpha, yf, oh, ow, cout, band, rows * i // pieces, rows * (i + 1) // pieces)
