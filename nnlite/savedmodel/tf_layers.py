"""TensorFlow ops -> nnlite layers: which kernel of :mod:`nnlite.ops` (or :mod:`nnlite.ops.tensor`) a node
becomes, and with which attributes.

``layer_for(graph, node, ins)`` looks at a node whose inputs are the planner's refs (``("k", value)`` for a
value known at load, ``("d", endpoint)`` for one computed per run) and returns ``(op, data, kwargs)``:
the kernel name, the indices of the inputs the layer reads per run, and its weights and attributes. The
known inputs of a TF op (a reshape's target shape, a pad's amounts, a reduction's axes) become keyword
attributes, a constant operand of arithmetic a weight. ``None`` means "no plain layer for this node"
(an attribute computed at run time, an op with no neutral equivalent such as ``StridedSlice``); the
lowering then wraps the TF kernel of :mod:`.tf_ops` as the layer instead, which computes the same thing.
"""

from __future__ import annotations

import numpy as np

from .tensors import dtype_of

FLOAT32 = 1  # TensorFlow's DT_FLOAT

ACTIVATIONS = {"Relu": "relu", "Relu6": "relu6", "Sigmoid": "sigmoid"}
UNARY = {"Tanh": "tanh", "Exp": "exp", "Log": "log", "Neg": "negative", "Abs": "abs", "Sqrt": "sqrt",
         "Square": "square", "Reciprocal": "reciprocal", "Floor": "floor", "Rsqrt": "rsqrt", "Elu": "elu",
         "Softplus": "softplus", "LogicalNot": "logical_not"}
COMMUTATIVE = {"Add": "add", "AddV2": "add", "Mul": "multiply", "Maximum": "maximum", "Minimum": "minimum",
               "Equal": "equal", "NotEqual": "not_equal", "LogicalAnd": "logical_and", "LogicalOr": "logical_or"}
BINARY = {**COMMUTATIVE, "Sub": "subtract", "RealDiv": "divide", "FloorDiv": "floor_divide",
          "FloorMod": "floor_mod", "Pow": "power", "SquaredDifference": "squared_difference",
          "Greater": "greater", "GreaterEqual": "greater_equal", "Less": "less", "LessEqual": "less_equal"}
REDUCTIONS = {"Mean": "mean", "Sum": "reduce_sum", "Max": "reduce_max", "Min": "reduce_min",
              "Prod": "reduce_prod", "All": "reduce_all", "Any": "reduce_any"}


def _known(ref):
    return ref[1] if ref[0] == "k" else None


def _ints(value) -> tuple[int, ...]:
    return tuple(int(v) for v in np.ravel(value))


def _hw(values) -> tuple[int, int] | None:
    if len(values) != 4 or values[0] != 1 or values[3] != 1:
        return None
    return int(values[1]), int(values[2])


def layer_for(graph, node, ins: list):
    """(op, indices of per-run inputs, kwargs) for ``node``, or None (see the module docstring)."""
    op = node.op
    dyn = [i for i, r in enumerate(ins) if r[0] == "d"]
    t = graph.attr(node, "T", None)
    if op in ACTIVATIONS:  # float32 kernels, as TF's own float graphs use them
        return ACTIVATIONS[op], dyn, {}
    if op == "LeakyRelu":
        return "leaky_relu", dyn, {"alpha": float(graph.attr(node, "alpha"))}
    if op == "Softmax":
        return "softmax", dyn, {"axis": -1}
    if op in UNARY:
        return f"tensor.{UNARY[op]}", dyn, {}
    if op in BINARY or op == "Div":
        return _binary(op, ins, dyn, t)
    if op in ("MaxPool", "AvgPool"):
        return _pool(graph, node, dyn)
    if op in ("ResizeBilinear", "ResizeNearestNeighbor") and dyn == [0]:
        return ("resize_bilinear" if op == "ResizeBilinear" else "resize_nearest"), dyn, {
            "size": _ints(ins[1][1])[:2], "half_pixel_centers": bool(graph.attr(node, "half_pixel_centers")),
            "align_corners": bool(graph.attr(node, "align_corners"))}
    if dyn != [0] and op not in ("ConcatV2", "Pack", "AddN", "SelectV2"):
        return None
    return _shaping(graph, node, ins, dyn)


