"""What nnlite knows about TensorFlow op definitions: attribute defaults and multi-output layouts.

SavedModels written with ``strip_default_attrs`` (every TF2 export) drop attributes equal to their
defaults, so a missing attribute must be read from the op's definition: the meta graph's
``stripped_op_list`` when present, else the built-in table below (values from TensorFlow's op registry).

Inside function bodies a tensor is named ``node:output_arg:index``; turning that into a flat output number
needs the op's output arguments. Ops not listed in OUTPUTS have one output argument, so the flat number is
the index.
"""

from __future__ import annotations

from ..errors import GraphFormatError

_NHWC = {"data_format": b"NHWC"}
_CONV = {**_NHWC, "dilations": [1, 1, 1, 1], "explicit_paddings": [], "use_cudnn_on_gpu": True}

# op -> {attr: default}; bytes for strings, lists for list(int), plain Python for scalars.
DEFAULTS: dict[str, dict] = {
    "Conv2D": _CONV, "DepthwiseConv2dNative": _CONV,
    "MaxPool": _NHWC, "AvgPool": _NHWC, "BiasAdd": _NHWC,
    "FusedBatchNorm": {**_NHWC, "epsilon": 1e-4, "is_training": True, "exponential_avg_factor": 1.0},
    "FusedBatchNormV2": {**_NHWC, "epsilon": 1e-4, "is_training": True, "exponential_avg_factor": 1.0},
    "FusedBatchNormV3": {**_NHWC, "epsilon": 1e-4, "is_training": True, "exponential_avg_factor": 1.0},
    "MatMul": {"transpose_a": False, "transpose_b": False},
    "BatchMatMulV2": {"adj_x": False, "adj_y": False},
    "Mean": {"keep_dims": False}, "Sum": {"keep_dims": False}, "Max": {"keep_dims": False},
    "Min": {"keep_dims": False}, "Prod": {"keep_dims": False},
    "Squeeze": {"squeeze_dims": []},
    "StridedSlice": {"begin_mask": 0, "end_mask": 0, "ellipsis_mask": 0, "new_axis_mask": 0,
                     "shrink_axis_mask": 0},
    "Pack": {"axis": 0}, "Unpack": {"axis": 0},
    "Cast": {"Truncate": False}, "Shape": {"out_type": 3},
    "LeakyRelu": {"alpha": 0.2},
    "ResizeBilinear": {"align_corners": False, "half_pixel_centers": False},
    "ResizeNearestNeighbor": {"align_corners": False, "half_pixel_centers": False},
    "ArgMax": {"output_type": 9},
    "Softmax": {}, "Placeholder": {}, "Const": {},
}

# op -> [(output arg, length rule)]: 1, or the attr giving the count (int attr or list-of-types attr).
OUTPUTS: dict[str, list[tuple[str, object]]] = {
    "Switch": [("output_false", 1), ("output_true", 1)],
    "RefSwitch": [("output_false", 1), ("output_true", 1)],
    "Merge": [("output", 1), ("value_index", 1)],
    "FusedBatchNorm": [(n, 1) for n in ("y", "batch_mean", "batch_variance", "reserve_space_1",
                                        "reserve_space_2")],
    "FusedBatchNormV2": [(n, 1) for n in ("y", "batch_mean", "batch_variance", "reserve_space_1",
                                          "reserve_space_2")],
    "FusedBatchNormV3": [(n, 1) for n in ("y", "batch_mean", "batch_variance", "reserve_space_1",
                                          "reserve_space_2", "reserve_space_3")],
    "Unique": [("y", 1), ("idx", 1)],
    "TopKV2": [("values", 1), ("indices", 1)],
}


class OpInfo:
    """Attribute defaults and output layouts from the meta graph's op list plus the built-in tables."""

    def __init__(self, op_list=None):
        self.defaults: dict[str, dict] = {}
        self.outputs: dict[str, list] = {}
        for op in (op_list.op if op_list is not None else []):
            self.defaults[op.name] = {a.name: a.default_value for a in op.attr if a.has("default_value")}
            self.outputs[op.name] = [(a.name, a.number_attr or a.type_list_attr or 1) for a in op.output_arg]

    def default(self, op: str, name: str):
        if op in self.defaults and name in self.defaults[op]:
            return self.defaults[op][name]
        return DEFAULTS.get(op, {}).get(name, _MISSING)

    def output_port(self, op: str, attrs: dict, arg: str, index: int, where: str,
                    functions=None) -> int:
        """Flat output number of ``node:arg:index`` for a node of type ``op``."""
        layout = self.outputs.get(op) or OUTPUTS.get(op)
        if layout is None and functions is not None and op in functions:
            layout = [(a.name, 1) for a in functions[op].signature.output_arg]
        if layout is None or len(layout) == 1:
            return index
        base = 0
        for name, rule in layout:
            if name == arg:
                return base + index
            base += _length(rule, attrs)
        raise GraphFormatError(f"{where}: op {op} has no output argument {arg!r}")


def _length(rule, attrs: dict) -> int:
    if rule == 1 or rule == "":
        return 1
    value = attrs.get(rule)
    if value is None:
        return 1
    if value.has("list"):
        return len(value.list.type)
    return int(value.i)


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()
MISSING = _MISSING
