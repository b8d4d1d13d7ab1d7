"""Fast shape and elementwise ops: zero padding, cropping, add, multiply, mean, reshape, flatten
(concat: :mod:`nnlite.ops.concatenate`).

Plain float32 NumPy: each is a single memory pass, which NumPy already does at memory speed. add and
multiply broadcast (e.g. a squeeze-excite gate (N, 1, 1, C) times (N, H, W, C)) and write into one output.
add of same-shape float32 inputs (residual and dense-block sums) is a Numba kernel instead: on every
thread, up to four inputs in one pass, with the activation applied in the same pass as the last sum.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from . import activations, bound, buffers, checks, drivers, parallel, prepack
from .jit import kernel
from .padding import four

_F32 = np.dtype(np.float32)


def _plain(a) -> bool:
    return type(a) is np.ndarray and a.dtype is _F32 and a.flags.c_contiguous and a.ndim > 0


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


def _broadcast(xs, op: str):
    arrays = [checks.floats(a, op) for a in xs]
    if not arrays:
        raise ShapeError(f"{op}: expected at least one input, found none")
    try:
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        raise ShapeError(f"{op}: input shapes {[a.shape for a in arrays]} do not broadcast together") from None
    return arrays, shape


@kernel
def _add_into(y, a, b, c, d, more, code, alpha, sum_at, into_at, start, stop):
    # y[i] = act(((a[i] + b[i]) + c[i]) + d[i]) for i in [start, stop) (flat arrays; a may be y itself), c and d
    # only when ``more`` is 1 or 2 (else they are not read: pass any array), 4096 values at a time: each loop
    # vectorises, and the block is still in L1 for the next, so up to four inputs cost one pass over memory; the
    # activation is applied in the last sum's loop (nnlite.ops.activations.act_sum, act_sum_into, called at
    # the bound.address sum_at (when more is 0, else unused) and into_at (when more is not 0): not linked in, so
    # each is compiled once, and only where a model needs it)
    for s0 in range(start, stop, 4096):
        s1 = min(stop, s0 + 4096)
        block = y[s0:s1]
        ab, bb = a[s0:s1], b[s0:s1]
        if more == 0:
            bound.call(sum_at, "act_sum", (block, ab, bb, code, alpha))
            continue
        for i in range(s1 - s0):
            block[i] = ab[i] + bb[i]
        last = c[s0:s1] if more == 1 else d[s0:s1]
        if more == 2:
            cb = c[s0:s1]
            for i in range(s1 - s0):
                block[i] += cb[i]
        bound.call(into_at, "act_sum_into", (block, last, code, alpha))  # last + block: a + b is b + a


_add_into_parallel = drivers.driver(_add_into)


def _same_shape_add(arrays, code: int, alpha: float) -> np.ndarray:
    """Sum of same-shape C-contiguous float32 arrays, left to right, activation on the last step: one pass per
    four inputs (a residual or dense-block add, and its relu, in one kernel), on Numba's threads."""
    y = buffers.empty(arrays[0].shape)
    flat = y.reshape(-1)
    size = flat.shape[0]
    pieces = parallel.parts(size, size * len(arrays) // 2)
    flats = [prepack.as_writable(a).reshape(-1) for a in arrays]  # read-only: the type the sums are compiled for
    acc, rest = flats[0], flats[1:]
    while rest:  # the first pass takes up to 3 inputs after the first; each later one 3 more onto y
        group, rest = rest[:3], rest[3:]
        more = len(group) - 1
        b, c, d = group[0], group[min(1, more)], group[more]
        sum_at = bound.address("act_sum") if more == 0 else 0
        into_at = bound.address("act_sum_into") if more else 0
        args = (flat, acc, b, c, d, more, code if not rest else 0, np.float32(alpha), sum_at, into_at)
        if pieces == 1:
            _add_into(*args, 0, size)
        else:
            parallel.launch(_add_into_parallel, *args, size, pieces)
        acc = flat
    return y


def add(*xs, activation=None, alpha=0.2):
    """Elementwise sum with broadcasting, then ``activation`` in place (a residual add + relu in one call)."""
    code = activations.code_of(activation, "add")
    if len(xs) >= 2 and all(_plain(a) and a.shape == xs[0].shape for a in xs):
        return _same_shape_add(xs, code, alpha)
    arrays, shape = _broadcast(xs, "add")
    y = np.empty(shape, np.float32)
    if len(arrays) == 1:
        y[...] = arrays[0]
    else:  # the first sum written straight into y: one memory pass fewer than copying arrays[0] first
        np.add(arrays[0], arrays[1], out=y)
    for a in arrays[2:]:
        np.add(y, a, out=y)
    if code:
        activations.bias_act_(y if y.ndim else y.reshape(1), None, code, alpha)  # 0-d: a (1,) view of y
    return y


def prepare_add(*xs, activation=None, alpha=0.2):
    """``add(*xs, ...)`` for inputs of these shapes as a function of the inputs alone (``.out_shape``: the
    output's shape): same-shape C-contiguous float32 inputs and a known activation, else None."""
    if not (activation is None or (isinstance(activation, str) and (activation == "linear"
                                                                     or activation in activations.CODES))):
        return None  # add() raises nnlite's error for it
    if len(xs) < 2 or not all(_plain(a) and a.shape == xs[0].shape for a in xs):
        return None
    code = activations.code_of(activation, "add")

    def summed(*arrays):
        return _same_shape_add(arrays, code, alpha)
    summed.out_shape = xs[0].shape
    return summed


def multiply(*xs):
    """Elementwise product with broadcasting."""
    arrays, shape = _broadcast(xs, "multiply")
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
