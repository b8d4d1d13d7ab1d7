"""Fast conv2d and dense: everything becomes one BLAS matrix multiply, then one fused bias+activation pass.

* 1x1 convolution without padding: (N*H*W, cin) @ (cin, cout) on a reshaped view of x (no copy at stride 1).
* k x k convolution: im2col (a parallel Numba kernel that also writes the zero padding) into a reused
  scratch buffer of shape (N*oh*ow, kh*kw*cin), times the kernel viewed as (kh*kw*cin, cout). The column
  order (i, j, c) matches the kernel's C-order layout (kh, kw, cin, cout), so the kernel needs no copy.
* bias and activation are applied in place in one parallel pass over the output.
Padding follows :mod:`nnlite.ops.padding` (TF 'same': extra row/column bottom/right).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import checks
from .activations import bias_act_, code_of
from .padding import pair, resolve_padding_2d
from .workspace import scratch


@njit(cache=True, parallel=True)
def _im2col(x, kh, kw, sh, sw, dh, dw, top, left, oh, ow, cols):
    # x (N, H, W, C); cols (N*oh*ow, kh*kw*C): row (n, oy, ox), column (i, j, c)
    n_, h, w, c = x.shape
    for r in prange(n_ * oh):
        n, oy = r // oh, r % oh
        for ox in range(ow):
            row = r * ow + ox
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


def _kernel_2d(kernel: np.ndarray) -> np.ndarray:
    """(kh, kw, cin, cout) -> (kh*kw*cin, cout) view (a copy only if the kernel is not C-contiguous)."""
    return np.ascontiguousarray(kernel).reshape(-1, kernel.shape[-1])


def conv2d(x, kernel, bias=None, *, stride=1, padding="valid", dilation=1, activation=None, alpha=0.2):
    """2-D convolution (cross-correlation, as TF). x (N, H, W, cin), kernel (kh, kw, cin, cout) -> (N, oh, ow, cout).

    padding: "valid", TF "same" (extra row/column bottom/right) or (top, bottom, left, right).
    """
    x = np.ascontiguousarray(checks.nhwc(x, "conv2d"))
    kernel = checks.array(kernel, "conv2d", "kernel (kh, kw, cin, cout)", 4)
    kh, kw, cin, cout = kernel.shape
    checks.channels("conv2d", f"kernel of shape {kernel.shape}", cin, x.shape[3])
    bias = checks.bias_vector(bias, cout, "conv2d")
    code = code_of(activation, "conv2d")
    (sh, sw), (dh, dw) = pair(stride, "stride"), pair(dilation, "dilation")
    (t, b, oh), (l, r, ow) = resolve_padding_2d(x.shape[1], x.shape[2], kh, kw, stride, dilation, padding)
    n = x.shape[0]
    y = np.empty((n, oh, ow, cout), np.float32)  # (N, oh, ow, cout)
    y2 = y.reshape(n * oh * ow, cout)
    if kh == kw == 1 and t == b == l == r == 0:
        if sh == sw == 1:
            a = x.reshape(-1, cin)  # (N*H*W, cin) view
        else:
            a = scratch("conv_strided", (n, oh, ow, cin))
            a[...] = x[:, ::sh, ::sw][:, :oh, :ow]
            a = a.reshape(-1, cin)
        np.dot(a, kernel.reshape(cin, cout), out=y2)
    else:
        cols = scratch("im2col", (n * oh * ow, kh * kw * cin))
        _im2col(x, kh, kw, sh, sw, dh, dw, t, l, oh, ow, cols)
        np.dot(cols, _kernel_2d(kernel), out=y2)
    return bias_act_(y, bias, code, alpha)


def dense(x, kernel, bias=None, *, activation=None, alpha=0.2):
    """x @ kernel + bias on the last axis, activation fused. x (..., in), kernel (in, out) -> (..., out)."""
    x = np.asarray(x, dtype=np.float32)
    kernel = checks.array(kernel, "dense", "kernel (in, out)", 2)
    checks.channels("dense", f"kernel of shape {kernel.shape}", kernel.shape[0], x.shape[-1])
    bias = checks.bias_vector(bias, kernel.shape[1], "dense")
    code = code_of(activation, "dense")
    x2 = np.ascontiguousarray(x).reshape(-1, kernel.shape[0])  # (rows, in)
    y = np.empty(x.shape[:-1] + (kernel.shape[1],), np.float32)
    np.dot(x2, np.ascontiguousarray(kernel), out=y.reshape(-1, kernel.shape[1]))
    return bias_act_(y, bias, code, alpha)
