"""Naive NumPy twins of every kernel in :mod:`nnlite.ops`: same names, same signatures, obviously correct.

They loop over kernel taps and accumulate in float64, so they are slow but easy to check by eye; the fast
kernels are tested against them (``tests/test_ops.py``) and both are checked against TensorFlow
(``parity_tests/test_ops_tf.py``). Layout everywhere is NHWC float32: x is (N, H, W, C).

Rules implemented (see :mod:`nnlite.ops.padding` for the padding arithmetic):

* ``padding="same"`` is TensorFlow's: ``total = max((ceil(in/s)-1)*s + (k-1)*d + 1 - in, 0)``,
  ``before = total // 2``; the extra row/column goes bottom/right.
* Average pooling divides by the number of real (unpadded) inputs under the window (TF 'same' rule).
* Bilinear resize: ``half_pixel_centers=True`` maps output pixel i to source ``(i + 0.5) * scale - 0.5``
  (TF2 ``tf.image.resize``); ``False`` maps it to ``i * scale`` (legacy TF1 / tfjs ``resizeBilinear``);
  ``align_corners=True`` uses ``scale = (in - 1) / (out - 1)``, else ``in / out``. Coordinates are computed
  in float32, as TF does, so index choices match it exactly.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError
from . import checks
from .padding import four, pair, resolve_padding_2d

# ---------------------------------------------------------------- activations


def _activate(y: np.ndarray, activation, alpha: float) -> np.ndarray:
    name = checks.activation_name(activation, "activation")
    if name is None:
        return y
    return {"relu": relu, "relu6": relu6, "sigmoid": sigmoid, "swish": swish,
            "leaky_relu": lambda v: leaky_relu(v, alpha=alpha)}[name](y)


def relu(x):
    """max(x, 0)."""
    return np.maximum(np.asarray(x, np.float32), 0).astype(np.float32)


def relu6(x):
    """min(max(x, 0), 6)."""
    return np.clip(np.asarray(x, np.float32), 0, 6).astype(np.float32)


def leaky_relu(x, *, alpha=0.2):
    """x if x >= 0 else alpha * x (TF's default alpha is 0.2)."""
    x = np.asarray(x, np.float64)
    return np.where(x >= 0, x, alpha * x).astype(np.float32)


def sigmoid(x):
    """1 / (1 + exp(-x)), computed in float64."""
    x = np.asarray(x, np.float64)
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def swish(x):
    """x * sigmoid(x) (also called SiLU)."""
    x = np.asarray(x, np.float64)
    with np.errstate(over="ignore"):
        return (x / (1.0 + np.exp(-x))).astype(np.float32)


def softmax(x, *, axis=-1):
    """exp(x - max) / sum(exp(x - max)) along ``axis`` (max subtracted for stability)."""
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


# ---------------------------------------------------------------- convolutions


def _pad(x: np.ndarray, t: int, b: int, l: int, r: int, value: float = 0.0) -> np.ndarray:
    return np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)), constant_values=value)


def _taps(xp, kh, kw, stride, dilation, oh, ow):
    """Yield (i, j, window) where window[n, y, x, c] = xp[n, y*sh + i*dh, x*sw + j*dw, c] (oh, ow)."""
    (sh, sw), (dh, dw) = pair(stride, "stride"), pair(dilation, "dilation")
    for i in range(kh):
        for j in range(kw):
            y0, x0 = i * dh, j * dw
            yield i, j, xp[:, y0:y0 + (oh - 1) * sh + 1:sh, x0:x0 + (ow - 1) * sw + 1:sw, :]


