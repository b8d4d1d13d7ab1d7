"""The NumPy engine: every layer kind the bundled models declare, in float32 NumPy alone, without Numba.

Importing Numba takes longer than onnxruntime's whole start (benchmarks/RESULTS.md, round 29), and a process
that runs one image (``nnlite classify photo.jpg``) pays it, then loads each compiled kernel from the disk
cache, for one call. These functions compute the same layers with NumPy's own calls (a convolution as one
matrix product of its unrolled windows, a depthwise convolution as one multiply-add per kernel tap), so a
one-shot process never imports Numba (:mod:`nnlite.ops.oneshot` decides when). They are slower per call
than the compiled kernels on all but the smallest layers, and they are not the test oracles: those are the
float64 loops of :mod:`nnlite.ops.reference`, which both engines are tested against.

Same names, signatures, argument checks and rules as the kernels of :mod:`nnlite.ops` (padding, TF's average
pool divisor, the activation list); sums are float32, so results agree with the other engines to float32
rounding, not bit for bit. :data:`KERNELS` maps each op name to its function; an op missing from it runs on
the compiled kernel. They run on one thread: NumPy's BLAS is held to one (:mod:`nnlite.ops.threads`). On a quiet
2-core machine two BLAS threads made six face descriptors 1.4x faster and MobileNetV2 no faster; while other
processes held the cores they made every model 1.9-6.5x slower (benchmarks/RESULTS.md, round 29).
"""

from __future__ import annotations

import numpy as np

from . import checks, machine
from .arrays import broadcast, crop2d, flatten, mean, multiply, reshape, zero_pad2d
from .padding import pair, resolve_padding_2d
from .resize_rules import bilinear_axis, resize_nearest

SIX = np.float32(6)


def _activate(y: np.ndarray, activation, alpha: float) -> np.ndarray:
    """``activation`` applied to the float32 array ``y`` in place where it can be; returns the result."""
    name = checks.activation_name(activation, "activation")
    if name is None:
        return y
    if name == "relu":
        return np.maximum(y, 0, out=y)
    if name == "relu6":
        return np.clip(y, 0, SIX, out=y)
    if name == "leaky_relu":
        return np.where(y >= 0, y, np.float32(alpha) * y)
    s = sigmoid(y)
    return s if name == "sigmoid" else np.multiply(y, s, out=s)


def relu(x):
    """max(x, 0)."""
    return np.maximum(checks.floats(x, "relu"), 0)


def relu6(x):
    """min(max(x, 0), 6)."""
    return np.clip(checks.floats(x, "relu6"), 0, SIX)


def leaky_relu(x, *, alpha=0.2):
    """x if x >= 0 else alpha * x."""
    return _activate(checks.floats(x, "leaky_relu").copy(), "leaky_relu", checks.number(alpha, "leaky_relu", "alpha"))


def sigmoid(x):
    """1 / (1 + exp(-x)), overflow to 0 or 1 without a warning."""
    x = checks.floats(x, "sigmoid")
    with np.errstate(over="ignore"):
        return (np.float32(1) / (np.float32(1) + np.exp(-x))).astype(np.float32)


def swish(x):
    """x * sigmoid(x)."""
    x = checks.floats(x, "swish")
    return x * sigmoid(x)


def softmax(x, *, axis=-1):
    """exp(x - max) / sum along ``axis``, the sum in float64 (as the kernel)."""
    x = checks.floats(x, "softmax", min_ndim=1)
    checks.axes(axis, x.ndim, "softmax")
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True, dtype=np.float64)).astype(np.float32)


def _padded(x: np.ndarray, t: int, b: int, l: int, r: int, value: float = 0.0) -> np.ndarray:
    if t == b == l == r == 0:
        return x
    return np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)), constant_values=value)


def _windows(xp: np.ndarray, kh: int, kw: int, stride, dilation, oh: int, ow: int):
    """Yield each kernel tap (i, j) and its view: window[n, y, x, c] = xp[n, y*sh + i*dh, x*sw + j*dw, c]."""
    (sh, sw), (dh, dw) = pair(stride, "stride"), pair(dilation, "dilation")
    for i in range(kh):
        for j in range(kw):
            yield i, j, xp[:, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw, :]


