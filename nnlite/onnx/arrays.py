"""Generic array operations in plain NumPy, in the tensor's own axis order (framework-neutral).

The importer runs these where a tensor is not an NHWC image (shape arithmetic folded at load, a
classifier head after Flatten) and to fold constant sub-graphs at load. Attributes are explicit
keywords; every function keeps its input's dtype unless it says otherwise. Ops whose meaning is the same in
every framework (transpose, concat, cast, where) are :mod:`nnlite.ops.tensor`'s; those here carry ONNX's
own rules (Reshape's 0, negative Pad, negative Gather indices, size limits on Tile/Expand).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError
from ..ops.tensor import cast, concat, transpose, where  # noqa: F401  (ONNX lowers onto the same array ops)

MAX_FOLDED = 1 << 24  # elements; a constant built at load (ConstantOfShape, Expand, Range) stays below it


def _bounded(shape, op: str) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if any(s < 0 for s in shape) or math.prod(shape) > MAX_FOLDED:
        raise ShapeError(f"{op}: refusing to build a tensor of shape {shape}")
    return shape


def reshape(x, *, shape, allowzero=False):
    """ONNX Reshape: ``shape`` includes the batch axis; 0 copies the input's size (unless allowzero), -1 infers."""
    shape = [int(s) for s in shape]
    if not allowzero:
        shape = [x.shape[i] if s == 0 and i < x.ndim else s for i, s in enumerate(shape)]
    try:
        return np.reshape(x, shape)
    except ValueError:
        raise ShapeError(f"reshape: cannot reshape {x.shape} to {tuple(shape)}") from None


def flatten(x, *, axis=1):
    axis = axis + x.ndim if axis < 0 else axis
    return np.reshape(x, (math.prod(x.shape[:axis]), -1) if x.size else (math.prod(x.shape[:axis]),
                                                                        math.prod(x.shape[axis:])))


def squeeze(x, *, axes=None):
    return np.squeeze(x, axis=None if axes is None else tuple(int(a) for a in axes))


def unsqueeze(x, *, axes):
    out_rank = x.ndim + len(axes)
    axes = sorted(int(a) + out_rank if a < 0 else int(a) for a in axes)
    return np.expand_dims(x, tuple(axes))


def slice_(x, *, starts, ends, axes=None, steps=None):
    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = int(a) + x.ndim if a < 0 else int(a)
        n = x.shape[a]
        s, e, st = int(s), int(e), int(st)
        if st == 0:
            raise ShapeError("slice: step 0")
        s = max(min(s + n if s < 0 else s, n if st > 0 else n - 1), 0 if st > 0 else -1)
        e = max(min(e + n if e < 0 else e, n if st > 0 else n - 1), 0 if st > 0 else -1)
        index[a] = slice(s, None if e < 0 else e, st)
    return x[tuple(index)]


def gather(x, indices, *, axis=0):
    indices = np.asarray(indices)
    n = x.shape[axis]
    indices = np.where(indices < 0, indices + n, indices)
    return np.take(x, indices.astype(np.int64), axis=axis)


def split(x, *, axis, start, stop):
    index = [slice(None)] * x.ndim
    index[axis] = slice(start, stop)
    return x[tuple(index)]


