"""Activations, standalone and fused into the kernel that produces their input.

Each Numba kernel takes an integer activation ``code`` (see :data:`CODES`) and calls :func:`act`, so bias,
batch-norm affine and activation are applied in the same pass that writes the output (one memory pass
instead of three). Rules: relu6 = min(max(x, 0), 6); leaky_relu = x if x >= 0 else alpha*x (TF default alpha
0.2); sigmoid = 1 / (1 + exp(-x)); swish = x * sigmoid(x); softmax subtracts the max first (stable).
fastmath stays off so results match TensorFlow to float32 rounding.

Kernels in other modules hold a copy of :func:`act` in their compiled code: an edit of this file compiles
them again (:func:`nnlite.ops.jit.sources_stamp`).
"""

from __future__ import annotations

import numpy as np
from numba import types

from . import bound, checks, drivers, parallel
from .jit import helper, kernel
from .simd import vadd, vload, vload_n, vselect_gt, vstore, vstore_n, vzero

# Activation codes, as the Numba kernels take them (compile-time constants inside the kernels).
LINEAR, RELU, RELU6, LEAKY_RELU, SIGMOID, SWISH = range(6)
CODES = {None: LINEAR, "relu": RELU, "relu6": RELU6, "leaky_relu": LEAKY_RELU, "sigmoid": SIGMOID, "swish": SWISH}
LAST_REGISTER_CODE = LEAKY_RELU  # codes up to this one are applied in vector registers; sigmoid/swish (exp) after


def code_of(activation, op: str) -> int:
    """Integer code of an activation spec (None/"linear" -> 0); unknown names raise ModelError."""
    return CODES[checks.activation_name(activation, op)]


@helper
def act(v, code, alpha):
    """Activation ``code`` applied to one float32 value (0 = identity)."""
    if code == LINEAR:
        return v
    if code == RELU:
        return v if v > 0 else np.float32(0)
    if code == RELU6:
        return min(max(v, np.float32(0)), np.float32(6))
    if code == LEAKY_RELU:
        return v if v >= 0 else alpha * v
    s = np.float32(1) / (np.float32(1) + np.exp(-v))
    return s if code == SIGMOID else v * s


@helper
def act_row(row, code, alpha):
    """In place: activation ``code`` on a 1-D float32 row. One loop per code, so each one vectorises."""
    n = row.shape[0]
    if code == RELU:
        for j in range(n):
            row[j] = max(row[j], np.float32(0))
    elif code == RELU6:
        for j in range(n):
            row[j] = min(max(row[j], np.float32(0)), np.float32(6))
    elif code == LEAKY_RELU:
        for j in range(n):
            row[j] = row[j] if row[j] >= 0 else alpha * row[j]
    elif code == SIGMOID or code == SWISH:
        for j in range(n):
            row[j] = act(row[j], code, alpha)


@helper
def act_copy(dst, src, code, alpha):
    """dst[i] = act(src[i]) (1-D float32 arrays of one length), in one pass: a loop per code as :func:`act_row`
    has them (the same bits). Slices from index 0 make the loops vectorise (an index from an offset could be
    negative for Numba, whose wraparound test keeps LLVM from it)."""
    n = dst.shape[0]
    if code == RELU:
        for i in range(n):
            dst[i] = max(src[i], np.float32(0))
    elif code == RELU6:
        for i in range(n):
            dst[i] = min(max(src[i], np.float32(0)), np.float32(6))
    elif code == LEAKY_RELU:
        for i in range(n):
            dst[i] = src[i] if src[i] >= 0 else alpha * src[i]
    elif code == LINEAR:
        for i in range(n):
            dst[i] = src[i]
    else:
        for i in range(n):
            dst[i] = act(src[i], code, alpha)


@helper
def act_sum(dst, a, b, code, alpha):
    """dst[i] = act(a[i] + b[i]) (1-D float32 arrays of one length, dst apart from a and b: in place, use
    :func:`act_sum_into`): the sum rounded to float32, then the activation as :func:`act_row` takes it (the same
    bits). relu in the same loop as the sum (two passes took 1.5x as long); the other codes in act_row's loops
    after it (fewer loops to compile: each vectorised loop costs a first run compile time)."""
    n = dst.shape[0]
    if code == RELU:
        for i in range(n):
            dst[i] = max(a[i] + b[i], np.float32(0))
    else:
        for i in range(n):
            dst[i] = a[i] + b[i]
        if code != LINEAR:
            act_row(dst, code, alpha)


