"""The dynamic parts of Mask R-CNN between its networks: anchors, the proposal layer, multi-level
ROIAlign and the detection layer, each as matterport's Keras layers define them (same float32 math,
same tie-breaking), on the kernels of :mod:`nnlite.ops.detection`.

Boxes are ``(y1, x1, y2, x2)`` normalised to the molded image (see :mod:`.molding`).
"""

from __future__ import annotations

import math

import numpy as np

from ...ops import softmax
from ...ops.detection import (
    apply_box_deltas,
    clip_boxes,
    crop_and_resize,
    non_max_suppression,
    top_k_indices,
)
from .config import MaskRCNNConfig
from .molding import norm_boxes


def anchors(config: MaskRCNNConfig, image_shape: tuple[int, int]) -> np.ndarray:
    """Every anchor of every pyramid level, normalised (n, 4) float32, in the RPN's output order:
    level by level, row-major over positions, the ratios innermost."""
    levels = []
    for scale, stride in zip(config.anchor_scales, config.backbone_strides):
        fh, fw = (math.ceil(s / stride) for s in image_shape)
        ratios = np.array(config.anchor_ratios, np.float64)
        heights, widths = scale / np.sqrt(ratios), scale * np.sqrt(ratios)        # (a,)
        cy = np.arange(0, fh, config.anchor_stride) * stride
        cx = np.arange(0, fw, config.anchor_stride) * stride
        cy, cx = np.meshgrid(cy, cx, indexing="ij")                               # (fh, fw)
        centres = np.stack([np.repeat(cy.reshape(-1), len(ratios)), np.repeat(cx.reshape(-1), len(ratios))], 1)
        sizes = np.stack([np.tile(heights, cy.size), np.tile(widths, cy.size)], 1)
        levels.append(np.concatenate([centres - 0.5 * sizes, centres + 0.5 * sizes], axis=1))
    return norm_boxes(np.concatenate(levels), image_shape)


def rpn_outputs(rpn, feature_maps: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The RPN on every level, concatenated: foreground/background probabilities (n, 2), deltas (n, 4)."""
    probs, deltas = [], []
    for p in feature_maps:
        logits, bbox = rpn(p)
        probs.append(softmax(logits.reshape(-1, 2)))
        deltas.append(bbox.reshape(-1, 4))
    return np.concatenate(probs), np.concatenate(deltas)


def proposals(rpn_probs: np.ndarray, rpn_bbox: np.ndarray, all_anchors: np.ndarray,
              config: MaskRCNNConfig) -> np.ndarray:
    """matterport's ProposalLayer: best anchors by score, refined, clipped to the image, NMS;
    (post_nms_rois, 4), zero rows after the real proposals."""
    scores = rpn_probs[:, 1]
    deltas = rpn_bbox * np.array(config.rpn_bbox_std_dev, np.float32)
    best = top_k_indices(scores, min(config.pre_nms_limit, len(all_anchors)))
    boxes = clip_boxes(apply_box_deltas(all_anchors[best], deltas[best]), (0, 0, 1, 1))
    keep = non_max_suppression(boxes, scores[best], config.post_nms_rois, config.rpn_nms_threshold)
    out = np.zeros((config.post_nms_rois, 4), np.float32)
    out[:len(keep)] = boxes[keep]
    return out


def roi_levels(boxes: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
    """Pyramid level (2..5) of each box: FPN's equation 1, a 224-pixel box on P4, in float32 like matterport."""
    h = boxes[:, 2] - boxes[:, 0]
    w = boxes[:, 3] - boxes[:, 1]
    area = np.float32(image_shape[0] * image_shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.log(np.sqrt(h * w) / (np.float32(224.0) / np.sqrt(area))) / np.log(np.float32(2.0))
    level = np.round(level)                       # half to even, as tf.round
    level = np.where(np.isfinite(level), level, -1e9)   # zero-area boxes: log2(0) = -inf -> the lowest level
    return np.clip(4 + level, 2, 5).astype(np.int64)


def pyramid_roi_align(boxes: np.ndarray, feature_maps: list[np.ndarray], image_shape: tuple[int, int],
                      pool_size: int) -> np.ndarray:
    """matterport's PyramidROIAlign: each box (n, 4) cropped from its level of P2..P5 (each (1, h, w, c))
    -> (n, pool, pool, c) in the boxes' order."""
    levels = roi_levels(boxes, image_shape)
    out = np.empty((len(boxes), pool_size, pool_size, feature_maps[0].shape[-1]), np.float32)
    for level in range(2, 6):
        idx = np.flatnonzero(levels == level)
        if len(idx):
            out[idx] = crop_and_resize(feature_maps[level - 2], boxes[idx], np.zeros(len(idx), np.int64),
                                       (pool_size, pool_size))
    return out


def refine_detections(rois: np.ndarray, probs: np.ndarray, deltas: np.ndarray, window: np.ndarray,
                      config: MaskRCNNConfig) -> np.ndarray:
    """matterport's DetectionLayer: each ROI's best class and its refined box, background and low scores
    dropped, per-class NMS, the best ``detection_max_instances`` by score; (max, 6) rows of
    (y1, x1, y2, x2, class_id, score), zero rows after the real detections.

    rois (n, 4), probs (n, classes), deltas (n, classes, 4), window (4,) normalised."""
    class_ids = np.argmax(probs, axis=1)
    rows = np.arange(len(rois))
    scores = probs[rows, class_ids]
    refined = apply_box_deltas(rois, deltas[rows, class_ids] * np.array(config.bbox_std_dev, np.float32))
    refined = clip_boxes(refined, window)
    keep = np.flatnonzero((class_ids > 0) & (scores >= np.float32(config.detection_min_confidence)))
    kept_by_nms = []
    for class_id in np.unique(class_ids[keep]):
        members = keep[class_ids[keep] == class_id]
        chosen = non_max_suppression(refined[members], scores[members], config.detection_max_instances,
                                     config.detection_nms_threshold)
        kept_by_nms.append(members[chosen])
    keep = np.sort(np.concatenate(kept_by_nms)) if kept_by_nms else np.zeros(0, np.int64)
    keep = keep[top_k_indices(scores[keep], min(len(keep), config.detection_max_instances))]
    out = np.zeros((config.detection_max_instances, 6), np.float32)
    out[:len(keep), :4] = refined[keep]
    out[:len(keep), 4] = class_ids[keep]
    out[:len(keep), 5] = scores[keep]
    return out