def conv2d(x, kernel, bias=None, *, stride=1, padding="valid", dilation=1, activation=None, alpha=0.2):
    """2-D convolution (cross-correlation, as TF). kernel (kh, kw, cin, cout) -> (N, oh, ow, cout)."""
    x = checks.nhwc(x, "conv2d")
    kernel = checks.array(kernel, "conv2d", "kernel (kh, kw, cin, cout)", 4)
    kh, kw, cin, cout = kernel.shape
    checks.channels("conv2d", f"kernel of shape {kernel.shape}", cin, x.shape[3])
    bias = checks.bias_vector(bias, cout, "conv2d")
    (t, b, oh), (l, r, ow) = resolve_padding_2d(x.shape[1], x.shape[2], kh, kw, stride, dilation, padding)
    xp = _pad(x.astype(np.float64), t, b, l, r)
    y = np.zeros((x.shape[0], oh, ow, cout))
    for i, j, win in _taps(xp, kh, kw, stride, dilation, oh, ow):
        y += win @ kernel[i, j].astype(np.float64)  # (N, oh, ow, cin) @ (cin, cout)
    if bias is not None:
        y += bias
    return _activate(y.astype(np.float32), activation, alpha)


def depthwise_conv2d(x, kernel, bias=None, *, stride=1, padding="valid", dilation=1, activation=None, alpha=0.2):
    """Depthwise convolution. kernel (kh, kw, cin, mult) -> (N, oh, ow, cin*mult); channel c*mult + m (TF)."""
    x = checks.nhwc(x, "depthwise_conv2d")
    kernel = checks.array(kernel, "depthwise_conv2d", "kernel (kh, kw, cin, mult)", 4)
    kh, kw, cin, mult = kernel.shape
    checks.channels("depthwise_conv2d", f"kernel of shape {kernel.shape}", cin, x.shape[3])
    bias = checks.bias_vector(bias, cin * mult, "depthwise_conv2d")
    (t, b, oh), (l, r, ow) = resolve_padding_2d(x.shape[1], x.shape[2], kh, kw, stride, dilation, padding)
    xp = _pad(x.astype(np.float64), t, b, l, r)
    y = np.zeros((x.shape[0], oh, ow, cin, mult))
    for i, j, win in _taps(xp, kh, kw, stride, dilation, oh, ow):
        y += win[..., None] * kernel[i, j].astype(np.float64)  # (N, oh, ow, cin, 1) * (cin, mult)
    y = y.reshape(x.shape[0], oh, ow, cin * mult)
    if bias is not None:
        y += bias
    return _activate(y.astype(np.float32), activation, alpha)


def separable_conv2d(x, depthwise_kernel, pointwise_kernel, bias=None, *, stride=1, padding="valid", dilation=1,
                     activation=None, alpha=0.2):
    """Depthwise (kh, kw, cin, mult) then pointwise (1, 1, cin*mult, cout) conv; bias/activation at the end."""
    pointwise_kernel = checks.array(pointwise_kernel, "separable_conv2d", "pointwise kernel (1, 1, cin*mult, cout)", 4)
    mid = depthwise_conv2d(x, depthwise_kernel, stride=stride, padding=padding, dilation=dilation)
    return conv2d(mid, pointwise_kernel, bias, activation=activation, alpha=alpha)


def depthwise_pointwise(x, depthwise_kernel, depthwise_bias, pointwise_kernel, pointwise_bias, *, stride=1,
                        padding="valid", dilation=1, depthwise_activation=None, activation=None, alpha=0.2,
                        depthwise_alpha=0.2):
    """The fused depthwise -> 1x1 conv pair, as the two twins one after the other."""
    mid = depthwise_conv2d(x, depthwise_kernel, depthwise_bias, stride=stride, padding=padding, dilation=dilation,
                           activation=depthwise_activation, alpha=depthwise_alpha)
    return conv2d(mid, pointwise_kernel, pointwise_bias, activation=activation, alpha=alpha)


def inverted_residual(x, expand_kernel, expand_bias, depthwise_kernel, depthwise_bias, pointwise_kernel,
                      pointwise_bias, *, stride=1, padding="valid", dilation=1, expand_activation=None,
                      depthwise_activation=None, activation=None, expand_alpha=0.2, depthwise_alpha=0.2, alpha=0.2,
                      residual=None):
    """The fused 1x1 expand -> depthwise -> 1x1 project block, as the three twins one after the other, then
    ``add(residual, y)`` when a residual is given."""
    wide = conv2d(x, expand_kernel, expand_bias, activation=expand_activation, alpha=expand_alpha)
    y = depthwise_pointwise(wide, depthwise_kernel, depthwise_bias, pointwise_kernel, pointwise_bias,
                            stride=stride, padding=padding, dilation=dilation,
                            depthwise_activation=depthwise_activation, depthwise_alpha=depthwise_alpha,
                            activation=activation, alpha=alpha)
    return y if residual is None else add(residual, y)


