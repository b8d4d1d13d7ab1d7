"""TensorFlow ops -> callables on NumPy arrays, built once per node.

``KERNELS[op](graph, node)`` reads the node's attributes (defaults filled by ``Graph.attr``) and returns
``fn(*inputs) -> tuple of outputs``. Spatial and neural ops go to :mod:`nnlite.ops` (NHWC float32); shape
plumbing and elementwise arithmetic are single NumPy calls with TensorFlow's broadcasting rules.
Control flow (Switch/Merge), placeholders and variables are handled by the planner, not here.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..errors import GraphFormatError, UnsupportedOpError
from .tensors import dtype_of

KERNELS: dict = {}


def kernel(*names):
    def register(maker):
        for n in names:
            KERNELS[n] = maker
        return maker
    return register


def _nhwc(g, node) -> None:
    fmt = g.attr(node, "data_format", b"NHWC")
    if fmt not in (b"NHWC", "NHWC"):
        raise UnsupportedOpError(f"{g.path}: node {node.name!r} ({node.op}) uses data_format "
                                 f"{fmt.decode(errors='replace')}; nnlite runs NHWC graphs only")


def _hw(values: list, what: str, node) -> tuple[int, int]:
    if len(values) != 4 or values[0] != 1 or values[3] != 1:
        raise UnsupportedOpError(f"node {node.name!r} ({node.op}): {what} {values} (only H/W may differ from 1)")
    return int(values[1]), int(values[2])


def conv_geometry(g, node) -> dict:
    """stride / dilation / padding of a Conv2D-like node in nnlite.ops terms."""
    _nhwc(g, node)
    pad = g.attr(node, "padding")
    if pad == b"EXPLICIT":
        p = g.attr(node, "explicit_paddings")
        padding = (p[2], p[3], p[4], p[5])
    else:
        padding = pad.decode(errors="replace").lower()
    return {"stride": _hw(g.attr(node, "strides"), "strides", node),
            "dilation": _hw(g.attr(node, "dilations"), "dilations", node), "padding": padding}


@kernel("Conv2D")
def _conv(g, node):
    geo = conv_geometry(g, node)
    return lambda x, k: (ops.conv2d(x, k, **geo),)


@kernel("DepthwiseConv2dNative")
def _depthwise(g, node):
    geo = conv_geometry(g, node)
    return lambda x, k: (ops.depthwise_conv2d(x, k, **geo),)


def _pool(fn):
    def make(g, node):
        _nhwc(g, node)
        size = _hw(g.attr(node, "ksize"), "ksize", node)
        stride = _hw(g.attr(node, "strides"), "strides", node)
        padding = g.attr(node, "padding").decode(errors="replace").lower()
        return lambda x: (fn(x, pool_size=size, stride=stride, padding=padding),)
    return make


kernel("MaxPool")(_pool(ops.max_pool2d))
kernel("AvgPool")(_pool(ops.avg_pool2d))


@kernel("BiasAdd", "BiasAddV1")
def _bias_add(g, node):
    _nhwc(g, node)
    return lambda x, b: (ops.bias_add(x, b),)


@kernel("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
def _fused_bn(g, node):
    _nhwc(g, node)
    eps = float(g.attr(node, "epsilon"))
    n_out = 6 if node.op == "FusedBatchNormV3" else 5
    training = bool(g.attr(node, "is_training"))

    def run(x, scale, offset, mean, var):
        reported = var
        if training:  # batch statistics, as a training-mode graph computes them
            mean = x.mean(axis=(0, 1, 2), dtype=np.float64).astype(np.float32)
            var = x.var(axis=(0, 1, 2), dtype=np.float64).astype(np.float32)
            n = x.size // max(x.shape[-1], 1)  # TF reports the unbiased variance (for moving averages)
            reported = (var * (n / (n - 1)) if n > 1 else var).astype(np.float32)
        y = ops.batch_norm(x, scale, offset, mean, var, epsilon=eps)
        return (y, mean, reported) + (np.zeros_like(mean),) * (n_out - 3)
    return run


@kernel("MatMul")
def _matmul(g, node):
    ta, tb = bool(g.attr(node, "transpose_a")), bool(g.attr(node, "transpose_b"))
    return lambda a, b: (np.matmul(a.T if ta else a, b.T if tb else b),)


def _unary(fn):
    return lambda g, node: (lambda x: (fn(x),))


for _name, _fn in {
    "Relu": ops.relu, "Relu6": ops.relu6, "Sigmoid": ops.sigmoid,
    "Tanh": np.tanh, "Exp": np.exp, "Log": np.log, "Neg": np.negative, "Abs": np.abs,
    "Sqrt": np.sqrt, "Square": np.square, "Reciprocal": np.reciprocal, "Floor": np.floor,
    "Rsqrt": lambda x: (1.0 / np.sqrt(x)).astype(x.dtype),
    "Elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))).astype(x.dtype),
    "Softplus": lambda x: np.logaddexp(x, 0).astype(x.dtype),
    "LogicalNot": np.logical_not, "ZerosLike": np.zeros_like, "OnesLike": np.ones_like,
}.items():
    kernel(_name)(_unary(_fn))


@kernel("LeakyRelu")
def _leaky(g, node):
    alpha = float(g.attr(node, "alpha"))
    return lambda x: (ops.leaky_relu(x, alpha=alpha),)


@kernel("Softmax")
def _softmax(g, node):
    return lambda x: (ops.softmax(x, axis=-1),)


def _binary(fn):
    return lambda g, node: (lambda a, b: (_same_kind(fn(a, b), a, b),))


def _same_kind(y, a, b):
    """NumPy promotes float32 with a float64 scalar array to float64; TF keeps the operand dtype."""
    if isinstance(y, np.ndarray) and y.dtype != a.dtype and a.dtype == b.dtype:
        return y.astype(a.dtype)
    return y


def _floordiv(a, b):
    return np.floor_divide(a, b)


for _name, _fn in {
    "Add": np.add, "AddV2": np.add, "Sub": np.subtract, "Mul": np.multiply, "RealDiv": np.true_divide,
    "Div": lambda a, b: np.floor_divide(a, b) if a.dtype.kind in "iu" else np.true_divide(a, b),
    "FloorDiv": _floordiv, "FloorMod": np.mod, "Maximum": np.maximum, "Minimum": np.minimum,
    "Pow": np.power, "SquaredDifference": lambda a, b: np.square(a - b),
    "Greater": np.greater, "GreaterEqual": np.greater_equal, "Less": np.less, "LessEqual": np.less_equal,
    "Equal": np.equal, "NotEqual": np.not_equal, "LogicalAnd": np.logical_and, "LogicalOr": np.logical_or,
}.items():
    kernel(_name)(_binary(_fn))


@kernel("AddN")
def _addn(g, node):
    return lambda *xs: (np.sum(np.stack(xs), axis=0).astype(xs[0].dtype),)


@kernel("Select", "SelectV2")
def _select(g, node):
    def run(cond, a, b):
        if node.op == "Select" and cond.ndim == 1 and a.ndim > 1:  # TF1 Select picks whole rows
            cond = cond.reshape((-1,) + (1,) * (a.ndim - 1))
        return (np.where(cond, a, b),)
    return run


def _reduce(fn):
    def make(g, node):
        keep = bool(g.attr(node, "keep_dims"))

        def run(x, axes):
            axis = tuple(int(a) for a in np.ravel(axes))
            if fn is None:  # Mean: float accumulation as nnlite.ops.mean does
                y = ops.mean(x, axis=axis, keepdims=keep) if x.dtype == np.float32 else \
                    x.mean(axis=axis, keepdims=keep).astype(x.dtype)
                return (y,)
            return (np.asarray(fn(x, axis=axis, keepdims=keep)).astype(x.dtype),)
        return run
    return make


kernel("Mean")(_reduce(None))
kernel("Sum")(_reduce(np.sum))
kernel("Max")(_reduce(np.max))
kernel("Min")(_reduce(np.min))
kernel("Prod")(_reduce(np.prod))
kernel("All")(_reduce(np.all))
kernel("Any")(_reduce(np.any))


@kernel("ArgMax", "ArgMin")
def _argmax(g, node):
    fn = np.argmax if node.op == "ArgMax" else np.argmin
    out = dtype_of(g.attr(node, "output_type"))
    return lambda x, axis: (fn(x, axis=int(axis)).astype(out),)


def _resize(fn):
    def make(g, node):
        hp, ac = bool(g.attr(node, "half_pixel_centers")), bool(g.attr(node, "align_corners"))
        return lambda x, size: (fn(x, size=(int(size[0]), int(size[1])), half_pixel_centers=hp,
                                   align_corners=ac),)
    return make


kernel("ResizeBilinear")(_resize(ops.resize_bilinear))
kernel("ResizeNearestNeighbor")(_resize(ops.resize_nearest))


@kernel("Identity", "Snapshot", "StopGradient", "PreventGradient", "EnsureShape", "CheckNumerics")
def _identity(g, node):
    return lambda x, *rest: (x,)


@kernel("IdentityN", "_Outputs")
def _identity_n(g, node):
    return lambda *xs: xs


@kernel("NonMaxSuppressionV2", "NonMaxSuppressionV3")
def _nms(g, node):
    """TF boxes are corner pairs [y1, x1, y2, x2] (either order); greedy, IoU > threshold suppresses,
    scores must be strictly above score_threshold: the rules of :func:`nnlite.boxes.nms`."""
    from ..boxes import nms

    def run(boxes, scores, max_size, iou, score=None):
        y1, x1, y2, x2 = (boxes[:, i].astype(np.float64) for i in range(4))
        xywh = np.stack([np.minimum(x1, x2), np.minimum(y1, y2), np.abs(x2 - x1), np.abs(y2 - y1)], axis=1)
        kept = nms(xywh, scores, iou_threshold=float(iou), max_results=int(max_size),
                   score_threshold=None if score is None else float(score))
        return (np.asarray(kept, np.int32),)
    return run


@kernel("ReadVariableOp")
def _read_variable(g, node):  # a handle that reached run time (through a fed Switch): a VarRef
    return lambda handle: (handle.value(),)


@kernel("Switch", "Merge")
def _control(g, node):  # the planner runs these itself (see lower.control_flow)
    def run(*xs):
        raise GraphFormatError(f"node {node.name!r}: {node.op} reached the kernel table")
    return run


@kernel("NoOp")
def _noop(g, node):
    return lambda *xs: ()


def make_kernel(g, node):
    maker = KERNELS.get(node.op)
    if maker is None:
        raise GraphFormatError(f"{g.path}: op {node.op} (node {node.name!r}) is not supported")
    try:
        return maker(g, node)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        # building a kernel only reads the node's attributes: these mean they are malformed (bad UTF-8 ...)
        raise GraphFormatError(f"{g.path}: node {node.name!r} ({node.op}) has malformed attributes "
                               f"({type(exc).__name__}: {exc})") from None


from . import tf_array_ops  # noqa: E402,F401  (registers the shape/array ops into KERNELS)
