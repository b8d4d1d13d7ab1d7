"""Mask R-CNN end to end: molded image -> backbone + FPN -> RPN -> proposals -> classifier ->
detections -> masks, every stage's output kept for inspection and parity checks."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..imagenet.keras_common import KerasLayers, weights_file
from . import detect
from .config import MaskRCNNConfig
from .networks import MASK_POOL_SIZE, NUM_CLASSES, POOL_SIZE, build_all

NAME = "mask_rcnn_coco"


class MaskRCNN:
    """The four networks and the config; :meth:`run` returns every intermediate of one molded image."""

    def __init__(self, backbone, rpn, classifier, mask_head, config: MaskRCNNConfig | None = None):
        self.model = backbone            # what `nnlite inspect` shows: ResNet-101 + FPN
        self.rpn, self.classifier, self.mask_head = rpn, classifier, mask_head
        self.config = config or MaskRCNNConfig()
        self._anchors: dict[tuple[int, int], np.ndarray] = {}
        self.timings: dict[str, float] = {}

    def with_config(self, **changes) -> MaskRCNN:
        """The same networks with other settings (``image_max_dim=512``, ``detection_min_confidence=0.5``)."""
        return MaskRCNN(self.model, self.rpn, self.classifier, self.mask_head, replace(self.config, **changes))

    def anchors(self, shape: tuple[int, int]) -> np.ndarray:
        if shape not in self._anchors:
            self._anchors[shape] = detect.anchors(self.config, shape)
        return self._anchors[shape]

    def run(self, molded: np.ndarray, window) -> dict[str, np.ndarray]:
        """molded (H, W, 3) float32, window (y1, x1, y2, x2) pixels of the image inside the padding."""
        cfg, shape, t = self.config, molded.shape[:2], {}
        start = time.perf_counter()
        levels = self.model(molded[np.newaxis])                                      # P2 .. P6
        t["backbone"] = time.perf_counter() - start
        rpn_class, rpn_bbox = detect.rpn_outputs(self.rpn, levels)
        rois = detect.proposals(rpn_class, rpn_bbox, self.anchors(shape), cfg)          # (1000, 4)
        t["rpn+proposals"] = time.perf_counter() - sum(t.values()) - start
        probs, deltas = self._classify(rois, levels[:4], shape)
        window_n = detect.norm_boxes(np.asarray(window, np.float32), shape)
        detections = detect.refine_detections(rois, probs, deltas, window_n, cfg)
        t["heads"] = time.perf_counter() - sum(t.values()) - start
        count = int(np.count_nonzero(detections[:, 4]))
        masks = np.zeros((len(detections), 28, 28, NUM_CLASSES), np.float32)
        if count:
            feats = detect.pyramid_roi_align(detections[:count, :4], levels[:4], shape, MASK_POOL_SIZE)
            masks[:count] = self.mask_head(feats)
        t["masks"] = time.perf_counter() - sum(t.values()) - start
        self.timings = t
        out = {f"fpn_p{i + 2}": p[0] for i, p in enumerate(levels)}
        out.update(rpn_class=rpn_class, rpn_bbox=rpn_bbox, rpn_rois=rois, mrcnn_class=probs, mrcnn_bbox=deltas,
                   detections=detections, mrcnn_mask=masks)
        return out

    def _classify(self, rois, levels, shape):
        """The classifier on every proposal; the zero-padding rows are all alike, so one of them is run."""
        real = int(np.count_nonzero(np.any(rois != 0, axis=1)))
        todo = rois[:min(real + 1, len(rois))]
        feats = detect.pyramid_roi_align(todo, levels, shape, POOL_SIZE)
        probs, deltas = self.classifier(feats)
        if len(todo) < len(rois):
            probs = np.concatenate([probs, np.repeat(probs[-1:], len(rois) - len(todo), 0)])
            deltas = np.concatenate([deltas, np.repeat(deltas[-1:], len(rois) - len(todo), 0)])
        return probs, deltas.reshape(len(rois), NUM_CLASSES, 4)


def load_model(path: str | Path | None = None, config: MaskRCNNConfig | None = None) -> MaskRCNN:
    """Mask R-CNN with the weights of matterport's ``mask_rcnn_coco.h5`` (default: the fetched file)."""
    return MaskRCNN(*build_all(KerasLayers.from_file(weights_file(NAME, path))), config)
