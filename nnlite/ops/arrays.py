"""The shape layers that are NumPy calls alone: zero padding, cropping, multiply, mean, reshape, flatten.

Each is a single memory pass, which NumPy already makes at memory speed, so every engine runs them as they are
(the "numpy" engine of :mod:`nnlite.ops.numpy_engine` included, without loading Numba). multiply broadcasts
(a squeeze-excite gate (N, 1, 1, C) times (N, H, W, C)) into one output. add, whose same-shape sums are a
compiled kernel, is in :mod:`nnlite.ops.shape`; concat in :mod:`nnlite.ops.concatenate`.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from . import checks
from .padding import four


def zero_pad2d(x, *, padding=(1, 1, 1, 1)):
    """Zero rows/columns around H and W: padding (top, bottom, left, right)."""
    x = checks.nhwc(x, "zero_pad2d")
    t, b, l, r = four(padding, "zero_pad2d padding")
    n, h, w, c = x.shape
    y = np.zeros((n, h + t + b, w + l + r, c), np.float32)
    y[:, t:t + h, l:l + w] = x
    return y


def crop2d(x, *, cropping=(0, 0, 0, 0)):
    """Drop rows/columns from H and W: cropping (top, bottom, left, right). A contiguous copy of a slice
    (there is no faster form; the twin is :func:`nnlite.ops.reference.crop2d`)."""
    x = checks.nhwc(x, "crop2d")
    top, bottom, left, right = four(cropping, "crop2d cropping")
    keep_h, keep_w = x.shape[1] - top - bottom, x.shape[2] - left - right
    if keep_h <= 0 or keep_w <= 0:
        raise ShapeError(f"crop2d: cropping {(top, bottom, left, right)} leaves nothing of an input "
                         f"{x.shape[1]}x{x.shape[2]}")
    return np.ascontiguousarray(x[:, top:top + keep_h, left:left + keep_w, :])


def broadcast(xs, op: str):
    arrays = [checks.floats(a, op) for a in xs]
    if not arrays:
        raise ShapeError(f"{op}: expected at least one input, found none")
    try:
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        raise ShapeError(f"{op}: input shapes {[a.shape for a in arrays]} do not broadcast together") from None
    return arrays, shape


def multiply(*xs):
    """Elementwise product with broadcasting."""
    arrays, shape = broadcast(xs, "multiply")
    y = np.empty(shape, np.float32)
    y[...] = arrays[0]
    for a in arrays[1:]:
        np.multiply(y, a, out=y)
    return y


def mean(x, *, axis, keepdims=False):
    """Mean along ``axis`` (int or tuple), accumulated in float64."""
    axis = tuple(axis) if isinstance(axis, (list, tuple)) else axis
    x = checks.floats(x, "mean")
    checks.axes(axis, x.ndim, "mean")
    return x.mean(axis=axis, keepdims=keepdims, dtype=np.float64).astype(np.float32)


def reshape(x, *, shape):
    """Reshape each sample: ``shape`` excludes the batch axis."""
    x = checks.floats(x, "reshape", min_ndim=1)
    try:
        return x.reshape((x.shape[0], *shape))
    except (TypeError, ValueError):
        raise ShapeError(f"reshape: cannot reshape a sample of shape {x.shape[1:]} to {tuple(shape)}") from None


def flatten(x):
    """(N, ...) -> (N, prod(...)) in C order (H, W, C for NHWC, as Keras Flatten)."""
    x = checks.floats(x, "flatten", min_ndim=1)
    return x.reshape(x.shape[0], -1)


def prepare_flatten(x):
    """``flatten(x)`` for float32 inputs of ``x``'s shape as a function of the input alone (a reshaped view)."""
    if not (type(x) is np.ndarray and x.dtype == np.float32 and x.ndim >= 1):
        return None
    out_shape = x.reshape(x.shape[0], -1).shape

    def flattened(x):
        return x.reshape(out_shape)
    flattened.out_shape = out_shape
    return flattened
