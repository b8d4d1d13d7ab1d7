"""Xception (Chollet 2017, "Xception: Deep Learning with Depthwise Separable Convolutions") as Keras
applications builds it.

299x299 RGB input with Keras 'tf' preprocessing (x / 127.5 - 1). Entry flow: two plain 3x3 convs, then
three blocks of two separable convs and a 3x3/2 max pool, each added to a strided 1x1 conv of its
input. Middle flow: eight residual blocks of three ReLU-separable-conv-BN steps at 728 channels. Exit
flow: one more pooled block (728 -> 1024), two separable convs (1536, 2048), global average, dense.
No conv has a bias; every conv is followed by a batch norm (epsilon 1e-3), folded in at load time.

Layer names are Keras's (``block4_sepconv2``, ``block4_sepconv2_bn``). The four shortcut convs and
their batch norms have no name in Keras's source, so files hold them under automatic names
(``conv2d``/``conv2d_1``... or ``conv2d_1``... depending on the saving session); they are taken in
the file's order, which is the model's order.
"""

from __future__ import annotations

from functools import partial

from ...errors import WeightsError
from ...graph import GraphBuilder, Model
from ...preprocess import tf_preprocess
from ._spec import classifier, fetched
from .keras_common import KerasLayers, keras_loader

NAME = "xception"
INPUT_SIZE = (299, 299)
EPSILON = 1e-3
KERAS_PARAMS = 22_910_480   # keras.applications.Xception().count_params()


def build(w: KerasLayers) -> Model:
    """The graph of Xception; its output is the 1000 logits (softmax is the classifier's job)."""
    shortcuts = shortcut_layers(w)                    # 4 x (conv name, bn name), in model order
    g = GraphBuilder(NAME)
    x = g.input("input_layer", (*INPUT_SIZE, 3))      # (299, 299, 3) in [-1, 1]

    # entry flow
    x = g.layer("conv2d", "block1_conv1", x, **w.conv_bn("block1_conv1", "block1_conv1_bn", epsilon=EPSILON),
                stride=2, activation="relu", covers=("block1_conv1", "block1_conv1_bn", "block1_conv1_act"))
    x = g.layer("conv2d", "block1_conv2", x, **w.conv_bn("block1_conv2", "block1_conv2_bn", epsilon=EPSILON),
                activation="relu", covers=("block1_conv2", "block1_conv2_bn", "block1_conv2_act"))  # (147, 147, 64)
    x = pooled_block(g, w, x, "block2", shortcuts[0], relu_first=False)   # (74, 74, 128)
    x = pooled_block(g, w, x, "block3", shortcuts[1])                     # (37, 37, 256)
    x = pooled_block(g, w, x, "block4", shortcuts[2])                     # (19, 19, 728)

    # middle flow: x + (relu -> sepconv -> bn) x 3, eight times
    for block in range(5, 13):
        p = f"block{block}"
        y = g.layer("relu", f"{p}_sepconv1_act", x)
        y = sepconv_bn(g, w, y, f"{p}_sepconv1", activation=f"{p}_sepconv2_act")
        y = sepconv_bn(g, w, y, f"{p}_sepconv2", activation=f"{p}_sepconv3_act")
        y = sepconv_bn(g, w, y, f"{p}_sepconv3")
        x = g.layer("add", f"{p}_add", y, x)                                          # (19, 19, 728)

    # exit flow
    x = pooled_block(g, w, x, "block13", shortcuts[3])    # sepconvs 728, 1024 -> (10, 10, 1024)
    x = sepconv_bn(g, w, x, "block14_sepconv1", activation="block14_sepconv1_act")    # (10, 10, 1536)
    x = sepconv_bn(g, w, x, "block14_sepconv2", activation="block14_sepconv2_act")    # (10, 10, 2048)
    x = g.layer("global_avg_pool2d", "avg_pool", x)                                   # (2048,)
    x = g.layer("dense", "predictions", x, **w.dense("predictions"),
                covers=("predictions (logits, before softmax)",))                     # (1000,)
    w.require_all_used(NAME)
    return g.build([x])


def pooled_block(g: GraphBuilder, w: KerasLayers, x: str, prefix: str, shortcut: tuple[str, str],
                 relu_first: bool = True) -> str:
    """[relu] -> sepconv -> bn -> relu -> sepconv -> bn -> 3x3/2 max pool, plus a 1x1/2 conv of x."""
    conv, bn = shortcut
    residual = g.layer("conv2d", conv, x, **w.conv_bn(conv, bn, epsilon=EPSILON), stride=2, padding="same",
                       covers=(conv, bn))                                 # (ceil(h/2), ceil(w/2), cout)
    y = g.layer("relu", f"{prefix}_sepconv1_act", x) if relu_first else x
    y = sepconv_bn(g, w, y, f"{prefix}_sepconv1", activation=f"{prefix}_sepconv2_act")
    y = sepconv_bn(g, w, y, f"{prefix}_sepconv2")
    y = g.layer("max_pool2d", f"{prefix}_pool", y, pool_size=3, stride=2, padding="same")
    return g.layer("add", f"{prefix}_add", y, residual)


def sepconv_bn(g: GraphBuilder, w: KerasLayers, x: str, name: str, activation: str | None = None) -> str:
    """3x3 'same' separable conv with its batch norm ``<name>_bn`` folded in; ``activation`` names
    the Keras ReLU layer that follows, fused here."""
    covers = (name, f"{name}_bn") + ((activation,) if activation else ())
    return g.layer("separable_conv2d", name, x, **w.separable_bn(name, f"{name}_bn", epsilon=EPSILON),
                   padding="same", activation="relu" if activation else None, covers=covers)


def shortcut_layers(w: KerasLayers) -> list[tuple[str, str]]:
    """The unnamed 1x1 shortcut convs and their batch norms, paired in the file's order."""
    convs, bns = w.unnamed("conv2d"), w.unnamed("batch_normalization")
    if len(convs) != 4 or len(bns) != 4:
        raise WeightsError(f"{w.source}: Xception has 4 unnamed shortcut convs and batch norms "
                           f"(conv2d*, batch_normalization*), found {convs} and {bns}")
    return list(zip(convs, bns))


load_model = keras_loader(NAME, build)


SPEC = classifier(NAME, load_model, INPUT_SIZE, output="logits", params=22_910_480,
                  **fetched(NAME, "xception_weights_tf_dim_ordering_tf_kernels.h5"),
                  description="Xception, Keras applications weights (nnlite fetch xception)",
                  preprocess=partial(tf_preprocess, INPUT_SIZE),
                  preprocessing="tf: resize to 299x299 (bilinear), x/127.5 - 1")
