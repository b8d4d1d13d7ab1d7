"""Fast depthwise and separable convolution: a parallel Numba loop with bias and activation fused.

Depthwise convolution is memory-bound (kh*kw multiply-adds per output value; judge it by bytes moved), so
each output row is accumulated tap by tap while it sits in L1 cache and written to memory once, with bias
and activation applied before it leaves. Threads (:mod:`nnlite.ops.parallel`) split the (image, output
row) pairs; the innermost loop runs over contiguous channels (SIMD). Output channel c*mult + m reads input channel c
(TF's layout for a (kh, kw, cin, mult) kernel). Padding follows :mod:`nnlite.ops.padding`: padded taps are
skipped, which is the same as multiplying by zero.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import checks, parallel
from .activations import act_row, code_of
from .conv import conv2d
from .padding import pair, resolve_padding_2d


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
    if kh == kw == 3 and mult == 1 and dh == dw == 1:
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
    mid = depthwise_conv2d(x, depthwise_kernel, stride=stride, padding=padding, dilation=dilation)
    return conv2d(mid, pointwise_kernel, bias, activation=activation, alpha=alpha)
