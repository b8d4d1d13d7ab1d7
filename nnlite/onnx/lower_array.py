"""Lowerings of elementwise, shape and layout ops (Add, Reshape, Concat, Slice, Shape, Constant, ...).

Shape arithmetic folds at load (every input constant); the rest becomes layers over
:mod:`nnlite.onnx.arrays`. NHWC tensors keep their layout through elementwise ops, Concat, Slice, Split,
Pad and reductions (the axes are remapped); ops that need the file's element order (Reshape, Flatten,
Transpose, Squeeze, ...) read the NCHW variant, or the NHWC tensor itself when its order is the same.
"""

from __future__ import annotations

import numpy as np

from . import arrays
from .lower import BATCH, STORED_AXIS, TO_NCHW, lowering
from .tensors import DTYPES


@lowering("Constant")
def constant(ctx, node, a):
    for key in ("value", "value_float", "value_int", "value_floats", "value_ints"):
        if key in a:
            val = a[key]
            dt = np.float32 if "float" in key else (np.int64 if "int" in key else None)
            ctx.set_const(node.output[0], np.asarray(val, dt) if dt else val)
            return
    raise ctx.fail("Constant without a supported value attribute")


@lowering("Shape")
def shape(ctx, node, a):
    v = ctx.values[node.input[0]]
    dims = list(v.shape)
    if v.layer is not None and ctx.dynamic_batch and dims:
        dims[0] = BATCH
    start, end = a.get("start", 0), a.get("end", len(dims))
    dims = dims[start:end]
    has_batch = any(d is BATCH for d in dims)
    ctx.set_const(node.output[0], np.array(dims, dtype=object if has_batch else np.int64))


@lowering("Size")
def size(ctx, node, a):
    v = ctx.values[node.input[0]]
    if v.layer is not None and ctx.dynamic_batch:
        raise ctx.fail("Size of a tensor with a free batch size")
    ctx.set_const(node.output[0], np.array(int(np.prod(v.shape)), np.int64))


@lowering("ConstantOfShape")
def constant_of_shape(ctx, node, a):
    value = a.get("value", np.zeros(1, np.float32)).reshape(-1)[0]
    ctx.generic(arrays.constant_of_shape, node, "ConstantOfShape", value=value)


def _ints(ctx, node, i: int, attr: str, a: dict):
    """A list of ints from attribute ``attr`` (old opsets) or constant input ``i`` (new ones)."""
    if attr in a:
        return list(a[attr])
    c = ctx.const(node, i)
    return None if c is None else [int(x) for x in np.asarray(c).reshape(-1)]


@lowering("Unsqueeze", "Squeeze")
def squeeze(ctx, node, a):
    axes = _ints(ctx, node, 1, "axes", a)
    if node.op_type == "Unsqueeze":
        ctx.generic(arrays.unsqueeze, node, "Unsqueeze", ins=node.input[:1], axes=axes)
        return
    v = ctx.values[node.input[0]]
    if v.layer is not None:
        rank = len(v.shape)
        axes = [i for i, s in enumerate(v.shape) if s == 1] if axes is None else [x % rank for x in axes]
        shape = [-1 if i == 0 else s for i, s in enumerate(v.shape) if i not in axes]
        ctx.emit(arrays.reshape, [ctx.same_order(node.input[0])], node.output[0], nhwc=False, shape=shape)
        return
    ctx.generic(arrays.squeeze, node, "Squeeze", ins=node.input[:1], axes=axes)


def _reshape_target(ctx, target) -> list:
    out = []
    for i, s in enumerate(np.asarray(target).reshape(-1)):
        if s is BATCH:
            if i != 0:
                raise ctx.fail("the batch size moves to another axis")
            out.append(0)
        else:
            out.append(int(s))
    return out


@lowering("Reshape")
def reshape(ctx, node, a):
    v = ctx.values[node.input[0]]
    target = _reshape_target(ctx, ctx.const(node, 1, required=True))
    allowzero = bool(a.get("allowzero", 0))
    if v.layer is None:
        ctx.set_const(node.output[0], arrays.reshape(v.const, shape=target, allowzero=allowzero))
        return
    ctx.emit(arrays.reshape, [ctx.same_order(node.input[0])], node.output[0], nhwc=False, shape=target,
             allowzero=allowzero)


@lowering("Flatten")
def flatten(ctx, node, a):
    v = ctx.values[node.input[0]]
    axis = a.get("axis", 1)
    if v.layer is not None and v.nhwc and axis == 1:
        src = ctx.same_order(node.input[0])
        ctx.emit("flatten", [src], node.output[0], nhwc=False)
        return
    ctx.generic(arrays.flatten, node, "Flatten", axis=axis)