@helper
def act_sum_into(y, a, code, alpha):
    """In place: y[i] = act(a[i] + y[i]), as :func:`act_sum` computes it (the same bits), in explicit 16-lane
    vectors. LLVM's own vectoriser tests at run time that the output overlaps neither input, so :func:`act_sum`
    written over one of its inputs (a residual sum over a kernel's output) ran its scalar loop: 3.7x as long
    on 100,352 values. Out of place the vectoriser's loop stays (explicit vectors were 5-15 % slower there on
    maps past L2). relu as max(v, 0) is: 0 where 0 > v, NaN and -0.0 kept."""
    n = y.shape[0]
    full = n - n % 16
    zero = vzero()
    if code == RELU:
        for i in range(0, full, 16):
            v = vadd(vload(a, i), vload(y, i))
            vstore(y, i, vselect_gt(zero, v, zero, v))
        if full < n:
            v = vadd(vload_n(a, full, n - full), vload_n(y, full, n - full))
            vstore_n(y, full, vselect_gt(zero, v, zero, v), n - full)
        return
    for i in range(0, full, 16):
        vstore(y, i, vadd(vload(a, i), vload(y, i)))
    if full < n:
        vstore_n(y, full, vadd(vload_n(a, full, n - full), vload_n(y, full, n - full)), n - full)
    if code != LINEAR:
        act_row(y, code, alpha)


@helper
def act_sum_kept(dst, kept, a, b, code, alpha):
    """:func:`act_sum` that also keeps the sum: kept[i] = a[i] + b[i], dst[i] = act(kept[i]) (kept apart from
    the others; dst may be a or b: explicit vectors, as :func:`act_sum_into`). One pass for relu (a dense
    block's chain of sums, each kept for the next)."""
    n = dst.shape[0]
    full = n - n % 16
    zero = vzero()
    for i in range(0, full, 16):
        v = vadd(vload(a, i), vload(b, i))
        vstore(kept, i, v)
        vstore(dst, i, vselect_gt(zero, v, zero, v) if code == RELU else v)
    if full < n:
        v = vadd(vload_n(a, full, n - full), vload_n(b, full, n - full))
        vstore_n(kept, full, v, n - full)
        vstore_n(dst, full, vselect_gt(zero, v, zero, v) if code == RELU else v, n - full)
    if code != LINEAR and code != RELU:
        act_row(dst, code, alpha)


_F = types.float32[::1]
bound.declare("act_sum", act_sum, (_F, _F, _F, types.int64, types.float32))
bound.declare("act_sum_into", act_sum_into, (_F, _F, types.int64, types.float32))


@kernel
def _bias_act_flat(flat, tiled_bias, has_bias, code, alpha, c, r0, r1):
    # flat (rows*C,) in place over rows [r0, r1); tiled_bias (G*C,): the bias G times. Working on G rows
    # at once gives long inner loops even when C is small (16 channels = 1 SIMD vector).
    pos, stop = r0 * c, r1 * c
    while pos < stop:
        m = min(tiled_bias.shape[0], stop - pos)
        block = flat[pos:pos + m]
        if has_bias:
            for t in range(m):
                block[t] += tiled_bias[t]
        act_row(block, code, alpha)
        pos += m


@kernel
def _affine_act_rows(x, scale, shift, code, alpha, y, r0, r1):  # x, y (rows, C), rows [r0, r1); scale, shift (C,)
    c = x.shape[1]
    for r in range(r0, r1):
        row, src = y[r], x[r]
        for j in range(c):
            row[j] = src[j] * scale[j] + shift[j]
        act_row(row, code, alpha)


_bias_act_parallel = drivers.driver(_bias_act_flat)
_affine_act_parallel = drivers.driver(_affine_act_rows)


BIAS_BLOCK = 1024  # values per inner loop of _bias_act_flat


