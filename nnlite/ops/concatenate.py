"""Concatenation of float32 tensors in one pass over the output, on Numba's threads.

Concatenating C-contiguous arrays along an axis is, for each index of the axes before it (a "row"), the
inputs' rows one after another. Along the channels of NHWC maps (SqueezeNet's fire modules, the NASNet and
PNASNet cells) a row is one pixel, and each input's part of it a run of a few dozen values: NumPy's
``concatenate`` copies each input through a strided view, one inner-loop call per run, and that per-call
cost, not memory, was its time. Here one kernel writes each output row in turn from every input, each run
with one ``memcpy`` (a plain Numba loop of copies was slower than NumPy), and the rows are split between
threads.

The kernel takes the inputs as an array of their addresses (with their row widths), so that one compiled
specialisation serves any number of inputs; the caller keeps the arrays alive for the call. The twin is
:func:`nnlite.ops.reference.concat` (NumPy's).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..errors import ShapeError
from . import buffers, checks, drivers, parallel
from .jit import kernel
from .shape import _plain

SMALL = parallel.MIN_WORK  # outputs of fewer values: NumPy's concatenate (this call's set-up costs microseconds)
_FLOAT_BYTES = 4


@intrinsic
def _copy_bytes(typingctx, dst, src, nbytes):
    """memcpy(dst, src, nbytes) for integer addresses (LLVM's memcpy: a libc call for a size known at run time)."""
    def codegen(context, builder, sig, args):
        i8p = ir.IntType(8).as_pointer()
        cgutils.raw_memcpy(builder, builder.inttoptr(args[0], i8p), builder.inttoptr(args[1], i8p), args[2], 1)
        return context.get_dummy_value()
    return types.none(types.int64, types.int64, types.int64), codegen


@kernel
def _concat_rows(out, addresses, widths, start, stop):
    # out[r] = input 0's row r, then input 1's, ... for rows [start, stop); input i is a C-contiguous
    # (rows, widths[i]) float32 array at addresses[i]
    row_bytes = out.shape[1] * _FLOAT_BYTES
    for r in range(start, stop):
        at = out.ctypes.data + r * row_bytes
        for i in range(addresses.shape[0]):
            size = widths[i] * _FLOAT_BYTES
            _copy_bytes(at, addresses[i] + r * size, size)
            at += size


_concat_rows_parallel = drivers.driver(_concat_rows)


def concat(*xs, axis=-1):
    """Concatenate along ``axis`` (channels by default)."""
    fast = prepare_concat(*xs, axis=axis)
    if fast is not None:  # a model's hot path: every input already in final form
        return fast(*xs)
    arrays = [checks.floats(a, "concat", min_ndim=1) for a in xs]
    if not arrays:
        raise ShapeError("concat: expected at least one input, found none")
    checks.axes(axis, arrays[0].ndim, "concat")
    axis = axis % arrays[0].ndim
    if _mismatch(arrays, axis):
        raise ShapeError(f"concat: shapes {[a.shape for a in arrays]} differ outside axis {axis}")
    fast = prepare_concat(*[a if _plain(a) else np.ascontiguousarray(a) for a in arrays], axis=axis)
    return np.concatenate(arrays, axis=axis) if fast is None else fast(*arrays)


def _mismatch(arrays, axis: int) -> bool:
    ndim, shape = arrays[0].ndim, arrays[0].shape
    return any(a.ndim != ndim or a.shape[:axis] != shape[:axis] or a.shape[axis + 1:] != shape[axis + 1:]
               for a in arrays)


def prepare_concat(*xs, axis=-1):
    """:func:`concat` for inputs of these shapes as a function of the inputs alone (see :mod:`nnlite.ops.prepare`):
    shapes checked and row widths worked out once; None where the kernel would not take them as they are
    (a conversion, or NumPy's concatenate: one input, one row, or fewer than SMALL values). Each call copies
    the inputs it is given (not necessarily C-contiguous: it makes them so)."""
    if (not xs or not all(_plain(a) for a in xs) or not isinstance(axis, (int, np.integer))
            or not -xs[0].ndim <= axis < xs[0].ndim):
        return None
    axis %= xs[0].ndim
    shape = xs[0].shape
    rows = math.prod(shape[:axis])
    if _mismatch(xs, axis) or len(xs) == 1 or rows <= 1 or sum(a.size for a in xs) < SMALL:
        return None
    out_shape = (*shape[:axis], sum(a.shape[axis] for a in xs), *shape[axis + 1:])
    widths = np.array([a.size // rows for a in xs], np.int64)
    size = math.prod(out_shape)
    if size == 0:
        return None

    def concatenated(*xs):
        y = buffers.empty(out_shape)
        xs = [a if a.flags.c_contiguous else np.ascontiguousarray(a) for a in xs]  # held while copied
        addresses = np.array([a.__array_interface__["data"][0] for a in xs], np.int64)
        parallel.split(_concat_rows, _concat_rows_parallel, (y.reshape(rows, -1), addresses, widths), rows, size)
        return y
    concatenated.out_shape = out_shape
    return concatenated
