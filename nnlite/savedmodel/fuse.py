"""Lowering step: fold constant arithmetic that follows a convolution into its weights.

A ``Conv2D`` / ``DepthwiseConv2dNative`` with a constant kernel becomes one ``_FusedConv`` node, lowered
to a :func:`nnlite.ops.conv2d` / :func:`nnlite.ops.depthwise_conv2d` layer (:mod:`.lower`), absorbing,
while each intermediate has a single consumer and is not fetched:

* a preceding zero ``Pad`` on H/W into explicit padding (Keras ``ZeroPadding2D`` + 'valid' conv);
* ``BiasAdd`` / ``Add`` / ``AddV2`` / ``Sub`` of a per-channel constant into the bias;
* ``Mul`` by a per-channel constant into kernel and bias (how Keras 3 exports batch norm once its
  statistics are folded: ``x * (gamma / sqrt(var + eps)) + (beta - mean * gamma / sqrt(var + eps))``);
* an inference ``FusedBatchNorm(V3)`` with constant parameters (TF1 graphs), via ``ops.fold_batch_norm``.

A 'valid' ``MaxPool`` after a zero ``Pad`` of a ReLU's output takes the pad as its explicit padding
(``_MaxPool``; see :func:`_fuse_max_pool`). ``MatMul`` by a constant matrix becomes ``_FusedDense``
(``ops.dense``) with the same bias rules. The absorbed nodes are the layer's ``covers`` (its output is the
last one's). These rewrite weights, so they
happen here, once; a following activation stays a layer of its own, which the graph's execution plan
(:mod:`nnlite.plan`) runs inside the convolution as for every model.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from .graphdef import Node
from .tf_ops import conv_geometry

BIAS_OPS = {"BiasAdd", "Add", "AddV2"}


def fuse(graph, dyn: dict, protected: set):
    """Rewrite ``dyn`` (name -> PNode, in dependency order) in place; returns ``resolve(ref)`` that maps
    a ref of a removed node's output onto the fused node that now produces it."""
    consumers: dict = {}
    for p in dyn.values():
        for r in p.ins:
            if r[0] == "d":
                consumers.setdefault(r[1], []).append(p.name)
    alias: dict = {}
    ctx = (graph, dyn, protected, consumers, alias)
    for p in list(dyn.values()):
        if p.name not in dyn:
            continue
        if p.op in ("Conv2D", "DepthwiseConv2dNative"):
            _fuse_conv(ctx, p)
        elif p.op == "MatMul":
            _fuse_dense(ctx, p)
        elif p.op == "MaxPool":
            _fuse_max_pool(ctx, p)

    def resolve(ref):
        while ref[0] == "d" and ref[1] in alias:
            ref = ("d", alias[ref[1]])
        return ref

    for p in dyn.values():
        p.ins = [resolve(r) for r in p.ins]
    return resolve


def _sole_consumer(ctx, ep):
    graph, dyn, protected, consumers, _ = ctx
    users = consumers.get(ep, [])
    if ep in protected or len(users) != 1 or users[0] not in dyn:
        return None
    return dyn[users[0]]


def _const(r, dtype=np.float32):
    if r[0] != "k" or not isinstance(r[1], np.ndarray) or r[1].dtype != dtype:
        return None
    return r[1]


def _channel_vector(v, channels: int):
    """A constant that broadcasts over NHWC only along channels -> (C,) vector, else None."""
    if v is None or v.ndim > 4:
        return None
    if v.size == 1:
        return np.full(channels, v.reshape(()), np.float32)
    if v.size == channels and v.shape[-1] == channels:
        return v.reshape(channels).astype(np.float32)
    return None


def _fuse_conv(ctx, p) -> None:
    graph, dyn, protected, consumers, alias = ctx
    kernel = _const(p.ins[1])
    if kernel is None or kernel.ndim != 4:
        return
    spec = {"kernel": np.array(kernel), "bias": None, "depthwise": p.op == "DepthwiseConv2dNative",
            "covers": [p.name], **conv_geometry(graph, p.node)}
    x = p.ins[0]
    if spec["padding"] == "valid":
        x = _absorb_pad(ctx, p, x, spec)
    channels = kernel.shape[2] * kernel.shape[3] if spec["depthwise"] else kernel.shape[3]
    _absorb_chain(ctx, p, spec, channels)
    dyn[p.name] = type(p)(p.name, "_FusedConv", Node(p.name, "_FusedConv", [], [], {"_spec": spec}), [x])


def _zero_hw_pad(ctx, p, x):
    """(Pad node, (top, bottom, left, right)) when ``x`` is the output of a zero ``Pad`` of H and W only
    that ``p`` alone reads, else None."""
    dyn = ctx[1]
    pad = dyn.get(x[1][0]) if x[0] == "d" else None
    if pad is None or pad.op != "Pad" or x[1][1] != 0 or _sole_consumer(ctx, x[1]) is not p:
        return None
    amounts = np.asarray(pad.ins[1][1]) if pad.ins[1][0] == "k" else None
    if amounts is None or amounts.shape != (4, 2) or amounts[0].any() or amounts[3].any():
        return None
    return pad, tuple(int(v) for v in (*amounts[1], *amounts[2]))