def tiled(bias: np.ndarray | None, c: int) -> np.ndarray:
    """The bias repeated to about BIAS_BLOCK values (whole rows), for _bias_act_flat; zeros if None."""
    reps = max(1, BIAS_BLOCK // c)
    return np.zeros(reps * c, np.float32) if bias is None else np.tile(bias, reps)


def bias_act_rows(y2: np.ndarray, tiled_bias: np.ndarray, has_bias: bool, code: int, alpha: float,
                  r0: int, r1: int) -> None:
    """In place on rows [r0, r1) of y2 (rows, C): act(y + bias); ``tiled_bias`` from :func:`tiled`."""
    if has_bias or code != LINEAR:
        c = y2.shape[1]
        _bias_act_flat(y2.reshape(-1), tiled_bias, has_bias, code, np.float32(alpha), c, r0, r1)


def bias_act_(y: np.ndarray, bias: np.ndarray | None, code: int, alpha: float) -> np.ndarray:
    """In place: y = act(y + bias) over the last axis of a C-contiguous float32 array; returns y."""
    if (bias is None and code == LINEAR) or y.size == 0:
        return y
    y2 = y.reshape(-1, y.shape[-1])  # (rows, C) view, no copy
    c = y2.shape[1]
    tb = tiled(bias, c)
    rows = y2.shape[0]
    args = (y.reshape(-1), tb, bias is not None, code, np.float32(alpha), c)
    parallel.split(_bias_act_flat, _bias_act_parallel, args, rows, y2.size)
    return y


def affine_act(x: np.ndarray, scale: np.ndarray, shift: np.ndarray, code: int = 0, alpha: float = 0.2):
    """New array act(x * scale + shift) on the last axis (batch norm, bias add)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.empty_like(x)
    x2, y2 = x.reshape(-1, x.shape[-1]), y.reshape(-1, x.shape[-1])  # (rows, C) views
    rows = x2.shape[0]
    parallel.split(_affine_act_rows, _affine_act_parallel, (x2, scale, shift, code, np.float32(alpha), y2), rows,
                   x2.size)
    return y


@kernel
def _act_into(y, x, code, alpha, start, stop):
    # y[i] = act(x[i]) for i in [start, stop) (flat arrays) in one pass (a copy, then act_row over it in L1,
    # took 1.6-1.8x as long)
    act_copy(y[start:stop], x[start:stop], code, alpha)


_act_into_parallel = drivers.driver(_act_into)
_F32 = np.dtype(np.float32)


def _standalone(x, code: int, op: str, alpha: float = 0.2) -> np.ndarray:
    """A new array act(x): never the caller's array modified."""
    if type(x) is np.ndarray and x.dtype is _F32 and x.flags.c_contiguous and x.size:
        y = np.empty_like(x)
        flat = y.reshape(-1)
        args = (flat, x.reshape(-1), code, np.float32(alpha))
        parallel.split(_act_into, _act_into_parallel, args, flat.shape[0], flat.shape[0])
        return y
    x = checks.floats(x, op)
    y = np.array(x, dtype=np.float32, order="C", ndmin=1)  # a copy: never modify the caller's array
    return bias_act_(y, None, code, alpha).reshape(x.shape)


def relu(x):
    """max(x, 0)."""
    return _standalone(x, RELU, "relu")


def relu6(x):
    """min(max(x, 0), 6)."""
    return _standalone(x, RELU6, "relu6")


def leaky_relu(x, *, alpha=0.2):
    """x if x >= 0 else alpha * x (TF's default alpha is 0.2)."""
    return _standalone(x, LEAKY_RELU, "leaky_relu", checks.number(alpha, "leaky_relu", "alpha"))


def sigmoid(x):
    """1 / (1 + exp(-x))."""
    return _standalone(x, SIGMOID, "sigmoid")


def swish(x):
    """x * sigmoid(x) (SiLU)."""
    return _standalone(x, SWISH, "swish")


def softmax(x, *, axis=-1):
    """exp(x - max) / sum(exp(x - max)) along ``axis``; subtracting the max keeps it finite for large logits.
    The sum is accumulated in float64. Along the last axis of a float32 array, one pass of a compiled kernel
    per row (:func:`_softmax_rows`); along another axis, NumPy's calls."""
    x = checks.floats(x, "softmax", min_ndim=1)
    checks.axes(axis, x.ndim, "softmax")
    if axis not in (-1, x.ndim - 1) or not x.size:
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        e /= e.sum(axis=axis, keepdims=True, dtype=np.float64).astype(np.float32)
        return e
    return _last_axis_softmax(np.ascontiguousarray(x), x.shape[-1], x.size // x.shape[-1])


@kernel
def _softmax_rows(x, y, n, start, stop):
    # y = softmax of each row r in [start, stop) of n values (flat arrays): its max, exp(x - max) stored with
    # the sum accumulated in float64, then each value divided by the float32 sum
    for r in range(start, stop):
        row, out = x[r * n:(r + 1) * n], y[r * n:(r + 1) * n]
        top = row[0]
        for j in range(1, n):
            if row[j] > top:  # (a NaN anywhere in the row makes the sum, so the whole row, NaN, as in NumPy)
                top = row[j]
        total = 0.0
        for j in range(n):
            e = np.exp(row[j] - top)
            out[j] = e
            total += e
        total32 = np.float32(total)
        for j in range(n):
            out[j] = out[j] / total32


_softmax_parallel = drivers.driver(_softmax_rows)


def _last_axis_softmax(x, n, rows):
    y = np.empty_like(x)
    parallel.split(_softmax_rows, _softmax_parallel, (x.reshape(-1), y.reshape(-1), n), rows, 8 * x.size)
    return y


def prepare_softmax(x, *, axis=-1):
    """``softmax(x, axis=axis)`` along the last axis for C-contiguous float32 inputs of ``x``'s shape as a function
    of the input alone (its checks done once: the same kernel call, the same bits); None for anything else."""
    if not (type(x) is np.ndarray and x.dtype is _F32 and x.flags.c_contiguous and x.ndim >= 1 and x.size
            and type(axis) is int and axis in (-1, x.ndim - 1)):
        return None
    n, rows = x.shape[-1], x.size // x.shape[-1]

    def softmax_prepared(x):
        return _last_axis_softmax(x, n, rows)
    softmax_prepared.out_shape = x.shape
    return softmax_prepared


ACTIVATIONS = {"relu": relu, "relu6": relu6, "leaky_relu": leaky_relu, "sigmoid": sigmoid, "swish": swish}
