"""Fast depthwise convolution, bias and activation fused.

Depthwise convolution is memory-bound (kh*kw multiply-adds per output value; judge it by bytes moved), so
each output value is summed in registers or while its row sits in L1, and written to memory once with
bias and activation applied. Output channel c*mult + m reads input channel c (TF's layout for a
(kh, kw, cin, mult) kernel). Padding follows :mod:`nnlite.ops.padding`: padded taps are skipped, which is
the same as multiplying by zero.

* "simd" engine (AVX-512 CPUs, :mod:`nnlite.ops.gemm`), multiplier 1: :mod:`nnlite.ops.depthwise_simd`,
  tiles of 8 pixels x 16 channels in vector registers; Numba's threads split the (image, output row)
  pairs. :mod:`nnlite.ops.separable` fuses it with a following 1x1 conv.
* Otherwise: a channel loop per pixel (:func:`_depthwise`), an unrolled 3x3 (:func:`_depthwise3x3`) or,
  with few channels (NASNet's 11-44), whole output rows at once (:func:`_depthwise_flat`), on the Python
  pool.
"""

from __future__ import annotations

import functools

import numpy as np

from . import buffers, checks, depthwise_stream, engine, machine, parallel, prepack
from .activations import CODES, act_row, code_of
from .conv import _plain, _plain_input, cached_geometry
from .depthwise_simd import depthwise_rows, depthwise_rows_parallel, valid_range
from .jit import kernel
from .padding import pair, resolve_padding_2d
from .tiles import act_address, zeros
from .workspace import scratch

# Multiplier 1: the flat-row kernel _depthwise_flat up to this many channels (measured,
# 1 thread: 7x7 at 11 channels 5x faster, 5x5 at 128 1.1x; at 240 channels the channel loop is as fast; with
# stride > 1 its gather costs more, so it only wins below ~32 channels). Against the unrolled 3x3 kernel it wins
# at stride 1 below 32 channels (11 channels: 3x) and loses at stride 2.
FLAT_MAX_C = 128
FLAT_MAX_C_STRIDED = 31
FLAT_MAX_C_3X3 = 31


@kernel
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
                lo, hi = valid_range(ow, w, sw, j * dw - left)  # skip padded columns without a branch
                for ox in range(lo, hi):
                    ix = ox * sw + j * dw - left
                    if mult == 1:
                        for c in range(cout):
                            y[n, oy, ox, c] += x[n, iy, ix, c] * k[i, j, c]
                    else:
                        for oc in range(cout):
                            y[n, oy, ox, oc] += x[n, iy, ix, oc // mult] * k[i, j, oc]
        act_row(y[n, oy].reshape(ow * cout), code, alpha)


@kernel
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
                lo, hi = valid_range(ow, w, sw, j * dw - left)
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


@kernel
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
        for q in range(lo + ow - hi):  # border columns [0, lo) and [hi, ow): skip taps outside the image
            ox = q if q < lo else hi + q - lo
            for ch in range(c):
                y[n, oy, ox, ch] = bias[ch]
            for i in range(3):
                src = a if i == 0 else b if i == 1 else d
                for j in range(3):
                    ix = ox * sw + j - left
                    if 0 <= ix < w:
                        for ch in range(c):
                            y[n, oy, ox, ch] += src[ix, ch] * k[i, j, ch]
        act_row(y[n, oy].reshape(ow * c), code, alpha)


@functools.lru_cache(maxsize=1024)
def _simd_geometry(x_shape, k_shape, stride, padding, dilation):
    """depthwise_rows' shape arguments (h, w, cin, kh, kw, sh, sw, dh, dw, top, left), (N, oh, ow, C) and
    the work for parallel.split; cached per layer shape (a model calls each layer with the same shapes)."""
    n, h, w, cin = x_shape
    kh, kw = k_shape[0], k_shape[1]
    (sh, sw), (dh, dw) = pair(stride, "stride"), pair(dilation, "dilation")
    (t, _, oh), (l, _, ow) = resolve_padding_2d(h, w, kh, kw, stride, dilation, padding)
    return (h, w, cin, kh, kw, sh, sw, dh, dw, t, l), (n, oh, ow, cin), n * oh * ow * cin * kh * kw // 4


def _fast_geometry(x, kernel, bias, stride, padding, dilation, activation):
    """_simd_geometry when every argument is in final form for the "simd" path (multiplier 1), else None:
    the checked path runs, which converts what it can and raises nnlite's errors for the rest."""
    if not (_plain_input(x) and _plain(kernel, 4) and kernel.shape[3] == 1 and kernel.shape[2] == x.shape[3]
            and (bias is None or (_plain(bias, 1) and bias.shape[0] == x.shape[3]))):
        return None
    return cached_geometry(_simd_geometry, (activation,), x.shape, kernel.shape, stride, padding, dilation)


def _run_simd(x, kernel, bias, code, alpha, geometry):
    return _prepare_simd(kernel, bias, code, alpha, geometry)(x)


def _prepare_simd(kernel, bias, code, alpha, geometry):
    """The simd path as a function of x alone (see nnlite.ops.gemm.prepare)."""
    shape_args, out_shape, work = geometry
    head = (*shape_args[:3], prepack.as_writable(kernel).reshape(-1),
            zeros(out_shape[3]) if bias is None else prepack.as_writable(bias))
    tail = (*shape_args[3:], code, np.float32(alpha))
    h, w, _, kh, kw, sh, sw, dh, dw, _, left = shape_args
    dw_rows_at = depthwise_stream.rows_address(h, w, kh, kw, sh, sw, dh, dw, left, out_shape[2])
    caches = machine.caches()
    end = (out_shape[1], out_shape[2], 0, act_address(code), dw_rows_at, caches.l1d, caches.l2)  # row_off 0

    def rows(x, _held=(kernel, bias)):  # _held: while their writable views are used
        y = buffers.empty(out_shape)
        parallel.split(depthwise_rows, depthwise_rows_parallel, (x.reshape(-1), *head, *tail, y.reshape(-1), *end),
                       out_shape[0] * out_shape[1], work)
        return y
    rows.out_shape = out_shape
    return rows


def prepare_depthwise_conv2d(x, kernel, bias=None, *, stride=1, padding="valid", dilation=1, activation=None,
                             alpha=0.2):
    """``depthwise_conv2d(x, kernel, bias, ...)`` for inputs of ``x``'s shape as a function of the input alone,
    prepared once (``.out_shape``: the output's shape); None unless its fast path takes these arguments."""
    if not engine.simd():
        return None
    geometry = _fast_geometry(x, kernel, bias, stride, padding, dilation, activation)
    return None if geometry is None else _prepare_simd(kernel, bias, CODES[activation], alpha, geometry)


def depthwise_conv2d(x, kernel, bias=None, *, stride=1, padding="valid", dilation=1, activation=None, alpha=0.2):
    """Depthwise conv. x (N, H, W, cin), kernel (kh, kw, cin, mult) -> (N, oh, ow, cin*mult), channel c*mult + m."""
    fast = prepare_depthwise_conv2d(x, kernel, bias, stride=stride, padding=padding, dilation=dilation,
                                    activation=activation, alpha=alpha)
    if fast is not None:  # a model's hot path: arguments already in final form, geometry cached
        return fast(x)
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
    if mult == 1 and engine.simd():
        return _run_simd(np.ascontiguousarray(x), np.ascontiguousarray(kernel), bias, code, alpha,
                         _simd_geometry(x.shape, kernel.shape, stride, padding, dilation))
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