def conv2d_max_pool(x, kernel, bias=None, *, stride=1, padding="valid", dilation=1, activation=None, alpha=0.2,
                    pool_size=2, pool_stride=None, pool_padding="valid"):
    """The fused conv -> max pool pair, as the two twins one after the other."""
    y = conv2d(x, kernel, bias, stride=stride, padding=padding, dilation=dilation, activation=activation,
               alpha=alpha)
    return max_pool2d(y, pool_size=pool_size, stride=pool_stride, padding=pool_padding)


def separable_max_pool(x, depthwise_kernel, pointwise_kernel, bias=None, *, stride=1, padding="valid", dilation=1,
                       activation=None, alpha=0.2, pool_size=2, pool_stride=None, pool_padding="valid"):
    """The fused separable conv -> max pool pair, as the two twins one after the other."""
    y = separable_conv2d(x, depthwise_kernel, pointwise_kernel, bias, stride=stride, padding=padding,
                         dilation=dilation, activation=activation, alpha=alpha)
    return max_pool2d(y, pool_size=pool_size, stride=pool_stride, padding=pool_padding)


def dense(x, kernel, bias=None, *, activation=None, alpha=0.2):
    """x @ kernel + bias on the last axis. kernel (in, out)."""
    x = np.asarray(x, np.float32)
    kernel = checks.array(kernel, "dense", "kernel (in, out)", 2)
    checks.channels("dense", f"kernel of shape {kernel.shape}", kernel.shape[0], x.shape[-1])
    bias = checks.bias_vector(bias, kernel.shape[1], "dense")
    y = x.astype(np.float64) @ kernel.astype(np.float64)
    if bias is not None:
        y += bias
    return _activate(y.astype(np.float32), activation, alpha)


def bias_add(x, bias):
    """x + bias on the last axis."""
    x = np.asarray(x, np.float32)
    return (x + checks.bias_vector(bias, x.shape[-1], "bias_add")).astype(np.float32)


def batch_norm(x, gamma, beta, mean, variance, *, epsilon=1e-3):
    """Inference batch norm on the last axis: (x - mean) / sqrt(variance + epsilon) * gamma + beta.

    gamma None means 1, beta None means 0 (Keras ``scale=False`` / ``center=False``).
    """
    x = np.asarray(x, np.float64)
    c = x.shape[-1]
    g = checks.vector(gamma, c, "batch_norm", "gamma", 1.0).astype(np.float64)
    bt = checks.vector(beta, c, "batch_norm", "beta", 0.0).astype(np.float64)
    m = checks.vector(mean, c, "batch_norm", "mean").astype(np.float64)
    v = checks.vector(variance, c, "batch_norm", "variance").astype(np.float64)
    return ((x - m) / np.sqrt(v + epsilon) * g + bt).astype(np.float32)


def fold_batch_norm(kernel, bias, gamma, beta, mean, variance, *, epsilon, depthwise=False):
    """Fold inference batch norm into the preceding conv/dense: returns (kernel', bias').

    scale = gamma / sqrt(variance + epsilon) per output channel; kernel' = kernel * scale on the output axis
    (for a depthwise kernel (kh, kw, cin, mult) output channel c*mult + m); bias' = (bias - mean) * scale + beta.
    """
    kernel = np.asarray(kernel, np.float64)
    cout = kernel.shape[-2] * kernel.shape[-1] if depthwise else kernel.shape[-1]
    stat = {name: checks.vector(value, cout, "fold_batch_norm", name, default).astype(np.float64)
            for name, value, default in [("gamma", gamma, 1.0), ("beta", beta, 0.0), ("mean", mean, None),
                                         ("variance", variance, None), ("bias", bias, 0.0)]}
    scale = stat["gamma"] / np.sqrt(stat["variance"] + epsilon)
    k = kernel * (scale.reshape(kernel.shape[-2:]) if depthwise else scale)
    return k.astype(np.float32), ((stat["bias"] - stat["mean"]) * scale + stat["beta"]).astype(np.float32)


