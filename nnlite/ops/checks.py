"""Input validation shared by the fast kernels and their reference twins.

Every check raises a typed :class:`~nnlite.errors.ShapeError` (or ModelError for a bad attribute) whose
message names the op and states what was expected and what was found, never a raw NumPy traceback.
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelError, ShapeError

ACTIVATION_NAMES = ("relu", "relu6", "leaky_relu", "sigmoid", "swish")


def floats(a, op: str, what: str = "input", min_ndim: int = 0) -> np.ndarray:
    """``a`` as a float32 array of at least ``min_ndim`` dimensions; ShapeError when it is not an array of
    numbers (a string, a ragged list) or has fewer dimensions."""
    try:
        a = np.asarray(a, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ShapeError(f"{op}: expected {what} as an array of numbers, found {type(a).__name__} ({exc})") from None
    if a.ndim < min_ndim:
        raise ShapeError(f"{op}: expected {what} with at least {min_ndim} dimension(s), found shape {a.shape}")
    return a


def axes(axis, ndim: int, op: str) -> None:
    """ModelError unless ``axis`` (an int or a sequence of ints) names axes of an ``ndim``-dimensional array."""
    for a in axis if isinstance(axis, (list, tuple)) else (axis,):
        if not isinstance(a, (int, np.integer)) or isinstance(a, bool) or not -ndim <= a < ndim:
            raise ModelError(f"{op}: axis {axis!r} is not an axis of a {ndim}-D input (expected ints from "
                             f"{-ndim} to {ndim - 1})")


def number(value, op: str, what: str) -> float:
    """``value`` as a float; ModelError when it is not a real number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ModelError(f"{op}: expected {what} to be a number, found {value!r}") from None


def nhwc(x, op: str) -> np.ndarray:
    """``x`` as a float32 (N, H, W, C) array, writable (a read-only one copied: the kernels are compiled for
    writable arrays, which Numba types apart); ShapeError if it is not 4-D."""
    x = floats(x, op)
    if x.ndim != 4:
        raise ShapeError(f"{op}: expected a 4-D NHWC input (N, H, W, C), found shape {x.shape}")
    return x if x.flags.writeable else x.copy()


def array(a, op: str, what: str, ndim: int | None = None) -> np.ndarray:
    """``a`` as float32, optionally with ``ndim`` dimensions."""
    if a is None:
        raise ShapeError(f"{op}: {what} is missing")
    a = floats(a, op, what)
    if ndim is not None and a.ndim != ndim:
        raise ShapeError(f"{op}: expected {what} with {ndim} dimensions, found shape {a.shape}")
    return a


def channels(op: str, what: str, expected: int, found: int) -> None:
    """ShapeError naming both channel counts when they differ."""
    if expected != found:
        raise ShapeError(f"{op}: {what} expects {expected} input channels, found {found} in the input")


def bias_vector(bias, n: int, op: str) -> np.ndarray | None:
    """``bias`` as a float32 (n,) vector, or None."""
    if bias is None:
        return None
    bias = floats(bias, op, "bias")
    if bias.shape != (n,):
        raise ShapeError(f"{op}: expected bias of shape ({n},), found {bias.shape}")
    return bias


def activation_name(activation, op: str) -> str | None:
    """Normalise an activation spec: None/"linear" -> None; unknown names are a ModelError."""
    if activation is None or activation == "linear":
        return None
    if activation not in ACTIVATION_NAMES:
        raise ModelError(f"{op}: unknown activation {activation!r}; expected None or one of {ACTIVATION_NAMES}")
    return activation


def vector(a, n: int, op: str, what: str, default: float | None = None) -> np.ndarray:
    """A per-channel (n,) float32 vector; None becomes ``default`` everywhere when a default is given."""
    if a is None:
        if default is None:
            raise ShapeError(f"{op}: {what} is missing")
        return np.full(n, default, dtype=np.float32)
    a = floats(a, op, what)
    if a.shape != (n,):
        raise ShapeError(f"{op}: expected {what} of shape ({n},), found {a.shape}")
    return a


def pool_padding(padding, kh: int, kw: int, op: str) -> None:
    """Explicit pooling padding must be smaller than the window, so no window holds only padding."""
    if isinstance(padding, str):
        return
    from .padding import four
    t, b, l, r = four(padding, f"{op} padding")
    if max(t, b) >= kh or max(l, r) >= kw:
        raise ShapeError(f"{op}: padding {(t, b, l, r)} must be smaller than the pool window {(kh, kw)}, "
                         "or some windows would hold only padding")
