"""The inference settings of matterport's COCO demo, as a dataclass a user can change (a smaller
``image_max_dim`` runs faster), and the COCO class names in matterport's order (index 0 = background)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import ModelError

COCO_CLASSES = (
    "BG", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse",
    "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie",
    "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
    "skateboard", "surfboard", "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon",
    "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut",
    "cake", "chair", "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush")


@dataclass(frozen=True)
class MaskRCNNConfig:
    """matterport's ``Config`` defaults with the COCO demo's inference values (one image per batch)."""
    image_min_dim: int = 800              # the short side is scaled up to this, ...
    image_max_dim: int = 1024             # ... unless the long side would pass this; then padded square
    mean_pixel: tuple[float, float, float] = (123.7, 116.8, 103.9)   # RGB, subtracted from the image
    backbone_strides: tuple[int, ...] = (4, 8, 16, 32, 64)           # P2 .. P6
    anchor_scales: tuple[int, ...] = (32, 64, 128, 256, 512)         # one per pyramid level, pixels
    anchor_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)               # width / height
    anchor_stride: int = 1
    rpn_bbox_std_dev: tuple[float, ...] = (0.1, 0.1, 0.2, 0.2)
    bbox_std_dev: tuple[float, ...] = (0.1, 0.1, 0.2, 0.2)
    pre_nms_limit: int = 6000             # best anchors kept before the proposal NMS
    rpn_nms_threshold: float = 0.7
    post_nms_rois: int = 1000             # POST_NMS_ROIS_INFERENCE
    detection_min_confidence: float = 0.7
    detection_max_instances: int = 100
    detection_nms_threshold: float = 0.3
    mask_threshold: float = 0.5           # utils.unmold_mask

    def __post_init__(self):
        if self.image_max_dim <= 0 or self.image_max_dim % 64:
            raise ModelError(f"image_max_dim must be a positive multiple of 64 (the image is halved 6 times); "
                             f"got {self.image_max_dim}")
        if not 0.0 <= self.detection_min_confidence <= 1.0:
            raise ModelError(f"detection_min_confidence must be in [0, 1]; got {self.detection_min_confidence}")

    @property
    def image_shape(self) -> tuple[int, int]:
        return (self.image_max_dim, self.image_max_dim)

    def mean(self) -> np.ndarray:
        return np.array(self.mean_pixel, np.float64)   # float64, as matterport's MEAN_PIXEL
