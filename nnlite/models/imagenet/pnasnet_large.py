"""PNASNet-5 Large (Liu et al. 2018, "Progressive Neural Architecture Search", Fig. 1) as TF-slim builds
it, with the weights of the TF-Hub module ``google/imagenet/pnasnet_large/classification`` read by their
TF-slim variable names: every layer here is named after the slim scope that holds its weights.

Input: 331x331 RGB in [0, 1] (the TF-Hub image convention); the module scales it to [-1, 1] first.
Then a 3x3/2 'valid' stem conv (96 filters), two stem cells and twelve cells, all the same PNASNet-5 cell;
the stem cells and cells 4 and 8 run it at stride 2 (reduction). Per-branch filters: 54 and 108 in the stem
cells, then 216, 432 (from cell 4) and 864 (from cell 8); a cell outputs 5 x filters channels.

A cell reads two inputs: the previous cell's output (``1x1`` + ``beginning_bn`` make it ``h0``) and the one
before it (``h1``: brought to ``h0``'s size and width by a factorized reduction ``path1_conv``/``path2_conv``
/``final_path_bn`` when the sizes differ, else by ``prev_1x1``/``prev_bn``; the first stem cell reads the
stem conv twice). Five combinations, each the sum of a ``left`` and a ``right`` operation::

    comb_iter_0 = sep5x5(h1) + maxpool3x3(h1)          comb_iter_3 = sep3x3(comb_iter_2) + maxpool3x3(h0)
    comb_iter_1 = sep7x7(h0) + maxpool3x3(h0)          comb_iter_4 = sep3x3(h1) + h0
    comb_iter_2 = sep5x5(h0) + sep3x3(h0)              output = concat(comb_iter_0..4)

A ``sepKxK`` is relu -> separable conv -> batch norm, twice (``separable_KxK_1``/``bn_sep_KxK_1``, ``_2``);
at stride 2 only the first is strided, and comb_iter_3's left (reading a sum, not a cell input) never is.
At stride 2 ``h0`` on the identity path becomes relu -> 1x1/2 conv -> ``bn_1``; a max pool on a 96-channel
input (first stem cell) is followed by ``1x1`` + ``bn_1`` to 54 channels. Padding is TensorFlow 'SAME'
throughout (the extra row/column at the bottom/right), so odd and even inputs pad differently at stride 2.
Head: relu, global average pool, ``final_layer/FC``: 1001 logits, index 0 = background. No conv has a bias;
batch norms (epsilon 1e-3) are folded in at load. ReLUs, pools, sums and concatenations have no weights;
nnlite names them after the scope they run in (``cell_0/comb_iter_1/right/max_pool``).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ...graph import GraphBuilder, Model
from ...preprocess import unit_preprocess
from ._spec import classifier
from .slim_weights import SlimWeights

NAME = "pnasnet_large"
INPUT_SIZE = (331, 331)
NUM_CLASSES = 1001            # index 0 is TF-slim's background class
EPSILON = 1e-3
STEM_FILTERS = 96             # int(32 * stem_multiplier 3.0)
FILTERS = 216                 # num_conv_filters; x 1/4, 1/2 in the stem cells, x 2 at each reduction
REDUCTION_CELLS = (4, 8)      # of 12 cells (num_reduction_layers = 2)
TRAINING_ONLY = ("aux_7", "global_step")   # the auxiliary head (built for training only), the step counter
MODULE_PARAMS = 86_238_977    # elements of the inference variables (batch-norm statistics included, as TF counts)


class T(NamedTuple):
    """A tensor of the graph: layer name, spatial size (square) and channel count."""
    name: str
    size: int
    channels: int


def build(w: SlimWeights, input_size: int = INPUT_SIZE[0]) -> Model:
    """The graph of PNASNet-5 Large at ``input_size`` x ``input_size``; its output is the 1001 logits."""
    g = GraphBuilder(NAME)
    images = g.input("images", (input_size, input_size, 3))               # (331, 331, 3) in [0, 1]
    x = g.layer(to_symmetric_range, "input_scaling", images)               # (331, 331, 3) in [-1, 1]
    x = g.layer("conv2d", "conv0", x, **w.conv_bn("conv0", "conv0_bn", 3, 3, STEM_FILTERS, epsilon=EPSILON),
                stride=2, padding="valid", covers=("conv0", "conv0_bn"))
    net = T(x, (input_size - 3) // 2 + 1, STEM_FILTERS)                    # (165, 165, 96)
    prev = None
    for i, filters in enumerate((FILTERS // 4, FILTERS // 2)):
        net, prev = cell(g, w, net, prev, filters, 2, f"cell_stem_{i}"), net   # (83, 83, 270), (42, 42, 540)
    filters = FILTERS
    for i in range(12):
        stride = 2 if i in REDUCTION_CELLS else 1
        filters *= stride
        net, prev = cell(g, w, net, prev, filters, stride, f"cell_{i}"), net   # ... (11, 11, 4320)
    y = g.layer("relu", "final_layer/relu", net.name)
    y = g.layer("global_avg_pool2d", "final_layer/global_pool", y)         # (4320,)
    y = g.layer("dense", "final_layer/FC", y, **w.dense("final_layer/FC", net.channels, NUM_CLASSES),
                covers=("final_layer/FC (logits)",))                        # (1001,)
    w.require_all_used(NAME, ignore=TRAINING_ONLY)
    return g.build([y])


def cell(g: GraphBuilder, w: SlimWeights, net: T, prev: T | None, filters: int, stride: int, scope: str) -> T:
    """One PNASNet-5 cell over the last output ``net`` and the one before it ``prev``."""
    h1 = reduce_prev_layer(g, w, prev, net, filters, scope) if prev is not None else net
    h0 = relu_conv_bn(g, w, net, filters, 1, f"{scope}/1x1", f"{scope}/beginning_bn")
    s = f"{scope}/comb_iter"
    c0 = combine(g, f"{s}_0", sep(g, w, h1, filters, 5, stride, f"{s}_0/left"),
                 max_pool(g, w, h1, filters, stride, f"{s}_0/right"))
    c1 = combine(g, f"{s}_1", sep(g, w, h0, filters, 7, stride, f"{s}_1/left"),
                 max_pool(g, w, h0, filters, stride, f"{s}_1/right"))
    c2 = combine(g, f"{s}_2", sep(g, w, h0, filters, 5, stride, f"{s}_2/left"),
                 sep(g, w, h0, filters, 3, stride, f"{s}_2/right"))
    c3 = combine(g, f"{s}_3", sep(g, w, c2, filters, 3, 1, f"{s}_3/left"),
                 max_pool(g, w, h0, filters, stride, f"{s}_3/right"))
    right4 = h0 if stride == 1 else relu_conv_bn(g, w, h0, filters, 2, f"{s}_4/right/1x1", f"{s}_4/right/bn_1")
    c4 = combine(g, f"{s}_4", sep(g, w, h1, filters, 3, stride, f"{s}_4/left"), right4)
    name = g.layer("concat", f"{scope}/cell_output", c0.name, c1.name, c2.name, c3.name, c4.name)
    return T(name, c0.size, 5 * filters)


def reduce_prev_layer(g: GraphBuilder, w: SlimWeights, prev: T, net: T, filters: int, scope: str) -> T:
    """Bring ``prev`` to ``net``'s size and ``filters`` channels: a factorized reduction (two 1x1 convs, on the
    even pixels and on the odd ones, concatenated; one batch norm over both) or a 1x1 projection."""
    if prev.size == net.size:
        return relu_conv_bn(g, w, prev, filters, 1, f"{scope}/prev_1x1", f"{scope}/prev_bn")
    half = filters // 2
    x = g.layer("relu", f"{scope}/prev_relu", prev.name)
    stats = w.batch_norm(f"{scope}/final_path_bn", filters)        # folded share by share into the two convs
    p1 = g.layer("avg_pool2d", f"{scope}/path1_avg_pool", x, pool_size=1, stride=2)   # pixels (0, 0), (0, 2), ...
    p1 = g.layer("conv2d", f"{scope}/path1_conv", p1,
                 **w.conv_bn(f"{scope}/path1_conv", "", 1, prev.channels, half, epsilon=EPSILON,
                             stats=[s[:half] for s in stats]),
                 covers=(f"{scope}/path1_conv", f"{scope}/final_path_bn channels 0:{half}"))
    p2 = g.layer("zero_pad2d", f"{scope}/path2_pad", x, padding=(0, 1, 0, 1))
    p2 = g.layer("crop2d", f"{scope}/path2_shift", p2, cropping=(1, 0, 1, 0))          # shifted by one pixel
    p2 = g.layer("avg_pool2d", f"{scope}/path2_avg_pool", p2, pool_size=1, stride=2)  # pixels (1, 1), (1, 3), ...
    p2 = g.layer("conv2d", f"{scope}/path2_conv", p2,
                 **w.conv_bn(f"{scope}/path2_conv", "", 1, prev.channels, filters - half, epsilon=EPSILON,
                             stats=[s[half:] for s in stats]),
                 covers=(f"{scope}/path2_conv", f"{scope}/final_path_bn channels {half}:{filters}"))
    out = g.layer("concat", f"{scope}/final_path", p1, p2, covers=(f"{scope}/final_path_bn",))
    return T(out, (prev.size + 1) // 2, filters)


def sep(g: GraphBuilder, w: SlimWeights, x: T, filters: int, k: int, stride: int, scope: str) -> T:
    """Two times relu -> k x k separable conv -> batch norm; only the first one strided."""
    y, cin = x.name, x.channels
    for n in (1, 2):
        conv, bn = f"{scope}/separable_{k}x{k}_{n}", f"{scope}/bn_sep_{k}x{k}_{n}"
        y = g.layer("relu", f"{scope}/relu_{n}", y)
        y = g.layer("separable_conv2d", conv, y, **w.separable_bn(conv, bn, k, cin, filters, epsilon=EPSILON),
                    stride=stride if n == 1 else 1, padding="same", covers=(conv, bn))
        cin = filters
    return T(y, x.size if stride == 1 else (x.size + 1) // 2, filters)


def max_pool(g: GraphBuilder, w: SlimWeights, x: T, filters: int, stride: int, scope: str) -> T:
    """3x3 max pool, 'same' (padding never wins the max); then 1x1 + bn_1 when the width differs."""
    y = T(g.layer("max_pool2d", f"{scope}/max_pool", x.name, pool_size=3, stride=stride, padding="same"),
          x.size if stride == 1 else (x.size + 1) // 2, x.channels)
    if x.channels == filters:
        return y
    name = g.layer("conv2d", f"{scope}/1x1", y.name,
                   **w.conv_bn(f"{scope}/1x1", f"{scope}/bn_1", 1, x.channels, filters, epsilon=EPSILON),
                   covers=(f"{scope}/1x1", f"{scope}/bn_1"))
    return T(name, y.size, filters)


def relu_conv_bn(g: GraphBuilder, w: SlimWeights, x: T, filters: int, stride: int, conv: str, bn: str) -> T:
    """relu -> 1x1 conv (stride) -> batch norm."""
    y = g.layer("relu", f"{conv}_relu", x.name)
    y = g.layer("conv2d", conv, y, **w.conv_bn(conv, bn, 1, x.channels, filters, epsilon=EPSILON),
                stride=stride, padding="same", covers=(conv, bn))
    return T(y, x.size if stride == 1 else (x.size + 1) // 2, filters)


def combine(g: GraphBuilder, scope: str, left: T, right: T) -> T:
    return T(g.layer("add", f"{scope}/combine", left.name, right.name), left.size, left.channels)


def to_symmetric_range(x: np.ndarray) -> np.ndarray:
    """[0, 1] -> [-1, 1], as the TF-Hub module does before its first convolution."""
    return (x - np.float32(0.5)) * np.float32(2.0)


def load_model(path: str | Path | None = None, input_size: int = INPUT_SIZE[0]) -> Model:
    """PNASNet-5 Large with the weights of a TF-Hub module directory, its ``variables/`` folder or a TF-slim
    checkpoint prefix (default: the module ``nnlite fetch pnasnet_large`` saved)."""
    from ...fetch import module_dir
    return build(SlimWeights.from_path(path if path is not None else module_dir(NAME)), input_size)



def _module_present() -> bool:
    from ...fetch import cached_weights
    return cached_weights(NAME) is not None


SPEC = classifier(NAME, load_model, INPUT_SIZE, output="logits", params=86_238_977, background_class=True,
                  weights="the TF-Hub module google/imagenet/pnasnet_large/classification/2, its variables/ "
                          "bundle (nnlite fetch pnasnet_large)",
                  weights_present=_module_present,
                  description="PNASNet-5 Large, TF-Hub module google/imagenet/pnasnet_large/classification/2 "
                              "(nnlite fetch pnasnet_large)",
                  preprocess=partial(unit_preprocess, INPUT_SIZE),
                  preprocessing="tf-hub: resize to 331x331 (bilinear), x/255 (the module scales to [-1, 1] itself)")