@lowering("Transpose")
def transpose(ctx, node, a):
    v = ctx.values[node.input[0]]
    perm = a.get("perm", list(range(len(v.shape)))[::-1])
    if v.layer is not None and v.nhwc:
        stored = [TO_NCHW[p] for p in perm]  # compose with the NHWC -> NCHW view: one transpose
        if stored == [0, 1, 2, 3]:
            ctx.set_value(node.output[0], type(v)(v.layer, None, False, tuple(v.shape[p] for p in perm)))
            return
        ctx.emit(arrays.transpose, [v.layer], node.output[0], nhwc=False, perm=stored)
        return
    if v.layer is not None and list(perm) == [0, 3, 1, 2]:  # NHWC -> NCHW (tf2onnx's input): a layout change
        ctx.set_value(node.output[0], type(v)(v.layer, None, True, tuple(v.shape[p] for p in perm)))
        return
    ctx.generic(arrays.transpose, node, "Transpose", perm=perm)


def _nhwc_ok(ctx, names) -> bool:
    vals = [ctx.values[n] for n in names if n]
    tensors = [v for v in vals if v.layer is not None]
    return bool(tensors) and any(v.nhwc for v in tensors) and all(len(v.shape) == 4 for v in vals)


@lowering("Concat")
def concat(ctx, node, a):
    names = [n for n in node.input if n]
    vals = [ctx.values[n] for n in names]
    rank = len(vals[0].shape)
    axis = a["axis"] % rank if rank else 0
    if _nhwc_ok(ctx, names):
        ins, weights, slots = [], {}, []
        for k, (n, v) in enumerate(zip(names, vals)):
            if v.layer is None:
                weights[f"in{k}"] = np.ascontiguousarray(v.const.transpose(0, 2, 3, 1))
                slots.append(f"in{k}")
            else:
                ins.append(ctx.nhwc(n))
                slots.append("x")
        from .lower import bind
        fn = "concat" if not weights else bind(arrays.concat, tuple(slots), "Concat")
        ctx.emit(fn, ins, node.output[0], nhwc=True, axis=STORED_AXIS[axis], **weights)
        return
    ctx.generic(arrays.concat, node, "Concat", ins=names, axis=axis)


def _slice_axes(v, axes):
    rank = len(v.shape)
    return [(ax % rank) for ax in axes]


@lowering("Slice")
def slice_(ctx, node, a):
    v = ctx.values[node.input[0]]
    if ctx.opset < 10:
        starts, ends, axes, steps = a["starts"], a["ends"], a.get("axes"), None
    else:
        starts, ends = _ints(ctx, node, 1, "-", a), _ints(ctx, node, 2, "-", a)
        axes, steps = _ints(ctx, node, 3, "-", a), _ints(ctx, node, 4, "-", a)
    axes = list(range(len(starts))) if axes is None else _slice_axes(v, axes)
    kw = dict(starts=starts, ends=ends, steps=steps)
    if v.layer is not None and v.nhwc:
        ctx.emit(arrays.slice_, [v.layer], node.output[0], nhwc=True, axes=[STORED_AXIS[x] for x in axes], **kw)
        return
    ctx.generic(arrays.slice_, node, "Slice", ins=node.input[:1], axes=axes, **kw)


