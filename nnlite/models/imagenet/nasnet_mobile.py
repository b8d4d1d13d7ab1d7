"""NASNet-A Mobile (Zoph et al. 2018, "Learning Transferable Architectures for Scalable Image
Recognition", Fig. 4) as Keras applications builds it: NASNet (4 @ 1056).

224x224 RGB input with Keras 'tf' preprocessing (x / 127.5 - 1). A 3x3/2 stem conv, two reduction
cells, then three stacks of four normal cells with a reduction cell between stacks (44, 88, 176
filters per branch). Every cell reads two inputs: the previous cell's output ``x`` (here ``ip``) and
the one before it ``p`` (after a reduction cell, the reduction's own input: Keras's
``skip_reduction=False`` for Mobile); ``adjust`` first brings ``p`` to ``ip``'s size and width. A normal cell
concatenates ``p`` and five branch sums (6 x filters channels), a reduction cell four branch sums at
half the size (4 x filters). No conv has a bias; batch norms (epsilon 1e-3) are folded in at load.

Stride-2 layers pad explicitly like Keras's ``correct_pad``: (k//2 - 1, k//2) rows/columns on an even
input, (k//2, k//2) on an odd one. Keras leaves the ReLUs, paddings and some adds unnamed; nnlite
names them itself (``normal_relu_h_0``), with names that never clash with Keras's automatic ones.
The input is square, so a size is one number.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

from ... import ops
from ...graph import GraphBuilder, Model
from ...preprocess import tf_preprocess
from ._spec import classifier, fetched
from .keras_common import KerasLayers, keras_loader, split_batch_norm

NAME = "nasnet_mobile"
INPUT_SIZE = (224, 224)
EPSILON = 1e-3
PENULTIMATE_FILTERS = 1056
KERAS_PARAMS = 5_326_716   # keras.applications.NASNetMobile().count_params()


class T(NamedTuple):
    """A tensor of the graph: layer name, spatial size (square) and channel count."""
    name: str
    size: int
    channels: int


def build(w: KerasLayers) -> Model:
    """The graph of NASNet-A Mobile; its output is the 1000 logits (softmax is the classifier's job)."""
    g = GraphBuilder(NAME)
    image = g.input("input_layer", (*INPUT_SIZE, 3))                     # (224, 224, 3) in [-1, 1]
    stem = g.layer("conv2d", "stem_conv1", image, **w.conv_bn("stem_conv1", "stem_bn1", epsilon=EPSILON),
                   stride=2, covers=("stem_conv1", "stem_bn1"))
    x = T(stem, (INPUT_SIZE[0] - 3) // 2 + 1, 32)                        # (111, 111, 32)
    filters = PENULTIMATE_FILTERS // 24                                   # 44
    x, p = reduction_cell(g, w, x, None, filters // 4, "stem_1")         # (56, 56, 44)
    x, p = reduction_cell(g, w, x, p, filters // 2, "stem_2")            # (28, 28, 88)
    for i in range(0, 4):
        x, p = normal_cell(g, w, x, p, filters, str(i))                  # (28, 28, 264)
    x, p = reduction_cell(g, w, x, p, filters * 2, "reduce_4")           # (14, 14, 352)
    for i in range(5, 9):
        x, p = normal_cell(g, w, x, p, filters * 2, str(i))              # (14, 14, 528)
    x, p = reduction_cell(g, w, x, p, filters * 4, "reduce_8")           # (7, 7, 704)
    for i in range(9, 13):
        x, p = normal_cell(g, w, x, p, filters * 4, str(i))              # (7, 7, 1056)
    y = g.layer("relu", "final_relu", x.name)
    y = g.layer("global_avg_pool2d", "avg_pool", y)                      # (1056,)
    y = g.layer("dense", "predictions", y, **w.dense("predictions"),
                covers=("predictions (logits, before softmax)",))        # (1000,)
    w.require_all_used(NAME)
    return g.build([y])


def normal_cell(g: GraphBuilder, w: KerasLayers, ip: T, p: T | None, filters: int, bid: str) -> tuple[T, T]:
    """Normal cell: five branch pairs over h = conv1x1(relu(ip)) and the adjusted p, concatenated with p."""
    p = adjust(g, w, p, ip, filters, bid)
    h = squeeze(g, w, ip, filters, f"normal_conv_1_{bid}", f"normal_bn_1_{bid}", f"normal_relu_h_{bid}")
    x1 = add(g, f"normal_add_1_{bid}", sep_block(g, w, h, filters, 5, 1, f"normal_left1_{bid}"),
             sep_block(g, w, p, filters, 3, 1, f"normal_right1_{bid}"))
    x2 = add(g, f"normal_add_2_{bid}", sep_block(g, w, p, filters, 5, 1, f"normal_left2_{bid}"),
             sep_block(g, w, p, filters, 3, 1, f"normal_right2_{bid}"))
    x3 = add(g, f"normal_add_3_{bid}", avg_pool_same(g, h, f"normal_left3_{bid}"), p)
    x4 = add(g, f"normal_add_4_{bid}", avg_pool_same(g, p, f"normal_left4_{bid}"),
             avg_pool_same(g, p, f"normal_right4_{bid}"))
    x5 = add(g, f"normal_add_5_{bid}", sep_block(g, w, h, filters, 3, 1, f"normal_left5_{bid}"), h)
    out = g.layer("concat", f"normal_concat_{bid}", p.name, x1.name, x2.name, x3.name, x4.name, x5.name)
    return T(out, ip.size, p.channels + 5 * filters), ip


def reduction_cell(g: GraphBuilder, w: KerasLayers, ip: T, p: T | None, filters: int,
                   bid: str) -> tuple[T, T]:
    """Reduction cell: stride-2 branches over h and p; output at half the size, 4 x filters channels."""
    p = adjust(g, w, p, ip, filters, bid)
    h = squeeze(g, w, ip, filters, f"reduction_conv_1_{bid}", f"reduction_bn_1_{bid}", f"reduction_relu_h_{bid}")
    pad = correct_pad(h.size, 3)
    h3 = T(g.layer("zero_pad2d", f"reduction_pad_1_{bid}", h.name, padding=pad), h.size + sum(pad[:2]), filters)
    x1 = add(g, f"reduction_add_1_{bid}", sep_block(g, w, h, filters, 5, 2, f"reduction_left1_{bid}"),
             sep_block(g, w, p, filters, 7, 2, f"reduction_right1_{bid}"))
    x2 = add(g, f"reduction_add_2_{bid}", pool_valid(g, "max_pool2d", h3, f"reduction_left2_{bid}"),
             sep_block(g, w, p, filters, 7, 2, f"reduction_right2_{bid}"))
    x3 = add(g, f"reduction_add3_{bid}", pool_valid(g, "avg_pool2d", h3, f"reduction_left3_{bid}"),
             sep_block(g, w, p, filters, 5, 2, f"reduction_right3_{bid}"))
    x4 = add(g, f"reduction_add_block4_{bid}", x2, avg_pool_same(g, x1, f"reduction_left4_{bid}"))
    x5 = add(g, f"reduction_add4_{bid}", sep_block(g, w, x1, filters, 3, 1, f"reduction_left4_{bid}"),
             pool_valid(g, "max_pool2d", h3, f"reduction_right5_{bid}"))
    out = g.layer("concat", f"reduction_concat_{bid}", x2.name, x3.name, x4.name, x5.name)
    return T(out, x1.size, 4 * filters), ip


def adjust(g: GraphBuilder, w: KerasLayers, p: T | None, ip: T, filters: int, bid: str) -> T:
    """Bring the previous-previous output ``p`` to ``ip``'s size (factorized reduction: two 1x1 convs
    on the even and the odd pixels, concatenated) or to ``filters`` channels (1x1 projection)."""
    if p is None:                       # the first cell: both inputs are the stem
        return ip
    if p.size != ip.size:
        half = filters // 2
        relu = g.layer("relu", f"adjust_relu_1_{bid}", p.name)
        stats = w.batch_norm(f"adjust_bn_{bid}", 2 * half)   # one batch norm over both halves, split to fold
        p1 = g.layer("avg_pool2d", f"adjust_avg_pool_1_{bid}", relu, pool_size=1, stride=2)  # pixels (0, 0), (0, 2)...
        p1 = conv_folded(g, w, p1, f"adjust_conv_1_{bid}", split_batch_norm(stats, 0, half),
                         covers=(f"adjust_conv_1_{bid}", f"adjust_bn_{bid} channels 0:{half}"))
        p2 = g.layer("zero_pad2d", f"adjust_pad_2_{bid}", relu, padding=(0, 1, 0, 1))
        p2 = g.layer("crop2d", f"adjust_crop_2_{bid}", p2, cropping=(1, 0, 1, 0))        # shift by one pixel
        p2 = g.layer("avg_pool2d", f"adjust_avg_pool_2_{bid}", p2, pool_size=1, stride=2)  # pixels (1, 1), (1, 3)...
        p2 = conv_folded(g, w, p2, f"adjust_conv_2_{bid}", split_batch_norm(stats, half, 2 * half),
                         covers=(f"adjust_conv_2_{bid}", f"adjust_bn_{bid} channels {half}:{2 * half}"))
        out = g.layer("concat", f"adjust_concat_{bid}", p1, p2, covers=(f"adjust_bn_{bid}",))
        return T(out, (p.size + 1) // 2, 2 * half)
    if p.channels != filters:
        relu = g.layer("relu", f"adjust_relu_projection_{bid}", p.name)
        out = g.layer("conv2d", f"adjust_conv_projection_{bid}", relu,
                      **w.conv_bn(f"adjust_conv_projection_{bid}", f"adjust_bn_{bid}", epsilon=EPSILON),
                      covers=(f"adjust_conv_projection_{bid}", f"adjust_bn_{bid}"))
        return T(out, p.size, filters)
    return p


def sep_block(g: GraphBuilder, w: KerasLayers, x: T, filters: int, k: int, stride: int, bid: str) -> T:
    """relu -> k x k separable conv (stride) -> bn -> relu -> k x k separable conv -> bn."""
    y = g.layer("relu", f"separable_relu_1_{bid}", x.name)
    if stride == 2:
        padding, covers, size = correct_pad(x.size, k), (f"separable_conv_1_pad_{bid}",), (x.size + 1) // 2
    else:
        padding, covers, size = "same", (), x.size
    y = g.layer("separable_conv2d", f"separable_conv_1_{bid}", y,
                **w.separable_bn(f"separable_conv_1_{bid}", f"separable_conv_1_bn_{bid}", epsilon=EPSILON),
                stride=stride, padding=padding,
                covers=covers + (f"separable_conv_1_{bid}", f"separable_conv_1_bn_{bid}"))
    y = g.layer("relu", f"separable_relu_2_{bid}", y)
    y = g.layer("separable_conv2d", f"separable_conv_2_{bid}", y,
                **w.separable_bn(f"separable_conv_2_{bid}", f"separable_conv_2_bn_{bid}", epsilon=EPSILON),
                padding="same", covers=(f"separable_conv_2_{bid}", f"separable_conv_2_bn_{bid}"))
    return T(y, size, filters)


def squeeze(g: GraphBuilder, w: KerasLayers, x: T, filters: int, conv: str, bn: str, relu_name: str) -> T:
    """relu -> 1x1 conv -> bn: the cell's ``h`` input at ``filters`` channels."""
    y = g.layer("relu", relu_name, x.name)
    y = g.layer("conv2d", conv, y, **w.conv_bn(conv, bn, epsilon=EPSILON), covers=(conv, bn))
    return T(y, x.size, filters)


def conv_folded(g: GraphBuilder, w: KerasLayers, x: str, conv: str, stats, covers) -> str:
    """A bias-free 1x1 conv with the given batch-norm statistics folded in."""
    kernel, bias = ops.fold_batch_norm(w.conv_bn(conv, None, epsilon=EPSILON)["kernel"], None, *stats,
                                       epsilon=EPSILON)
    return g.layer("conv2d", conv, x, kernel=kernel, bias=bias, covers=covers)


def add(g: GraphBuilder, name: str, a: T, b: T) -> T:
    return T(g.layer("add", name, a.name, b.name), a.size, a.channels)


def avg_pool_same(g: GraphBuilder, x: T, name: str) -> T:
    """3x3/1 average pool, 'same' (TF divides by the count of real pixels under the window)."""
    return T(g.layer("avg_pool2d", name, x.name, pool_size=3, stride=1, padding="same"), x.size, x.channels)


def pool_valid(g: GraphBuilder, op: str, x: T, name: str) -> T:
    """3x3/2 pool over an already zero-padded input (the zeros count, in the max and in the mean)."""
    return T(g.layer(op, name, x.name, pool_size=3, stride=2), (x.size - 3) // 2 + 1, x.channels)


def correct_pad(size: int, k: int) -> tuple[int, int, int, int]:
    """Keras's padding before a stride-2 'valid' layer: (top, bottom, left, right)."""
    before = k // 2 - (1 if size % 2 == 0 else 0)
    return (before, k // 2, before, k // 2)


load_model = keras_loader(NAME, build)


SPEC = classifier(NAME, load_model, INPUT_SIZE, output="logits", params=5_326_716,
                  **fetched(NAME, "NASNet-mobile.h5"),
                  description="NASNet-A Mobile (4 @ 1056), Keras applications weights (nnlite fetch nasnet_mobile)",
                  preprocess=partial(tf_preprocess, INPUT_SIZE),
                  preprocessing="tf: resize to 224x224 (bilinear), x/127.5 - 1")