def _bands(rows: int, row_bytes: int, budget: int) -> list[tuple[int, int]]:
    """Output rows [r0, r1) in bands of about ``budget`` bytes of scratch (``row_bytes`` a row). Only the depthwise
    convolution takes bands: a convolution's matrix product in bands was up to 9x slower than one product (BLAS
    packs the kernel again for every band, which costs more than a band's rows when they are few)."""
    step = max(1, budget // max(row_bytes, 1))
    return [(r, min(r + step, rows)) for r in range(0, rows, step)]


def conv2d(x, kernel, bias=None, *, stride=1, padding="valid", dilation=1, activation=None, alpha=0.2):
    """2-D convolution (cross-correlation, as TF). x (N, H, W, cin), kernel (kh, kw, cin, cout) -> (N, oh, ow, cout).
    One matrix product: the windows unrolled into rows of kh*kw*cin values (a 1x1 at stride 1 reads x as is)."""
    x = checks.nhwc(x, "conv2d")
    kernel = checks.array(kernel, "conv2d", "kernel (kh, kw, cin, cout)", 4)
    kh, kw, cin, cout = kernel.shape
    checks.channels("conv2d", f"kernel of shape {kernel.shape}", cin, x.shape[3])
    bias = checks.bias_vector(bias, cout, "conv2d")
    (t, b, oh), (l, r, ow) = resolve_padding_2d(x.shape[1], x.shape[2], kh, kw, stride, dilation, padding)
    n = x.shape[0]
    if kh == kw == 1 and (t, b, l, r) == (0, 0, 0, 0) and (oh, ow) == x.shape[1:3]:
        cols = x.reshape(-1, cin)
    else:
        xp = _padded(x, t, b, l, r)
        cols = np.empty((n, oh, ow, kh, kw, cin), np.float32)
        for i, j, win in _windows(xp, kh, kw, stride, dilation, oh, ow):
            cols[:, :, :, i, j, :] = win
        cols = cols.reshape(-1, kh * kw * cin)
    y = cols @ kernel.reshape(-1, cout)
    if bias is not None:
        y += bias
    return _activate(y.reshape(n, oh, ow, cout), activation, alpha)


def depthwise_conv2d(x, kernel, bias=None, *, stride=1, padding="valid", dilation=1, activation=None, alpha=0.2):
    """Depthwise conv. x (N, H, W, cin), kernel (kh, kw, cin, mult) -> (N, oh, ow, cin*mult), channel c*mult + m.
    One multiply-add per kernel tap, in bands of output rows whose products take half of L2
    (:func:`nnlite.ops.machine.caches`): each tap's two passes then stay in the cache."""
    x = checks.nhwc(x, "depthwise_conv2d")
    kernel = checks.array(kernel, "depthwise_conv2d", "kernel (kh, kw, cin, mult)", 4)
    kh, kw, cin, mult = kernel.shape
    checks.channels("depthwise_conv2d", f"kernel of shape {kernel.shape}", cin, x.shape[3])
    bias = checks.bias_vector(bias, cin * mult, "depthwise_conv2d")
    (t, b, oh), (l, r, ow) = resolve_padding_2d(x.shape[1], x.shape[2], kh, kw, stride, dilation, padding)
    (sh, _), (dh, _) = pair(stride, "stride"), pair(dilation, "dilation")
    xp = _padded(x, t, b, l, r)[..., None]                       # (N, H, W, cin, 1) * (cin, mult) taps
    y = np.empty((x.shape[0], oh, ow, cin, mult), np.float32)
    for r0, r1 in _bands(oh, ow * cin * mult * 4 * max(x.shape[0], 1), machine.caches().l2 // 2):
        part = xp[:, r0 * sh:(r1 - 1) * sh + (kh - 1) * dh + 1]
        out, term = y[:, r0:r1], np.empty(y[:, r0:r1].shape, np.float32)
        for i, j, win in _windows(part, kh, kw, stride, dilation, r1 - r0, ow):
            if i == j == 0:
                np.multiply(win, kernel[0, 0], out=out)
            else:
                out += np.multiply(win, kernel[i, j], out=term)
    y = y.reshape(x.shape[0], oh, ow, cin * mult)
    if bias is not None:
        y += bias
    return _activate(y, activation, alpha)


def separable_conv2d(x, depthwise_kernel, pointwise_kernel, bias=None, *, stride=1, padding="valid", dilation=1,
                     activation=None, alpha=0.2):
    """Depthwise (kh, kw, cin, mult) then pointwise (1, 1, cin*mult, cout); bias and activation after both."""
    pointwise_kernel = checks.array(pointwise_kernel, "separable_conv2d", "pointwise kernel (1, 1, cin*mult, cout)", 4)
    mid = depthwise_conv2d(x, depthwise_kernel, stride=stride, padding=padding, dilation=dilation)
    return conv2d(mid, pointwise_kernel, bias, activation=activation, alpha=alpha)


def dense(x, kernel, bias=None, *, activation=None, alpha=0.2):
    """x @ kernel + bias on the last axis, activation fused. x (..., in), kernel (in, out) -> (..., out)."""
    x = checks.floats(x, "dense", min_ndim=1)
    kernel = checks.array(kernel, "dense", "kernel (in, out)", 2)
    checks.channels("dense", f"kernel of shape {kernel.shape}", kernel.shape[0], x.shape[-1])
    bias = checks.bias_vector(bias, kernel.shape[1], "dense")
    y = x @ kernel
    if bias is not None:
        y += bias
    return _activate(y, activation, alpha)


def _pool(x, pool_size, stride, padding, op):
    x = checks.nhwc(x, op)
    kh, kw = pair(pool_size, "pool_size")
    stride = (kh, kw) if stride is None else pair(stride, "stride")
    checks.pool_padding(padding, kh, kw, op)
    return x, kh, kw, stride, resolve_padding_2d(x.shape[1], x.shape[2], kh, kw, stride, 1, padding)


def max_pool2d(x, *, pool_size, stride=None, padding="valid"):
    """Max over each window; padded cells never win. stride None means pool_size."""
    x, kh, kw, stride, ((t, b, oh), (l, r, ow)) = _pool(x, pool_size, stride, padding, "max_pool2d")
    taps = _windows(_padded(x, t, b, l, r, -np.inf), kh, kw, stride, 1, oh, ow)
    y = next(taps)[2].copy()
    for _, _, win in taps:
        np.maximum(y, win, out=y)
    return y


def avg_pool2d(x, *, pool_size, stride=None, padding="valid"):
    """Mean over each window, divided by the count of real (unpadded) inputs under it (TF 'same' rule)."""
    x, kh, kw, stride, ((t, b, oh), (l, r, ow)) = _pool(x, pool_size, stride, padding, "avg_pool2d")
    y = np.zeros((x.shape[0], oh, ow, x.shape[3]), np.float32)
    for _, _, win in _windows(_padded(x, t, b, l, r), kh, kw, stride, 1, oh, ow):
        y += win
    ones = _padded(np.ones((1, x.shape[1], x.shape[2], 1), np.float32), t, b, l, r)
    count = sum(win for _, _, win in _windows(ones, kh, kw, stride, 1, oh, ow))
    return y / count


def global_avg_pool2d(x, *, keepdims=False):
    """Mean over H and W (accumulated in float64): (N, C), or (N, 1, 1, C) with keepdims."""
    x = checks.nhwc(x, "global_avg_pool2d")
    return x.mean(axis=(1, 2), keepdims=keepdims, dtype=np.float64).astype(np.float32)


def add(*xs, activation=None, alpha=0.2):
    """Elementwise sum (NumPy broadcasting, the kernel's shape checks), then ``activation``."""
    arrays, shape = broadcast(xs, "add")
    y = np.empty(shape, np.float32)
    if len(arrays) == 1:
        y[...] = arrays[0]
    else:
        np.add(arrays[0], arrays[1], out=y)
    for a in arrays[2:]:
        y += a
    return _activate(y, activation, alpha)


def concat(*xs, axis=-1):
    """Concatenate along ``axis`` (channels by default)."""
    return np.concatenate([checks.floats(a, "concat") for a in xs], axis=axis)


def resize_bilinear(x, *, size, half_pixel_centers=True, align_corners=False):
    """Bilinear resize of x (N, H, W, C) to (N, h, w, C) for size (h, w) (:mod:`nnlite.ops.resize_rules`): the
    compiled kernel's arithmetic, in its order, on whole rows at a time."""
    x = checks.nhwc(x, "resize_bilinear")
    oh, ow = pair(size, "resize_bilinear size")
    y0, y1, fy = bilinear_axis(x.shape[1], oh, half_pixel_centers, align_corners)
    x0, x1, fx = bilinear_axis(x.shape[2], ow, half_pixel_centers, align_corners)
    fx = fx[:, None]
    top, bottom = x[:, y0], x[:, y1]
    top = top[:, :, x0] + (top[:, :, x1] - top[:, :, x0]) * fx
    bottom = bottom[:, :, x0] + (bottom[:, :, x1] - bottom[:, :, x0]) * fx
    return top + (bottom - top) * fy[:, None, None]


KERNELS = {f.__name__: f for f in (
    relu, relu6, leaky_relu, sigmoid, swish, softmax, conv2d, depthwise_conv2d, separable_conv2d, dense,
    max_pool2d, avg_pool2d, global_avg_pool2d, zero_pad2d, crop2d, add, multiply, concat, mean, flatten, reshape,
    resize_bilinear, resize_nearest)}
