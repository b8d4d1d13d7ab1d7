"""TensorFlow shape and array ops (Pad, ConcatV2, Reshape, StridedSlice, Shape, Cast, ...) on NumPy.

Registered into :data:`nnlite.savedmodel.tf_ops.KERNELS`; each maker reads the node's attributes once
and returns ``fn(*inputs) -> tuple of outputs``. These only move or pick values, so they are plain NumPy
calls with TensorFlow's semantics (shape vectors arrive as int32/int64 arrays).
"""

from __future__ import annotations

import numpy as np

from ..errors import UnsupportedOpError
from .slicing import strided_slice
from .tensors import dtype_of
from .tf_ops import kernel


@kernel("Pad", "PadV2", "MirrorPad")
def _pad(g, node):
    mode = g.attr(node, "mode").decode(errors="replace").lower() if node.op == "MirrorPad" else "constant"

    def run(x, paddings, value=None):
        pads = [tuple(int(v) for v in row) for row in np.asarray(paddings)]
        if mode != "constant":
            return (np.pad(x, pads, mode="reflect" if mode == "reflect" else "symmetric"),)
        cval = 0 if value is None else value.item()
        return (np.pad(x, pads, mode="constant", constant_values=cval),)
    return run


@kernel("ConcatV2", "Concat")
def _concat(g, node):
    if node.op == "Concat":
        return lambda axis, *xs: (np.concatenate(xs, axis=int(axis)),)
    return lambda *xs: (np.concatenate(xs[:-1], axis=int(xs[-1])),)


@kernel("Reshape")
def _reshape(g, node):
    return lambda x, shape: (np.reshape(x, tuple(int(s) for s in np.ravel(shape))),)


@kernel("Squeeze")
def _squeeze(g, node):
    dims = tuple(int(d) for d in g.attr(node, "squeeze_dims"))
    return lambda x: (np.squeeze(x, axis=dims) if dims else np.squeeze(x),)


@kernel("ExpandDims")
def _expand(g, node):
    return lambda x, axis: (np.expand_dims(x, int(np.ravel(axis)[0])),)


@kernel("Pack")
def _pack(g, node):
    axis = int(g.attr(node, "axis"))
    return lambda *xs: (np.stack(xs, axis=axis),)


@kernel("Unpack")
def _unpack(g, node):
    axis = int(g.attr(node, "axis"))
    return lambda x: tuple(np.moveaxis(x, axis, 0))


@kernel("StridedSlice")
def _strided_slice(g, node):
    masks = {m: int(g.attr(node, m)) for m in ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask",
                                               "shrink_axis_mask")}
    return lambda x, b, e, s: (strided_slice(x, b, e, s, **masks),)


@kernel("Slice")
def _slice(g, node):
    def run(x, begin, size):
        idx = tuple(slice(int(b), None if int(s) < 0 else int(b) + int(s)) for b, s in zip(begin, size))
        return (x[idx],)
    return run


@kernel("Shape")
def _shape(g, node):
    out = dtype_of(g.attr(node, "out_type"))
    return lambda x: (np.array(x.shape, out),)


@kernel("Size", "Rank")
def _size(g, node):
    if node.op == "Rank":
        return lambda x: (np.array(x.ndim, np.int32),)
    out = dtype_of(g.attr(node, "out_type", 3))
    return lambda x: (np.array(x.size, out),)


@kernel("Cast")
def _cast(g, node):
    dst = dtype_of(g.attr(node, "DstT"))
    return lambda x: (x.astype(dst),)


@kernel("Fill")
def _fill(g, node):
    return lambda dims, value: (np.full(tuple(int(d) for d in dims), value, dtype=value.dtype),)


@kernel("Transpose")
def _transpose(g, node):
    return lambda x, perm: (np.ascontiguousarray(np.transpose(x, tuple(int(p) for p in perm))),)


@kernel("Tile")
def _tile(g, node):
    return lambda x, reps: (np.tile(x, tuple(int(r) for r in reps)),)


@kernel("Range")
def _range(g, node):
    return lambda start, limit, delta: (np.arange(start, limit, delta).astype(start.dtype),)


@kernel("GatherV2")
def _gather(g, node):
    if int(g.attr(node, "batch_dims", 0)):
        raise UnsupportedOpError(f"node {node.name!r}: GatherV2 with batch_dims is not supported")
    return lambda params, idx, axis: (np.take(params, idx, axis=int(axis)),)


@kernel("Split")
def _split(g, node):
    n = int(g.attr(node, "num_split"))
    return lambda axis, x: tuple(np.split(x, n, axis=int(axis)))


@kernel("SplitV")
def _splitv(g, node):
    def run(x, sizes, axis):
        sizes = [int(s) for s in sizes]
        if -1 in sizes:
            sizes[sizes.index(-1)] = x.shape[int(axis)] - (sum(sizes) + 1)
        return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=int(axis)))
    return run