# ---------------------------------------------------------------- pooling


def _pool_geometry(x, pool_size, stride, padding, op):
    x = checks.nhwc(x, op)
    kh, kw = pair(pool_size, "pool_size")
    stride = (kh, kw) if stride is None else pair(stride, "stride")
    checks.pool_padding(padding, kh, kw, op)
    geo = resolve_padding_2d(x.shape[1], x.shape[2], kh, kw, stride, 1, padding)
    return x, kh, kw, stride, geo


def max_pool2d(x, *, pool_size, stride=None, padding="valid"):
    """Max over each window; padded cells never win (padded with -inf). stride None means pool_size."""
    x, kh, kw, stride, ((t, b, oh), (l, r, ow)) = _pool_geometry(x, pool_size, stride, padding, "max_pool2d")
    xp = _pad(x, t, b, l, r, -np.inf)
    y = np.full((x.shape[0], oh, ow, x.shape[3]), -np.inf, np.float32)
    for _, _, win in _taps(xp, kh, kw, stride, 1, oh, ow):
        y = np.maximum(y, win)
    return y


def avg_pool2d(x, *, pool_size, stride=None, padding="valid"):
    """Mean over each window, dividing by the count of real (unpadded) inputs under it (TF 'same' rule)."""
    x, kh, kw, stride, ((t, b, oh), (l, r, ow)) = _pool_geometry(x, pool_size, stride, padding, "avg_pool2d")
    xp = _pad(x.astype(np.float64), t, b, l, r)
    ones = _pad(np.ones((1,) + x.shape[1:3] + (1,)), t, b, l, r)
    total = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    count = np.zeros((1, oh, ow, 1))
    for (_, _, win), (_, _, one) in zip(_taps(xp, kh, kw, stride, 1, oh, ow), _taps(ones, kh, kw, stride, 1, oh, ow)):
        total += win
        count += one
    return (total / count).astype(np.float32)


def global_avg_pool2d(x, *, keepdims=False):
    """Mean over H and W: (N, C), or (N, 1, 1, C) with keepdims."""
    x = checks.nhwc(x, "global_avg_pool2d")
    return x.astype(np.float64).mean(axis=(1, 2), keepdims=keepdims).astype(np.float32)


# ---------------------------------------------------------------- shape ops


def zero_pad2d(x, *, padding=(1, 1, 1, 1)):
    """Zero rows/columns around H and W: padding (top, bottom, left, right)."""
    x = checks.nhwc(x, "zero_pad2d")
    return _pad(x, *four(padding, "zero_pad2d padding"))


def crop2d(x, *, cropping=(0, 0, 0, 0)):
    """Drop rows/columns from H and W: cropping (top, bottom, left, right)."""
    x = checks.nhwc(x, "crop2d")
    t, b, l, r = four(cropping, "crop2d cropping")
    h, w = x.shape[1:3]
    if t + b >= h or l + r >= w:
        raise ShapeError(f"crop2d: cropping {(t, b, l, r)} leaves nothing of an input {h}x{w}")
    return np.ascontiguousarray(x[:, t:h - b, l:w - r, :])


def add(*xs, activation=None, alpha=0.2):
    """Elementwise sum (NumPy broadcasting), then ``activation``."""
    return _activate(np.asarray(sum(np.asarray(a, np.float64) for a in xs), np.float32), activation, alpha)


def multiply(*xs):
    """Elementwise product (NumPy broadcasting, e.g. squeeze-excite (N, 1, 1, C) * (N, H, W, C))."""
    y = np.ones((), np.float64)
    for a in xs:
        y = y * np.asarray(a, np.float64)
    return y.astype(np.float32)


