"""The four networks of matterport's Mask R-CNN, as nnlite graphs whose layer names are the ``.h5`` keys.

- ``backbone``: ResNet-101 (matterport's Caffe-style names ``res4b_branch2a``; the stride sits in the first
  1x1 conv of a stage) and the feature pyramid (``fpn_c5p5`` ... ``fpn_p5``; P6 subsamples P5 by 2);
- ``rpn_model``: the region proposal head shared by P2..P6 (3 anchors per position);
- ``fpn_classifier``: one ROI's 7x7x256 features -> class probabilities and per-class box deltas (the
  7x7 "valid" conv is the first 1024-wide fully connected layer);
- ``fpn_mask``: one detection's 14x14x256 features -> 28x28 mask probabilities for every class.

Every batch norm (Keras's default epsilon 1e-3, frozen in inference) is folded into the conv before it.
The dynamic parts between these networks (anchors, proposals, ROIAlign, detections) are in
:mod:`nnlite.models.maskrcnn.detect`.
"""

from __future__ import annotations

import numpy as np

from ...graph import GraphBuilder, Model
from ...ops.detection import conv2d_transpose
from ..imagenet.keras_common import KerasLayers

EPSILON = 1e-3                              # Keras BatchNormalization default, as matterport's BatchNorm
STAGES = ((2, 64, 3), (3, 128, 4), (4, 256, 23), (5, 512, 3))   # ResNet-101: (stage, filters, blocks)
PYRAMID = 256                               # TOP_DOWN_PYRAMID_SIZE
ANCHORS_PER_LOCATION = 3                    # RPN_ANCHOR_RATIOS 0.5, 1, 2
NUM_CLASSES = 81                            # COCO's 80 + background
POOL_SIZE, MASK_POOL_SIZE, FC_SIZE = 7, 14, 1024


class AnySizeModel(Model):
    """A graph taking any image size (a multiple of 64); its layer table (``nnlite inspect``) is computed
    at ``table_shape``, matterport's default 1024 x 1024."""
    table_shape = (1024, 1024, 3)

    def _example_input(self, input_shape):
        return super()._example_input(input_shape or self.table_shape)


def upsample2x(x: np.ndarray) -> np.ndarray:
    """Keras ``UpSampling2D((2, 2))``, nearest: every pixel repeated into a 2x2 block."""
    return np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)


def build_backbone(w: KerasLayers) -> Model:
    """Image (H, W, 3), H and W multiples of 64 -> P2 (H/4) ... P6 (H/64), each 256 channels."""
    g = GraphBuilder("mask_rcnn_coco")
    x = g.input("input_image", (None, None, 3))                     # RGB - mean pixel
    x = g.layer("conv2d", "conv1", x, **w.conv_bn("conv1", "bn_conv1", epsilon=EPSILON), stride=2,
                padding=(3, 3, 3, 3), activation="relu", covers=("zero_padding2d", "conv1", "bn_conv1"))
    x = g.layer("max_pool2d", "pool1", x, pool_size=3, stride=2, padding="same")   # C1 (H/4)
    c = {}
    for stage, filters, blocks in STAGES:
        for block in range(blocks):
            stride = 2 if block == 0 and stage > 2 else 1
            x = residual_block(g, w, x, f"{stage}{chr(97 + block)}", filters, stride, project=block == 0)
        c[stage] = x                                                # C2 .. C5
    p5 = g.layer("conv2d", "fpn_c5p5", c[5], **w.conv_bn("fpn_c5p5", None, epsilon=EPSILON))
    p4 = g.layer("add", "fpn_p4add", g.layer(upsample2x, "fpn_p5upsampled", p5),
                 g.layer("conv2d", "fpn_c4p4", c[4], **w.conv_bn("fpn_c4p4", None, epsilon=EPSILON)))
    p3 = g.layer("add", "fpn_p3add", g.layer(upsample2x, "fpn_p4upsampled", p4),
                 g.layer("conv2d", "fpn_c3p3", c[3], **w.conv_bn("fpn_c3p3", None, epsilon=EPSILON)))
    p2 = g.layer("add", "fpn_p2add", g.layer(upsample2x, "fpn_p3upsampled", p3),
                 g.layer("conv2d", "fpn_c2p2", c[2], **w.conv_bn("fpn_c2p2", None, epsilon=EPSILON)))
    outs = [g.layer("conv2d", f"fpn_p{i}", p, **w.conv_bn(f"fpn_p{i}", None, epsilon=EPSILON), padding="same")
            for i, p in ((2, p2), (3, p3), (4, p4), (5, p5))]
    outs.append(g.layer("max_pool2d", "fpn_p6", outs[-1], pool_size=1, stride=2))   # P6: every other pixel
    built = g.build(outs)
    return AnySizeModel(built.name, built.inputs, built.layers, built.outputs)