@lowering("Split")
def split(ctx, node, a):
    v = ctx.values[node.input[0]]
    rank = len(v.shape)
    axis = a.get("axis", 0) % rank
    sizes = _ints(ctx, node, 1, "split", a)
    outs = [o for o in node.output]
    if sizes is None:
        n = v.shape[axis]
        k = len(outs)
        step = -(-n // k)
        sizes = [min(step, n - i * step) for i in range(k)]
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    for i, out in enumerate(outs):
        if not out:
            continue
        kw = dict(start=int(starts[i]), stop=int(starts[i + 1]))
        if v.layer is not None and v.nhwc:
            ctx.emit(arrays.split, [v.layer], out, nhwc=True, axis=STORED_AXIS[axis], **kw)
        else:
            ctx.generic(arrays.split, node, "Split", ins=node.input[:1], out=out, axis=axis, **kw)


@lowering("Pad")
def pad(ctx, node, a):
    v = ctx.values[node.input[0]]
    rank = len(v.shape)
    mode = a.get("mode", "constant")
    if ctx.opset < 11:
        pads, value = a["pads"], a.get("value", 0.0)
    else:
        pads = _ints(ctx, node, 1, "-", a)
        c = ctx.const(node, 2)
        value = 0.0 if c is None or c.size == 0 else c.reshape(-1)[0].item()
        axes = _ints(ctx, node, 3, "-", a)
        if axes is not None:
            full = [0] * (2 * rank)
            for j, ax in enumerate(axes):
                full[ax % rank], full[ax % rank + rank] = pads[j], pads[j + len(axes)]
            pads = full
    pairs = [(pads[i], pads[i + rank]) for i in range(rank)]
    if _merge_into_conv(ctx, node, v, pairs, mode, value):
        return
    if v.layer is not None and v.nhwc:
        stored = [pairs[0], pairs[2], pairs[3], pairs[1]]
        ctx.emit(arrays.pad, [v.layer], node.output[0], nhwc=True, pads=stored, mode=mode, value=value)
        return
    ctx.generic(arrays.pad, node, "Pad", ins=node.input[:1], pads=pairs, mode=mode, value=value)


def _merge_into_conv(ctx, node, v, pairs, mode, value) -> bool:
    """A zero Pad of H and W read only by a Conv with explicit pads becomes part of that Conv's padding
    (TF 'same' padding as PyTorch/tf2onnx exports write it): no padded copy is made."""
    out = node.output[0]
    readers = ctx.consumers.get(out, [])
    if (v.layer is None or len(v.shape) != 4 or mode != "constant" or value != 0 or out in ctx.outputs
            or any(p < 0 for pair in pairs for p in pair) or pairs[0] != (0, 0) or pairs[1] != (0, 0)
            or len(readers) != 1 or readers[0].op_type != "Conv" or readers[0].input[0] != out
            or ctx.attributes(readers[0]).get("auto_pad", "NOTSET") != "NOTSET"):
        return False
    shape = (v.shape[0], v.shape[1], v.shape[2] + sum(pairs[2]), v.shape[3] + sum(pairs[3]))
    ctx.set_value(out, type(v)(v.layer, None, v.nhwc, shape))
    ctx.pending_pads[out] = (pairs[2][0], pairs[2][1], pairs[3][0], pairs[3][1])
    return True


@lowering("Cast")
def cast(ctx, node, a):
    to = a.get("to", 1)
    if to not in DTYPES:
        raise ctx.fail(f"Cast to data type {to}")
    dt = np.dtype(DTYPES[to]).newbyteorder("=")
    v = ctx.values[node.input[0]]
    if v.layer is not None and dt == np.float32 and ctx.probes[v.layer].dtype == np.float32:
        ctx.alias(node.output[0], node.input[0])
        return
    if v.layer is None and v.const.dtype == object:
        ctx.set_const(node.output[0], v.const)  # a shape holding the batch size: an int64 already
        return
    ctx.generic(arrays.cast, node, "Cast", layout="any", dtype=dt)


@lowering("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Equal", "Less", "Greater", "And", "Or", "Sum")
def binary(ctx, node, a):
    op = "Add" if node.op_type == "Sum" else node.op_type
    names = [n for n in node.input if n]
    vals = [ctx.values[n] for n in names]
    if (op == "Add" and len(vals) == 2 and all(v.layer is not None and v.nhwc for v in vals)
            and vals[0].shape == vals[1].shape):
        ctx.emit("add", [v.layer for v in vals], node.output[0], nhwc=True)
        return
    if op in ("Mul", "Add", "Sub") and len(vals) == 2 and vals[0].layer is not None and vals[1].layer is None:
        from .lower_nn import fold_affine
        if fold_affine(ctx, node, names[0], vals[1].const, op):
            return
    ctx.generic(arrays.binary, node, op, ins=names, layout="any", kind=op)


@lowering("Neg", "Abs", "Exp", "Log", "Sqrt", "Tanh", "Floor", "Ceil", "Reciprocal", "Not", "Erf")
def unary(ctx, node, a):
    ctx.generic(arrays.unary, node, node.op_type, layout="any", kind=node.op_type)


@lowering("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd")
def reduce(ctx, node, a):
    v = ctx.values[node.input[0]]
    rank = len(v.shape)
    axes = a.get("axes")
    if axes is None and len(node.input) > 1:
        axes = _ints(ctx, node, 1, "-", a)
    if not axes and a.get("noop_with_empty_axes", 0):
        ctx.alias(node.output[0], node.input[0])
        return
    axes = list(range(rank)) if not axes else sorted(x % rank for x in axes)
    keep = bool(a.get("keepdims", 1))
    if v.layer is not None and v.nhwc and (keep or axes == [2, 3]):
        ctx.emit(arrays.reduce, [v.layer], node.output[0], nhwc=keep, kind=node.op_type,
                 axes=[STORED_AXIS[x] for x in axes], keepdims=keep)
        return
    ctx.generic(arrays.reduce, node, node.op_type, ins=node.input[:1], kind=node.op_type, axes=axes, keepdims=keep)


@lowering("Gather")
def gather(ctx, node, a):
    ctx.generic(arrays.gather, node, "Gather", axis=a.get("axis", 0))


# ONNX ops with no attributes that are one function of ``arrays`` applied to all of their inputs.
PLAIN = {"Expand": arrays.expand, "Tile": arrays.tile, "Range": arrays.range_, "Where": arrays.where}


@lowering(*PLAIN)
def plain(ctx, node, a):
    ctx.generic(PLAIN[node.op_type], node, node.op_type)