def concat(*xs, axis=-1):
    """Concatenate along ``axis`` (channels by default)."""
    return np.concatenate([np.asarray(a, np.float32) for a in xs], axis=axis)


def mean(x, *, axis, keepdims=False):
    """Mean along ``axis`` (int or tuple)."""
    axis = tuple(axis) if isinstance(axis, (list, tuple)) else axis
    return np.asarray(x, np.float64).mean(axis=axis, keepdims=keepdims).astype(np.float32)


def reshape(x, *, shape):
    """Reshape each sample: shape excludes the batch axis."""
    x = np.asarray(x, np.float32)
    return x.reshape((x.shape[0], *shape))


def flatten(x):
    """(N, ...) -> (N, prod(...)) in C order (H, W, C for NHWC, as Keras Flatten)."""
    x = np.asarray(x, np.float32)
    return x.reshape(x.shape[0], -1)


# ---------------------------------------------------------------- resize


def _scale(in_size: int, out_size: int, align_corners: bool) -> np.float32:
    if align_corners and out_size > 1:
        return np.float32((in_size - 1) / np.float32(out_size - 1))
    return np.float32(in_size / np.float32(out_size))


def _source(i: int, scale: np.float32, half_pixel_centers: bool, offset: float) -> np.float32:
    """Source coordinate of output index i, in float32 as TF computes it."""
    if half_pixel_centers:
        return np.float32((np.float32(i) + np.float32(0.5)) * scale - np.float32(offset))
    return np.float32(np.float32(i) * scale)


def _resize_args(x, size, op):
    x = checks.nhwc(x, op)
    oh, ow = pair(size, f"{op} size")
    return x, oh, ow


def resize_bilinear(x, *, size, half_pixel_centers=True, align_corners=False):
    """Bilinear resize to size (h, w); see the module docstring for the half-pixel / legacy rules."""
    x, oh, ow = _resize_args(x, size, "resize_bilinear")
    axes = []
    for n_in, n_out in ((x.shape[1], oh), (x.shape[2], ow)):
        s = _scale(n_in, n_out, align_corners)
        lo, hi, frac = [], [], []
        for i in range(n_out):
            src = _source(i, s, half_pixel_centers, 0.5)
            f = np.floor(src)
            lo.append(max(int(f), 0))
            hi.append(min(int(np.ceil(src)), n_in - 1))
            frac.append(np.float32(src - f))
        axes.append((np.array(lo), np.array(hi), np.array(frac, np.float32)))
    (y0, y1, fy), (x0, x1, fx) = axes
    fx = fx[None, None, :, None]
    top = x[:, y0][:, :, x0] + (x[:, y0][:, :, x1] - x[:, y0][:, :, x0]) * fx
    bottom = x[:, y1][:, :, x0] + (x[:, y1][:, :, x1] - x[:, y1][:, :, x0]) * fx
    return (top + (bottom - top) * fy[None, :, None, None]).astype(np.float32)


def resize_nearest(x, *, size, half_pixel_centers=True, align_corners=False):
    """Nearest-neighbour resize (TF rule): source index floor(src) (round(src) with align_corners), clamped.

    With half_pixel_centers the source coordinate is (i + 0.5) * scale (no -0.5, so floor picks the nearest).
    """
    x, oh, ow = _resize_args(x, size, "resize_nearest")
    idx = []
    for n_in, n_out in ((x.shape[1], oh), (x.shape[2], ow)):
        s = _scale(n_in, n_out, align_corners)
        picks = []
        for i in range(n_out):
            src = _source(i, s, half_pixel_centers, 0.0)
            # TF uses roundf (halves away from zero) with align_corners, floorf otherwise
            k = math.floor(float(src) + 0.5) if align_corners else math.floor(float(src))
            picks.append(max(min(k, n_in - 1), 0))
        idx.append(np.array(picks))
    return np.ascontiguousarray(x[:, idx[0]][:, :, idx[1]])