def residual_block(g: GraphBuilder, w: KerasLayers, x: str, block: str, filters: int, stride: int,
                   project: bool) -> str:
    """matterport's conv_block (project=True) / identity_block: 1x1 (stride) -> 3x3 -> 1x1 (4x filters)."""
    conv = lambda part: w.conv_bn(f"res{block}_branch{part}", f"bn{block}_branch{part}", epsilon=EPSILON)
    shortcut = x
    if project:
        shortcut = g.layer("conv2d", f"res{block}_branch1", x, **conv("1"), stride=stride,
                           covers=(f"res{block}_branch1", f"bn{block}_branch1"))        # (h, w, 4 * filters)
    y = g.layer("conv2d", f"res{block}_branch2a", x, **conv("2a"), stride=stride, activation="relu",
                covers=(f"res{block}_branch2a", f"bn{block}_branch2a"))
    y = g.layer("conv2d", f"res{block}_branch2b", y, **conv("2b"), padding="same", activation="relu",
                covers=(f"res{block}_branch2b", f"bn{block}_branch2b"))
    y = g.layer("conv2d", f"res{block}_branch2c", y, **conv("2c"),
                covers=(f"res{block}_branch2c", f"bn{block}_branch2c"))                # (h, w, 4 * filters)
    return g.layer("add", f"res{block}_out", y, shortcut, activation="relu")


def build_rpn(w: KerasLayers) -> Model:
    """One pyramid level (h, w, 256) -> anchor logits (h, w, 3 * 2) and box deltas (h, w, 3 * 4)."""
    g = GraphBuilder("rpn_model")
    x = g.input("input_rpn_feature_map", (None, None, PYRAMID))
    shared = g.layer("conv2d", "rpn_conv_shared", x, **w.conv_bn("rpn_conv_shared", None, epsilon=EPSILON),
                     padding="same", activation="relu")                               # (h, w, 512)
    logits = g.layer("conv2d", "rpn_class_raw", shared, **w.conv_bn("rpn_class_raw", None, epsilon=EPSILON))
    deltas = g.layer("conv2d", "rpn_bbox_pred", shared, **w.conv_bn("rpn_bbox_pred", None, epsilon=EPSILON))
    return g.build([logits, deltas])


def build_classifier(w: KerasLayers) -> Model:
    """ROI features (7, 7, 256) -> class probabilities (81,) and box deltas (81 * 4,)."""
    g = GraphBuilder("fpn_classifier")
    x = g.input("roi_align_classifier", (POOL_SIZE, POOL_SIZE, PYRAMID))
    x = g.layer("conv2d", "mrcnn_class_conv1", x, activation="relu",
                **w.conv_bn("mrcnn_class_conv1", "mrcnn_class_bn1", epsilon=EPSILON),
                covers=("mrcnn_class_conv1", "mrcnn_class_bn1"))                      # (1, 1, 1024)
    x = g.layer("conv2d", "mrcnn_class_conv2", x, activation="relu",
                **w.conv_bn("mrcnn_class_conv2", "mrcnn_class_bn2", epsilon=EPSILON),
                covers=("mrcnn_class_conv2", "mrcnn_class_bn2"))                      # (1, 1, 1024)
    shared = g.layer("flatten", "pool_squeeze", x)                                  # (1024,)
    logits = g.layer("dense", "mrcnn_class_logits", shared, **w.dense("mrcnn_class_logits"))
    probs = g.layer("softmax", "mrcnn_class", logits)                               # (81,)
    deltas = g.layer("dense", "mrcnn_bbox_fc", shared, **w.dense("mrcnn_bbox_fc"))   # (81 * 4,)
    return g.build([probs, deltas])


def build_mask_head(w: KerasLayers) -> Model:
    """Detection features (14, 14, 256) -> mask probabilities (28, 28, 81)."""
    g = GraphBuilder("fpn_mask")
    x = g.input("roi_align_mask", (MASK_POOL_SIZE, MASK_POOL_SIZE, PYRAMID))
    for i in range(1, 5):
        x = g.layer("conv2d", f"mrcnn_mask_conv{i}", x, padding="same", activation="relu",
                    **w.conv_bn(f"mrcnn_mask_conv{i}", f"mrcnn_mask_bn{i}", epsilon=EPSILON),
                    covers=(f"mrcnn_mask_conv{i}", f"mrcnn_mask_bn{i}"))              # (14, 14, 256)
    kernel, bias = w.arrays("mrcnn_mask_deconv", 2)                                 # (2, 2, 256, 256), (256,)
    x = g.layer(conv2d_transpose, "mrcnn_mask_deconv", x, kernel=kernel, bias=bias, stride=2,
                activation="relu")                                                  # (28, 28, 256)
    x = g.layer("conv2d", "mrcnn_mask", x, **w.conv_bn("mrcnn_mask", None, epsilon=EPSILON),
                activation="sigmoid")                                               # (28, 28, 81)
    return g.build([x])


def build_all(w: KerasLayers) -> tuple[Model, Model, Model, Model]:
    """The four networks; refuses a file with weights none of them reads."""
    nets = (build_backbone(w), build_rpn(w), build_classifier(w), build_mask_head(w))
    w.require_all_used("Mask R-CNN (matterport)")
    return nets
