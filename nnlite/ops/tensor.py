"""Array operations on whole tensors, for graphs imported from other frameworks.

The NHWC kernels of :mod:`nnlite.ops` assume a batch of float32 images; an imported graph also moves
shapes around (reshape, transpose, concat, slice, pad), computes with index vectors at run time and
broadcasts arbitrary ranks. These functions do that with NumPy's rules and no framework in mind:
tensors are positional, everything else is an explicit keyword attribute (``reshape(x, shape=(-1, 10))``),
and shapes include the batch axis. An importer maps its own ops onto them (TensorFlow ``ConcatV2`` ->
``concat(*xs, axis=...)``, ONNX ``Concat`` -> the same). Each one is a single NumPy call or close to it,
so it is its own reference.

Dtype rule for binary ops: when both operands have the same dtype the result keeps it, as in the
frameworks (NumPy's true division of two int32 tensors would give float64).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence

import numpy as np

from ..errors import ShapeError


def _keep_dtype(y, a, b):
    y = np.asarray(y)
    a, b = np.asarray(a), np.asarray(b)
    if y.dtype != a.dtype and a.dtype == b.dtype:
        return y.astype(a.dtype)
    return y


def _binary(fn, name: str, doc: str):
    def op(a, b):
        return _keep_dtype(fn(a, b), a, b)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    return op


# name -> (NumPy function, what it computes); each becomes a module-level function ``name(a, b)``.
_BINARY = {
    "add": (np.add, "a + b"), "subtract": (np.subtract, "a - b"), "multiply": (np.multiply, "a * b"),
    "divide": (np.true_divide, "a / b (true division)"), "floor_divide": (np.floor_divide, "floor(a / b)"),
    "floor_mod": (np.mod, "a - floor(a / b) * b (the sign of b)"), "maximum": (np.maximum, "max(a, b)"),
    "minimum": (np.minimum, "min(a, b)"), "power": (np.power, "a ** b"),
    "squared_difference": (lambda a, b: np.square(a - b), "(a - b) ** 2"), "greater": (np.greater, "a > b"),
    "greater_equal": (np.greater_equal, "a >= b"), "less": (np.less, "a < b"), "less_equal": (np.less_equal, "a <= b"),
    "equal": (np.equal, "a == b"), "not_equal": (np.not_equal, "a != b"),
    "logical_and": (np.logical_and, "a and b"), "logical_or": (np.logical_or, "a or b"),
}
for _name, (_fn, _what) in _BINARY.items():
    globals()[_name] = _binary(_fn, _name, f"{_what}, elementwise with broadcasting.")


# Unary maps: NumPy's own functions (each keeps its input's float dtype).
tanh, exp, log, sqrt, square, reciprocal, floor = np.tanh, np.exp, np.log, np.sqrt, np.square, np.reciprocal, np.floor
negative, abs, logical_not = np.negative, np.abs, np.logical_not  # noqa: A001  (the framework-neutral names)


def where(cond, a, b):
    """a where cond is true, else b, broadcasting all three."""
    return np.where(cond, a, b)


def add_n(*xs):
    """The sum of same-shaped tensors, in their dtype."""
    return np.sum(np.stack(xs), axis=0).astype(xs[0].dtype)


def rsqrt(x):
    """1 / sqrt(x), in x's dtype."""
    return (1.0 / np.sqrt(x)).astype(x.dtype)


def elu(x):
    """x for x > 0, exp(x) - 1 otherwise."""
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0))).astype(x.dtype)


def softplus(x):
    """log(1 + exp(x)), without overflow."""
    return np.logaddexp(x, 0).astype(x.dtype)


def reshape(x, *, shape: Sequence[int]):
    """``x`` with the whole shape ``shape`` (batch axis included; one entry may be -1)."""
    shape = tuple(int(s) for s in shape)
    try:
        return np.reshape(x, shape)
    except ValueError:
        raise ShapeError(f"reshape: cannot reshape {np.shape(x)} to {shape}") from None


def transpose(x, *, perm: Sequence[int]):
    """Axes permuted: output axis i is input axis perm[i] (a contiguous copy)."""
    return np.ascontiguousarray(np.transpose(x, tuple(int(p) for p in perm)))


