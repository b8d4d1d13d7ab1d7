"""Mask R-CNN (matterport's Keras implementation, COCO weights ``mask_rcnn_coco.h5``); importing this
registers ``mask_rcnn_coco``."""

from __future__ import annotations

from ...fetch import cached_weights
from ..registry import ModelSpec, register


def _build():
    from .model import load_model
    return load_model()


register(ModelSpec(
    name="mask_rcnn_coco", family="maskrcnn",
    description="Mask R-CNN, ResNet-101 + FPN, COCO instance segmentation (matterport)",
    input_size=None,
    preprocessing="matterport: scale to 800..1024, pad square, RGB - mean pixel",
    build=_build, weights_present=lambda: cached_weights("mask_rcnn_coco") is not None,
    weights="mask_rcnn_coco.h5, matterport's Mask_RCNN v2.0 release file (nnlite fetch mask_rcnn_coco)",
    task="segment", params=None))