def _binary(op: str, ins: list, dyn: list, t):
    name = "divide" if op == "Div" else BINARY[op]
    if op == "Div" and (t is None or np.dtype(dtype_of(t)).kind in "iu"):
        name = "floor_divide"
    if len(dyn) == 2:
        if op in ("Add", "AddV2") and t == FLOAT32:
            return "add", dyn, {}  # nnlite.ops.add: a residual add the plan may fuse an activation into
        return f"tensor.{name}", dyn, {}
    if len(dyn) != 1:
        return None
    const = _known(ins[1 - dyn[0]])
    if not isinstance(const, np.ndarray):
        return None
    if dyn[0] == 1 and op not in COMMUTATIVE:
        return None  # const - x: the constant is the first operand (kept as TF's kernel)
    return f"tensor.{name}", dyn, {"b": const}


def _pool(graph, node, dyn):
    fmt = graph.attr(node, "data_format", b"NHWC")
    size, stride = _hw(graph.attr(node, "ksize")), _hw(graph.attr(node, "strides"))
    if fmt not in (b"NHWC", "NHWC") or size is None or stride is None:
        return None  # the TF kernel reports what is unsupported
    kind = "max_pool2d" if node.op == "MaxPool" else "avg_pool2d"
    return kind, dyn, {"pool_size": size, "stride": stride, "padding": graph.attr(node, "padding").decode().lower()}


def _shaping(graph, node, ins: list, dyn: list):  # noqa: C901  (one branch per op, each a line or two)
    op = node.op
    k = [_known(r) for r in ins]
    if op == "Reshape":
        return "tensor.reshape", dyn, {"shape": _ints(k[1])}
    if op == "Transpose":
        return "tensor.transpose", dyn, {"perm": _ints(k[1])}
    if op == "ConcatV2" and dyn == list(range(len(ins) - 1)):
        return "tensor.concat", dyn, {"axis": int(k[-1])}
    if op == "Pack" and len(dyn) == len(ins):
        return "tensor.stack", dyn, {"axis": int(graph.attr(node, "axis"))}
    if op == "AddN" and len(dyn) == len(ins):
        return "tensor.add_n", dyn, {}
    if op == "SelectV2" and len(dyn) == len(ins):
        return "tensor.where", dyn, {}
    if op in ("Pad", "PadV2", "MirrorPad"):
        mode = graph.attr(node, "mode").decode().lower() if op == "MirrorPad" else "constant"
        pads = [tuple(int(v) for v in row) for row in np.asarray(k[1])]
        value = k[2].item() if op == "PadV2" else 0
        return "tensor.pad", dyn, {"paddings": pads, "mode": mode, "value": value}
    if op in REDUCTIONS:
        return f"tensor.{REDUCTIONS[op]}", dyn, {"axis": _ints(k[1]), "keepdims": bool(graph.attr(node, "keep_dims"))}
    if op == "Squeeze":
        return "tensor.squeeze", dyn, {"axis": tuple(int(d) for d in graph.attr(node, "squeeze_dims"))}
    if op == "ExpandDims":
        return "tensor.expand_dims", dyn, {"axis": _ints(k[1])[0]}
    if op == "Cast":
        return "tensor.cast", dyn, {"dtype": dtype_of(graph.attr(node, "DstT"))}
    if op == "Shape":
        return "tensor.shape", dyn, {"dtype": dtype_of(graph.attr(node, "out_type"))}
    if op == "Slice":
        return "tensor.slice", dyn, {"begin": _ints(k[1]), "size": _ints(k[2])}
    if op == "Tile":
        return "tensor.tile", dyn, {"reps": _ints(k[1])}
    if op == "Unpack":
        return "tensor.unstack", dyn, {"axis": int(graph.attr(node, "axis"))}
    if op == "GatherV2" and not int(graph.attr(node, "batch_dims", 0)):
        return "tensor.gather", dyn, {"indices": np.asarray(k[1]).tolist(), "axis": int(k[2])}
    if op == "ArgMax" or op == "ArgMin":
        return f"tensor.{op.lower()}", dyn, {"axis": int(k[1]), "dtype": dtype_of(graph.attr(node, "output_type"))}
    return None