def concat(*xs, axis: int):
    """Concatenation along ``axis``, in the inputs' dtype."""
    try:
        return np.concatenate(xs, axis=int(axis))
    except ValueError:
        raise ShapeError(f"concat: shapes {[np.shape(a) for a in xs]} differ outside axis {axis}") from None


def stack(*xs, axis: int = 0):
    """Same-shaped tensors stacked along a new axis."""
    return np.stack(xs, axis=int(axis))


def unstack(x, *, axis: int = 0) -> tuple:
    """The slices of ``x`` along ``axis`` (one output each)."""
    return tuple(np.moveaxis(x, int(axis), 0))


def split(x, *, sizes: Sequence[int], axis: int) -> tuple:
    """Consecutive pieces of ``x`` along ``axis`` with the given sizes."""
    return tuple(np.split(x, np.cumsum([int(s) for s in sizes])[:-1], axis=int(axis)))


def pad(x, *, paddings: Sequence[Sequence[int]], mode: str = "constant", value=0):
    """``paddings[i] = (before, after)`` for axis i; mode "constant" (``value``), "reflect" (edge not
    repeated) or "symmetric" (edge repeated)."""
    pads = [(int(a), int(b)) for a, b in paddings]
    if mode == "constant":
        return np.pad(x, pads, mode="constant", constant_values=value)
    return np.pad(x, pads, mode=mode)


def slice(x, *, begin: Sequence[int], size: Sequence[int]):  # noqa: A001  (the framework-neutral name)
    """``x[begin[i] : begin[i] + size[i]]`` on every axis; size -1 takes the rest."""
    idx = tuple(builtins.slice(int(b), None if int(s) < 0 else int(b) + int(s)) for b, s in zip(begin, size))
    return x[idx]


def squeeze(x, *, axis: Sequence[int] | None = None):
    """Size-1 axes removed (only those in ``axis`` when given)."""
    return np.squeeze(x, axis=tuple(int(a) for a in axis)) if axis else np.squeeze(x)


def expand_dims(x, *, axis: int):
    """A size-1 axis inserted at ``axis``."""
    return np.expand_dims(x, int(axis))


def tile(x, *, reps: Sequence[int]):
    """``x`` repeated ``reps[i]`` times along axis i."""
    return np.tile(x, tuple(int(r) for r in reps))


def cast(x, *, dtype):
    """``x`` converted to ``dtype`` (a NumPy dtype)."""
    return np.asarray(x).astype(dtype)


def shape(x, *, dtype=np.int32):
    """The shape of ``x`` as a 1-d integer tensor."""
    return np.array(np.shape(x), dtype)


def gather(x, *, indices, axis: int = 0):
    """Entries of ``x`` at ``indices`` along ``axis``."""
    return np.take(x, indices, axis=int(axis))


def mean(x, *, axis, keepdims: bool = False):
    """Mean over ``axis`` (int or tuple); float32 accumulates in float64 and returns float32."""
    axis = tuple(int(a) for a in np.ravel(axis))
    if x.dtype == np.float32:
        return x.mean(axis=axis, keepdims=keepdims, dtype=np.float64).astype(np.float32)
    return np.asarray(x.mean(axis=axis, keepdims=keepdims)).astype(x.dtype)


def _reduction(fn, name: str):
    def op(x, *, axis, keepdims: bool = False):
        return np.asarray(fn(x, axis=tuple(int(a) for a in np.ravel(axis)), keepdims=keepdims)).astype(x.dtype)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"{name.split('_')[1].capitalize()} over ``axis`` (int or tuple), in x's dtype."
    return op


reduce_sum = _reduction(np.sum, "reduce_sum")
reduce_max = _reduction(np.max, "reduce_max")
reduce_min = _reduction(np.min, "reduce_min")
reduce_prod = _reduction(np.prod, "reduce_prod")
reduce_all = _reduction(np.all, "reduce_all")
reduce_any = _reduction(np.any, "reduce_any")


def argmax(x, *, axis: int, dtype=np.int64):
    """Index of the largest entry along ``axis``."""
    return np.argmax(x, axis=int(axis)).astype(dtype)


def argmin(x, *, axis: int, dtype=np.int64):
    """Index of the smallest entry along ``axis``."""
    return np.argmin(x, axis=int(axis)).astype(dtype)