def pad(x, *, pads, mode="constant", value=0.0):
    """``pads``: (before, after) per axis."""
    pads = [(int(a), int(b)) for a, b in pads]
    _bounded([max(n + a + b, 0) for n, (a, b) in zip(x.shape[1:], pads[1:])], "Pad")
    crop = tuple(slice(-min(a, 0), x.shape[i] + min(b, 0) if b < 0 else None) for i, (a, b) in enumerate(pads))
    x = x[crop]
    widths = [(max(a, 0), max(b, 0)) for a, b in pads]
    if mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=value)
    return np.pad(x, widths, mode={"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode])


def _int_div(a, b):
    q = np.floor_divide(a, b)
    return np.where((np.remainder(a, b) != 0) & ((a < 0) != (b < 0)), q + 1, q)  # truncate toward 0


BINARY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Pow": np.power, "Max": np.maximum,
          "Min": np.minimum, "Equal": np.equal, "Less": np.less, "Greater": np.greater, "And": np.logical_and,
          "Or": np.logical_or}


def binary(*xs, kind):
    if kind == "Div":
        a, b = xs
        if np.issubdtype(np.asarray(a).dtype, np.integer) and np.issubdtype(np.asarray(b).dtype, np.integer):
            return _int_div(a, b)
        return np.divide(a, b)
    out = xs[0]
    for b in xs[1:]:
        out = BINARY[kind](out, b)
    return out if kind != "Pow" else np.asarray(out, np.asarray(xs[0]).dtype)


def _erf(x):
    from math import erf
    return np.vectorize(erf, otypes=[np.float64])(x).astype(x.dtype)


UNARY = {"Neg": np.negative, "Abs": np.abs, "Exp": np.exp, "Log": np.log, "Sqrt": np.sqrt, "Tanh": np.tanh,
         "Floor": np.floor, "Ceil": np.ceil, "Reciprocal": np.reciprocal, "Not": np.logical_not, "Erf": _erf,
         "Relu": lambda x: np.maximum(x, 0).astype(x.dtype),
         "Sigmoid": lambda x: (1.0 / (1.0 + np.exp(-x))).astype(x.dtype),
         "Identity": lambda x: x}


def unary(x, *, kind):
    return UNARY[kind](x)


def clip(x, *, lo=None, hi=None):
    return np.clip(x, -np.inf if lo is None else lo, np.inf if hi is None else hi).astype(x.dtype)


def leaky_relu(x, *, alpha):
    return np.where(x >= 0, x, x * np.float32(alpha)).astype(x.dtype)


def prelu(x, slope):
    return np.where(x >= 0, x, x * slope).astype(x.dtype)


def hard_sigmoid(x, *, alpha=0.2, beta=0.5):
    return np.clip(x * np.float32(alpha) + np.float32(beta), 0, 1).astype(x.dtype)


def hard_swish(x):
    return (x * np.clip(x / np.float32(6) + np.float32(0.5), 0, 1)).astype(x.dtype)


def softmax(x, *, axis=-1, log=False):
    x = np.asarray(x)
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z.astype(np.float64))
    s = e.sum(axis=axis, keepdims=True)
    return (z - np.log(s) if log else e / s).astype(x.dtype)


def reduce(x, *, kind, axes=None, keepdims=True):
    axes = None if axes is None else tuple(int(a) for a in axes)
    if kind == "ReduceMean":
        return x.mean(axis=axes, keepdims=keepdims, dtype=np.float64).astype(x.dtype)
    fn = {"ReduceSum": np.sum, "ReduceMax": np.max, "ReduceMin": np.min, "ReduceProd": np.prod}[kind]
    return fn(x, axis=axes, keepdims=keepdims).astype(x.dtype)


def matmul(a, b):
    return np.matmul(a, b)


def gemm(a, b, c=None, *, alpha=1.0, beta=1.0, trans_a=False, trans_b=False):
    a = a.T if trans_a else a
    b = b.T if trans_b else b
    y = np.float32(alpha) * (a @ b) if alpha != 1.0 else a @ b
    return y if c is None else (y + np.float32(beta) * c).astype(y.dtype)


def batch_norm(x, scale, bias, mean, var, *, epsilon=1e-5, axis=1):
    """Inference batch norm over axis ``axis`` (1: ONNX's channels-first layout)."""
    shape = [1] * x.ndim
    shape[axis] = -1
    k = (scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + epsilon))
    b = bias.astype(np.float64) - mean.astype(np.float64) * k
    return (x * k.astype(x.dtype).reshape(shape) + b.astype(x.dtype).reshape(shape)).astype(x.dtype)


def constant_of_shape(shape, *, value):
    return np.full(_bounded(shape, "ConstantOfShape"), value)


def expand(x, shape):
    out = np.broadcast_shapes(x.shape, tuple(int(s) for s in shape))
    _bounded(out, "Expand")
    return np.broadcast_to(x, out).copy()


def tile(x, repeats):
    _bounded([a * int(r) for a, r in zip(x.shape, repeats)], "Tile")
    return np.tile(x, [int(r) for r in repeats])


def range_(start, limit, delta):
    n = max(int(math.ceil((float(limit) - float(start)) / float(delta))), 0) if float(delta) else 0
    _bounded([n], "Range")
    return (start + np.arange(n) * delta).astype(np.asarray(start).dtype)