def _absorb_pad(ctx, p, x, spec: dict):
    """Fold a zero H/W ``Pad`` before ``p`` into ``spec``'s explicit padding; returns p's new input."""
    found = _zero_hw_pad(ctx, p, x)
    if found is None:
        return x
    pad, spec["padding"] = found
    spec["covers"].insert(0, pad.name)
    del ctx[1][pad.name]
    return pad.ins[0]


NONNEGATIVE = ("Relu", "Relu6")


def _fuse_max_pool(ctx, p) -> None:
    """Keras pads with zeros before a 'valid' max pool (ResNet's stem); the pool's own padding is -inf. They
    agree when the padded tensor is never negative (a ReLU's output) and every window keeps a real pixel
    (pad < window), so the pad becomes the pool's explicit padding and the conv before it can run fused
    with the pool (nnlite.plan's ConvPoolStep)."""
    graph, dyn = ctx[0], ctx[1]
    size, stride = graph.attr(p.node, "ksize"), graph.attr(p.node, "strides")
    if (graph.attr(p.node, "padding") != b"VALID" or graph.attr(p.node, "data_format", b"NHWC") != b"NHWC"
            or len(size) != 4 or size[0] != 1 or size[3] != 1 or len(stride) != 4 or stride[0] != 1
            or stride[3] != 1):
        return
    found = _zero_hw_pad(ctx, p, p.ins[0])
    if found is None:
        return
    pad, amounts = found
    src = pad.ins[0]
    producer = dyn.get(src[1][0]) if src[0] == "d" else None
    if producer is None or producer.op not in NONNEGATIVE or max(amounts) >= min(size[1], size[2]):
        return
    spec = {"pool_size": (int(size[1]), int(size[2])), "stride": (int(stride[1]), int(stride[2])),
            "padding": "valid", "covers": [p.name]}
    x = _absorb_pad(ctx, p, p.ins[0], spec)
    dyn[p.name] = type(p)(p.name, "_MaxPool", Node(p.name, "_MaxPool", [], [], {"_spec": spec}), [x])


def _fuse_dense(ctx, p) -> None:
    graph = ctx[0]
    w = _const(p.ins[1])
    if w is None or w.ndim != 2 or graph.attr(p.node, "transpose_a"):
        return
    w = np.array(w.T if graph.attr(p.node, "transpose_b") else w)
    spec = {"kernel": w, "bias": None, "depthwise": False, "covers": [p.name]}
    _absorb_chain(ctx, p, spec, w.shape[1])
    ctx[1][p.name] = type(p)(p.name, "_FusedDense", Node(p.name, "_FusedDense", [], [], {"_spec": spec}),
                             [p.ins[0]])


def _absorb_chain(ctx, p, spec: dict, channels: int) -> None:
    graph, dyn, protected, consumers, alias = ctx
    cur = (p.name, 0)
    while True:
        c = _sole_consumer(ctx, cur)
        if c is None or not _absorb(graph, c, cur, spec, channels, consumers, protected):
            return
        spec["covers"].append(c.name)
        alias[(c.name, 0)] = (p.name, 0)
        del dyn[c.name]
        cur = (c.name, 0)


def _absorb(graph, c, cur, spec: dict, channels: int, consumers, protected) -> bool:
    """Fold consumer ``c`` of ``cur`` into ``spec``; False when it does not fit."""
    others = [r for r in c.ins if not _is(r, cur)]
    if len(others) != len(c.ins) - 1:
        return False
    if c.op in BIAS_OPS | {"Sub", "Mul"} and len(others) == 1:
        if c.op in ("BiasAdd", "Sub") and not _is(c.ins[0], cur):
            return False
        v = _channel_vector(_const(others[0]), channels)
        if v is None:
            return False
        if c.op == "Mul":
            _scale(spec, v)
        else:
            bias = spec["bias"] if spec["bias"] is not None else np.zeros(channels, np.float32)
            spec["bias"] = bias - v if c.op == "Sub" else bias + v
        return True
    if c.op.startswith("FusedBatchNorm") and _is(c.ins[0], cur) and spec["kernel"].ndim == 4 \
            and not graph.attr(c.node, "is_training"):
        params = [_const(r) for r in c.ins[1:5]]
        side_used = any(consumers.get((c.name, i)) or (c.name, i) in protected for i in range(1, 6))
        if any(v is None for v in params) or side_used:
            return False
        gamma, beta, mean, var = params
        spec["kernel"], spec["bias"] = ops.fold_batch_norm(
            spec["kernel"], spec["bias"], gamma, beta, mean, var,
            epsilon=float(graph.attr(c.node, "epsilon")), depthwise=spec["depthwise"])
        return True
    return False


def _is(ref, ep) -> bool:
    return ref[0] == "d" and ref[1] == ep


def _scale(spec: dict, v: np.ndarray) -> None:
    k = spec["kernel"]
    if spec["depthwise"]:  # (kh, kw, cin, mult): output channel c * mult + m
        spec["kernel"] = (k.reshape(k.shape[0], k.shape[1], -1) * v).reshape(k.shape).astype(np.float32)
    else:
        spec["kernel"] = (k * v).astype(np.float32)  # last axis is the output channel (conv and dense)
    if spec["bias"] is not None:
        spec["bias"] = (spec["bias"] * v).astype(np.float32)
