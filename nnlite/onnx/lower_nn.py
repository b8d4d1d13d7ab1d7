"""Lowerings of the network ops: convolution, batch norm, pooling, resize, dense, activations, softmax.

Weights are converted here, once: ONNX kernels (cout, cin/group, kh, kw) become nnlite's
(kh, kw, cin, cout), or (kh, kw, c, multiplier) for depthwise; a BatchNormalization right after a
convolution or dense layer is folded into its weights.
"""

from __future__ import annotations

import math

import numpy as np

from .. import ops
from . import arrays
from .lower import STORED_AXIS, lowering
from .resize import resize_nhwc


def _pads(ctx, a: dict, in_hw, kernel_hw, strides, dilations, ceil_mode: bool = False):
    """nnlite padding for a conv/pool: "valid", "same" or (top, bottom, left, right)."""
    auto = a.get("auto_pad", "NOTSET")
    if auto == "VALID":
        pads = (0, 0, 0, 0)
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = []
        for n, k, s, d in zip(in_hw, kernel_hw, strides, dilations):
            out = -(-n // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
            small, big = total // 2, total - total // 2
            pads.append((small, big) if auto == "SAME_UPPER" else (big, small))
        pads = (pads[0][0], pads[0][1], pads[1][0], pads[1][1])
    elif auto == "NOTSET":
        p = a.get("pads", [0, 0, 0, 0])
        if len(p) != 4:
            raise ctx.fail(f"pads {p} are not 2-D")
        pads = (p[0], p[2], p[1], p[3])
    else:
        raise ctx.fail(f"auto_pad {auto!r}", unsupported=False)
    if any(not 0 <= p <= MAX_PAD for p in pads) or any(not 1 <= s <= MAX_PAD for s in (*strides, *dilations)):
        raise ctx.fail(f"pads {list(pads)}, strides {list(strides)} or dilations {list(dilations)} out of range",
                       unsupported=False)
    if ceil_mode:  # extra bottom/right cells so the last, partial window exists (PyTorch's rule)
        pads = list(pads)
        for i, (n, k, s) in enumerate(zip(in_hw, kernel_hw, strides)):
            lo, hi = pads[2 * i], pads[2 * i + 1]
            out = -(-(n + lo + hi - k) // s) + 1
            if (out - 1) * s >= n + lo:
                out -= 1
            pads[2 * i + 1] = max(hi, (out - 1) * s + k - n - lo)
        pads = tuple(pads)
    return pads


MAX_PAD = 1 << 12  # far beyond any real network; a damaged file cannot ask for a gigantic padded copy


def grouped_conv2d(x, kernel, bias=None, *, groups, stride, padding, dilation):
    """A convolution whose channels split into ``groups`` independent convolutions.
    x (N, H, W, groups*cin_g), kernel (kh, kw, cin_g, cout) with cout split evenly across groups."""
    cin_g, cout_g = kernel.shape[2], kernel.shape[3] // groups
    parts = [ops.conv2d(np.ascontiguousarray(x[..., g * cin_g:(g + 1) * cin_g]),
                        np.ascontiguousarray(kernel[..., g * cout_g:(g + 1) * cout_g]),
                        None if bias is None else bias[g * cout_g:(g + 1) * cout_g],
                        stride=stride, padding=padding, dilation=dilation) for g in range(groups)]
    return np.concatenate(parts, axis=-1)


@lowering("Conv")
def conv(ctx, node, a):
    x = ctx.nhwc(node.input[0])
    w = ctx.const(node, 1, required=True).astype(np.float32)  # (cout, cin/group, kh, kw)
    b = ctx.const(node, 2)
    if w.ndim != 4:
        raise ctx.fail(f"{w.ndim - 2}-D convolution (only 2-D is supported)")
    group = a.get("group", 1)
    cout, cin_g, kh, kw = w.shape
    strides, dil = tuple(a.get("strides", (1, 1))), tuple(a.get("dilations", (1, 1)))
    v = ctx.values[node.input[0]]
    pads = _pads(ctx, a, v.shape[2:], (kh, kw), strides, dil)
    extra = ctx.pending_pads.get(node.input[0])
    if extra is not None:  # a zero Pad merged into this convolution (see lower_array._merge_into_conv)
        pads = tuple(p + e for p, e in zip(pads, extra))
    bias = None if b is None else b.astype(np.float32).reshape(-1)
    cin = v.shape[1]
    if cin != cin_g * group or cout % group:
        raise ctx.fail(f"weights {w.shape} with group {group} do not fit {cin} input channels", False)
    kwargs = dict(stride=strides, padding=pads, dilation=dil)
    if bias is not None:
        kwargs["bias"] = bias
    if group == 1:
        ctx.emit("conv2d", [x], node.output[0], nhwc=True, kernel=np.ascontiguousarray(w.transpose(2, 3, 1, 0)),
                 **kwargs)
    elif cin_g == 1:
        mult = cout // group
        k = np.ascontiguousarray(w.reshape(group, mult, kh, kw).transpose(2, 3, 0, 1))  # (kh, kw, c, mult)
        ctx.emit("depthwise_conv2d", [x], node.output[0], nhwc=True, kernel=k, **kwargs)
    else:
        ctx.emit(grouped_conv2d, [x], node.output[0], nhwc=True,
                 kernel=np.ascontiguousarray(w.transpose(2, 3, 1, 0)), groups=group, **kwargs)


def _fold_target(ctx, tensor: str):
    """The conv/dense layer producing ``tensor`` if a following affine op may be folded into it."""
    v = ctx.values[tensor]
    if v.layer is None or ctx.readers.get(tensor, 0) != 1 or tensor in ctx.outputs:
        return None
    layer = ctx.g._layers.get(v.layer)
    if layer is None or layer.op not in ("conv2d", "depthwise_conv2d", "dense") or layer.attrs.get("activation"):
        return None
    return layer


def fold_affine(ctx, node, tensor: str, c: np.ndarray, kind: str) -> bool:
    """Fold ``tensor * c``, ``tensor + c`` or ``tensor - c`` (c a per-channel or scalar constant) into the
    conv/dense layer producing ``tensor`` (tf2onnx writes batch norm this way). False when it cannot."""
    layer = _fold_target(ctx, tensor)
    v = ctx.values[tensor]
    if layer is None or c.dtype.kind != "f" or not (v.nhwc or len(v.shape) == 2):
        return False
    channels = v.shape[1]
    if c.size == 1:
        vec = np.full(channels, float(c.reshape(-1)[0]))
    elif v.nhwc and c.ndim >= 3 and c.shape[-3:] == (channels, 1, 1) and c.size == channels:
        vec = c.reshape(-1).astype(np.float64)
    elif not v.nhwc and c.shape[-1:] == (channels,) and c.size == channels:
        vec = c.reshape(-1).astype(np.float64)
    else:
        return False
    if c.ndim > len(v.shape):
        return False
    kernel = layer.weights["kernel"].astype(np.float64)
    bias = layer.weights.get("bias", np.zeros(channels)).astype(np.float64)
    if kind == "Mul":
        kk = vec.reshape(kernel.shape[2], kernel.shape[3]) if layer.op == "depthwise_conv2d" else vec
        layer.weights["kernel"], bias = (kernel * kk).astype(np.float32), bias * vec
        probe = ctx.probes[layer.name].astype(np.float64) * vec
    else:
        shift = vec if kind == "Add" else -vec
        bias = bias + shift
        probe = ctx.probes[layer.name].astype(np.float64) + shift
    layer.weights["bias"] = bias.astype(np.float32)
    ctx.probes[layer.name] = probe.astype(np.float32)
    layer.covers = (layer.name, node.output[0])
    ctx.alias(node.output[0], tensor)
    return True


@lowering("BatchNormalization")
def batch_norm(ctx, node, a):
    eps = a.get("epsilon", 1e-5)
    scale, beta, mean, var = (ctx.const(node, i, required=True).astype(np.float64) for i in range(1, 5))
    k = scale / np.sqrt(var + eps)
    shift = beta - mean * k
    x = node.input[0]
    v = ctx.values[x]
    layer = _fold_target(ctx, x)
    if layer is not None and (v.nhwc or len(v.shape) == 2):
        w = layer.weights["kernel"].astype(np.float64)
        kk = k.reshape(w.shape[2], w.shape[3]) if layer.op == "depthwise_conv2d" else k
        layer.weights["kernel"] = (w * kk).astype(np.float32)
        b = layer.weights.get("bias", np.zeros(k.shape)).astype(np.float64)
        layer.weights["bias"] = (b * k + shift).astype(np.float32)
        layer.covers = (layer.name, node.output[0])
        probe = ctx.probes[layer.name].astype(np.float64)
        ctx.probes[layer.name] = (probe * k + shift).astype(np.float32)
        ctx.alias(node.output[0], x)
        return
    args = [scale.astype(np.float32), beta.astype(np.float32), mean.astype(np.float32), var.astype(np.float32)]
    if len(v.shape) == 4 or len(v.shape) == 2:
        src = ctx.nhwc(x) if len(v.shape) == 4 else ctx.plain(x)
        ctx.emit("batch_norm", [src], node.output[0], nhwc=len(v.shape) == 4, gamma=args[0], beta=args[1],
                 mean=args[2], variance=args[3], epsilon=eps)
    else:
        ctx.emit(arrays.batch_norm, [ctx.plain(x)], node.output[0], nhwc=False, scale=args[0], bias=args[1],
                 mean=args[2], var=args[3], epsilon=eps)


@lowering("MaxPool", "AveragePool")
def pool(ctx, node, a):
    if len(node.output) > 1 and node.output[1]:
        raise ctx.fail("MaxPool's indices output")
    x = ctx.nhwc(node.input[0])
    v = ctx.values[node.input[0]]
    k = tuple(a["kernel_shape"])
    strides = tuple(a.get("strides", (1, 1)))
    if len(k) != 2:
        raise ctx.fail(f"{len(k)}-D pooling")
    if any(d != 1 for d in a.get("dilations", (1, 1))):
        raise ctx.fail("dilated pooling")
    pads = _pads(ctx, a, v.shape[2:], k, strides, (1, 1), bool(a.get("ceil_mode", 0)))
    if node.op_type == "MaxPool":
        ctx.emit("max_pool2d", [x], node.output[0], nhwc=True, pool_size=k, stride=strides, padding=pads)
    elif a.get("count_include_pad", 0) and any(pads):  # zeros count in the divisor: pad them in first
        padded = ctx.emit("zero_pad2d", [x], None, nhwc=True, name=f"{node.output[0]}:pad", padding=pads)
        ctx.emit("avg_pool2d", [padded], node.output[0], nhwc=True, pool_size=k, stride=strides, padding="valid")
    else:
        ctx.emit("avg_pool2d", [x], node.output[0], nhwc=True, pool_size=k, stride=strides, padding=pads)


def global_max_pool2d(x):
    return x.max(axis=(1, 2), keepdims=True)


@lowering("GlobalAveragePool", "GlobalMaxPool")
def global_pool(ctx, node, a):
    x = ctx.nhwc(node.input[0])
    if node.op_type == "GlobalAveragePool":
        ctx.emit("global_avg_pool2d", [x], node.output[0], nhwc=True, keepdims=True)
    else:
        ctx.emit(global_max_pool2d, [x], node.output[0], nhwc=True)


@lowering("Resize", "Upsample")
def resize(ctx, node, a):
    v = ctx.values[node.input[0]]
    if len(v.shape) != 4:
        raise ctx.fail(f"resize of a {len(v.shape)}-D tensor")
    legacy = node.op_type == "Upsample" or ctx.opset < 11
    scales = a.get("scales")
    sizes = None
    if node.op_type == "Upsample" and scales is None:
        scales = ctx.const(node, 1, required=True)
    elif node.op_type == "Resize":
        if ctx.opset < 11:
            scales = ctx.const(node, 1, required=True)
        else:
            scales = ctx.const(node, 2)
            sizes = ctx.const(node, 3)
    n, c, h, w = v.shape
    if sizes is not None and sizes.size:
        sizes = [int(s) for s in sizes]
        if sizes[0] != n or sizes[1] != c:
            raise ctx.fail("resizing the batch or channel axis")
        oh, ow = sizes[2], sizes[3]
        sh, sw = np.float32(oh) / np.float32(h), np.float32(ow) / np.float32(w)
    elif scales is not None and np.size(scales) == 4:
        scales = np.asarray(scales, np.float32)
        if scales[0] != 1 or scales[1] != 1:
            raise ctx.fail("resizing the batch or channel axis")
        sh, sw = scales[2], scales[3]
        oh, ow = int(math.floor(h * float(sh))), int(math.floor(w * float(sw)))
    else:
        raise ctx.fail("Resize needs 4 scales or 4 sizes", unsupported=False)
    if not (0 < oh <= 1 << 14 and 0 < ow <= 1 << 14):
        raise ctx.fail(f"output size {oh}x{ow} out of range", unsupported=False)
    mode = a.get("mode", "nearest")
    if mode not in ("nearest", "linear", "bilinear"):
        raise ctx.fail(f"resize mode {mode!r}")
    coord = "asymmetric" if legacy else a.get("coordinate_transformation_mode", "half_pixel")
    nearest = "floor" if legacy else a.get("nearest_mode", "round_prefer_floor")
    ctx.emit(resize_nhwc, [ctx.nhwc(node.input[0])], node.output[0], nhwc=True, size=(oh, ow),
             scale=(float(sh), float(sw)), mode="nearest" if mode == "nearest" else "linear",
             coordinate_mode=coord, nearest_mode=nearest)


@lowering("Gemm")
def gemm(ctx, node, a):
    alpha, beta = a.get("alpha", 1.0), a.get("beta", 1.0)
    bv = ctx.values[node.input[1]]
    cv = ctx.value(node.input[2]) if len(node.input) > 2 else None
    if a.get("transA", 0) or bv.layer is not None or (cv is not None and cv.layer is not None):
        ctx.generic(arrays.gemm, node, "Gemm", alpha=alpha, beta=beta, trans_a=bool(a.get("transA", 0)),
                    trans_b=bool(a.get("transB", 0)))
        return
    w = bv.const.astype(np.float32)
    kernel = np.ascontiguousarray(w.T if a.get("transB", 0) else w) * np.float32(alpha)  # (in, out)
    kw = {}
    if cv is not None:
        c = cv.const.astype(np.float32) * np.float32(beta)
        kw["bias"] = np.ascontiguousarray(np.broadcast_to(c.reshape(-1) if c.size > 1 else c, (kernel.shape[1],)))
    ctx.emit("dense", [ctx.same_order(node.input[0])], node.output[0], nhwc=False, kernel=kernel, **kw)


@lowering("MatMul")
def matmul(ctx, node, a):
    bv = ctx.values[node.input[1]]
    xv = ctx.values[node.input[0]]
    if bv.layer is None and bv.const.ndim == 2 and xv.layer is not None and not xv.nhwc:
        ctx.emit("dense", [xv.layer], node.output[0], nhwc=False,
                 kernel=np.ascontiguousarray(bv.const.astype(np.float32)))
        return
    ctx.generic(arrays.matmul, node, "MatMul")


def _activation(ctx, node, op: str, **kw):
    v = ctx.values[node.input[0]]
    if v.layer is None or not np.issubdtype(np.dtype(ctx.probes[v.layer].dtype), np.floating):
        return False
    ctx.emit(op, [v.layer], node.output[0], nhwc=v.nhwc, **kw)
    return True


@lowering("Relu", "Sigmoid")
def relu_sigmoid(ctx, node, a):
    if not _activation(ctx, node, node.op_type.lower()):
        ctx.generic(arrays.unary, node, node.op_type, layout="any", kind=node.op_type)


@lowering("LeakyRelu")
def leaky_relu(ctx, node, a):
    alpha = a.get("alpha", 0.01)
    if not _activation(ctx, node, "leaky_relu", alpha=alpha):
        ctx.generic(arrays.leaky_relu, node, "LeakyRelu", layout="any", alpha=alpha)


@lowering("Clip")
def clip(ctx, node, a):
    if ctx.opset < 11:
        lo, hi = a.get("min"), a.get("max")
        ins = node.input[:1]
    else:
        lo, hi = ctx.const(node, 1), ctx.const(node, 2)
        lo = None if lo is None else float(lo)
        hi = None if hi is None else float(hi)
        ins = node.input[:1]
    if lo == 0 and (hi == 6 or hi is None) and _activation(ctx, node, "relu6" if hi == 6 else "relu"):
        return
    ctx.generic(arrays.clip, node, "Clip", ins=list(ins), layout="any", lo=lo, hi=hi)


@lowering("PRelu")
def prelu(ctx, node, a):
    v, sv = ctx.values[node.input[0]], ctx.values[node.input[1]]
    if v.layer is not None and v.nhwc and sv.layer is None and sv.const.size == v.shape[1] and (
            sv.const.ndim <= 1 or sv.const.shape[-3:] == (v.shape[1], 1, 1)):
        from .prelu import prelu_channels
        slope = np.ascontiguousarray(sv.const.reshape(-1).astype(np.float32))  # (C,)
        ctx.emit(prelu_channels, [v.layer], node.output[0], nhwc=True, slope=slope)
        return
    ctx.generic(arrays.prelu, node, "PRelu", layout="any")


@lowering("HardSigmoid")
def hard_sigmoid(ctx, node, a):
    ctx.generic(arrays.hard_sigmoid, node, "HardSigmoid", layout="any", alpha=a.get("alpha", 0.2),
                beta=a.get("beta", 0.5))


@lowering("HardSwish")
def hard_swish(ctx, node, a):
    ctx.generic(arrays.hard_swish, node, "HardSwish", layout="any")


def softmax_from(x, *, axis, log=False):
    """opset < 13: softmax over every axis from ``axis`` on, taken together."""
    flat = x.reshape(int(np.prod(x.shape[:axis])), -1)
    return arrays.softmax(flat, axis=-1, log=log).reshape(x.shape)


@lowering("Softmax", "LogSoftmax")
def softmax(ctx, node, a):
    v = ctx.values[node.input[0]]
    rank = len(v.shape)
    axis = a.get("axis", -1 if ctx.opset >= 13 else 1)
    axis = axis + rank if axis < 0 else axis
    log = node.op_type == "LogSoftmax"
    if ctx.opset < 13 and axis != rank - 1:
        ctx.generic(softmax_from, node, node.op_type, axis=axis, log=log)
    elif v.nhwc:
        ctx.emit(arrays.softmax, [v.layer], node.output[0], nhwc=True, axis=STORED_AXIS[axis], log=log)
    else:
        ctx.generic(arrays.softmax, node, node.op_type, axis=axis, log=log)


@lowering("Dropout", "Identity")
def identity(ctx, node, a):
    ctx.alias(node.output[0], node.input[0])
