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
from . import checks, drivers, parallel
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
    arrays = [checks.floats(a, "concat", min_ndim=1) for a in xs]
    if not arrays:
        raise ShapeError("concat: expected at least one input, found none")
    checks.axes(axis, arrays[0].ndim, "concat")
    ndim = arrays[0].ndim
    axis = axis % ndim
    shape = arrays[0].shape
    if any(a.ndim != ndim or a.shape[:axis] != shape[:axis] or a.shape[axis + 1:] != shape[axis + 1:]
           for a in arrays):
        raise ShapeError(f"concat: shapes {[a.shape for a in arrays]} differ outside axis {axis}")
    rows = math.prod(shape[:axis])
    if len(arrays) == 1 or rows <= 1 or sum(a.size for a in arrays) < SMALL:
        return np.concatenate(arrays, axis=axis)  # contiguous copies, or too small to pay for the call
    arrays = [a if _plain(a) else np.ascontiguousarray(a) for a in arrays]
    out_shape = (*shape[:axis], sum(a.shape[axis] for a in arrays), *shape[axis + 1:])
    y = np.empty(out_shape, np.float32)
    out = y.reshape(rows, -1)
    if out.shape[1] == 0:
        return y
    addresses = np.array([a.__array_interface__["data"][0] for a in arrays], np.int64)
    widths = np.array([a.size // rows for a in arrays], np.int64)
    parallel.split(_concat_rows, _concat_rows_parallel, (out, addresses, widths), rows, y.size)
    return y
