"""ResNet50 (He et al. 2015, "Deep Residual Learning for Image Recognition") as Keras applications builds it.

224x224 RGB input with Keras 'caffe' preprocessing (BGR, minus the ImageNet mean pixel, no scaling).
A 7x7/2 stem and 3x3/2 max pool, then four stages of bottleneck blocks (3, 4, 6, 3 blocks; 64, 128,
256, 512 bottleneck filters, 4x wider outputs). A stage's first block projects its shortcut with a
1x1 conv and, from stage 3 on, strides by 2 in its first 1x1 conv (the original v1 placement).
Every conv has a bias and a batch norm (epsilon 1.001e-5), folded together at load time.

Layer names are Keras's (``conv2_block1_1_conv``). The original Keras-2 file names the same layers
after the Caffe model (``res2a_branch2a``, ``bn2a_branch2a``, ``fc1000``); both are accepted.
"""

from __future__ import annotations

from functools import partial

from ...graph import GraphBuilder, Model
from ...preprocess import caffe_preprocess
from ._spec import classifier, fetched
from .keras_common import KerasLayers, keras_loader

NAME = "resnet50"
INPUT_SIZE = (224, 224)
EPSILON = 1.001e-5                                # Keras ResNet's batch-norm epsilon
STAGES = ((2, 64, 3), (3, 128, 4), (4, 256, 6), (5, 512, 3))   # (stage, bottleneck filters, blocks)
KERAS_PARAMS = 25_636_712                         # keras.applications.ResNet50().count_params()


def build(w: KerasLayers) -> Model:
    """The graph of ResNet50; its output is the 1000 logits (softmax is the classifier's job)."""
    g = GraphBuilder(NAME)
    x = g.input("input_layer", (*INPUT_SIZE, 3))                           # (224, 224, 3) BGR - mean
    x = g.layer("conv2d", "conv1_conv", x, **w.conv_bn("conv1_conv", "conv1_bn", epsilon=EPSILON),
                stride=2, padding=(3, 3, 3, 3), activation="relu",
                covers=("conv1_pad", "conv1_conv", "conv1_bn", "conv1_relu"))   # (112, 112, 64)
    x = g.layer("max_pool2d", "pool1_pool", x, pool_size=3, stride=2, padding=(1, 1, 1, 1),
                covers=("pool1_pad", "pool1_pool"))   # (56, 56, 64); Keras pads with zeros, the op with -inf:
    # the same maximum, because the input is a ReLU output (>= 0) and every window holds a real pixel
    for stage, filters, blocks in STAGES:
        for block in range(1, blocks + 1):
            stride = 2 if block == 1 and stage > 2 else 1
            x = bottleneck(g, w, x, f"conv{stage}_block{block}", filters, stride, project=block == 1)
    x = g.layer("global_avg_pool2d", "avg_pool", x)                    # (2048,)
    x = g.layer("dense", "predictions", x, **w.dense("predictions"),
                covers=("predictions (logits, before softmax)",))      # (1000,)
    w.require_all_used(NAME)
    return g.build([x])


def bottleneck(g: GraphBuilder, w: KerasLayers, x: str, name: str, filters: int, stride: int,
               project: bool) -> str:
    """1x1 (stride) -> 3x3 -> 1x1 (4x filters), added to the shortcut, then ReLU."""
    if project:
        shortcut = g.layer("conv2d", f"{name}_0_conv", x, **w.conv_bn(f"{name}_0_conv", f"{name}_0_bn",
                                                                      epsilon=EPSILON),
                           stride=stride, covers=(f"{name}_0_conv", f"{name}_0_bn"))   # (h, w, 4 * filters)
    else:
        shortcut = x
    y = g.layer("conv2d", f"{name}_1_conv", x, **w.conv_bn(f"{name}_1_conv", f"{name}_1_bn", epsilon=EPSILON),
                stride=stride, activation="relu", covers=(f"{name}_1_conv", f"{name}_1_bn", f"{name}_1_relu"))
    y = g.layer("conv2d", f"{name}_2_conv", y, **w.conv_bn(f"{name}_2_conv", f"{name}_2_bn", epsilon=EPSILON),
                padding="same", activation="relu", covers=(f"{name}_2_conv", f"{name}_2_bn", f"{name}_2_relu"))
    y = g.layer("conv2d", f"{name}_3_conv", y, **w.conv_bn(f"{name}_3_conv", f"{name}_3_bn", epsilon=EPSILON),
                covers=(f"{name}_3_conv", f"{name}_3_bn"))              # (h, w, 4 * filters)
    y = g.layer("add", f"{name}_add", shortcut, y)
    return g.layer("relu", f"{name}_out", y)


def legacy_names() -> dict[str, str]:
    """Keras name -> name in the original Keras-2 ResNet50 file (Caffe's: stage 2 block 1 is ``2a``)."""
    names = {"conv1_conv": "conv1", "conv1_bn": "bn_conv1", "predictions": "fc1000"}
    for stage, _, blocks in STAGES:
        for block in range(1, blocks + 1):
            old = f"{stage}{'abcdef'[block - 1]}"
            parts = (("0", "1"), ("1", "2a"), ("2", "2b"), ("3", "2c"))   # "0": the projection shortcut
            for part, branch in (parts if block == 1 else parts[1:]):
                names[f"conv{stage}_block{block}_{part}_conv"] = f"res{old}_branch{branch}"
                names[f"conv{stage}_block{block}_{part}_bn"] = f"bn{old}_branch{branch}"
    return names


load_model = keras_loader(NAME, build, aliases=legacy_names)


SPEC = classifier(NAME, load_model, INPUT_SIZE, output="logits", params=25_636_712,
                  **fetched(NAME, "resnet50_weights_tf_dim_ordering_tf_kernels.h5"),
                  description="ResNet50 (v1), Keras applications weights (nnlite fetch resnet50)",
                  preprocess=partial(caffe_preprocess, INPUT_SIZE),
                  preprocessing="caffe: resize to 224x224 (bilinear), BGR, minus mean (103.939, 116.779, 123.68)")
