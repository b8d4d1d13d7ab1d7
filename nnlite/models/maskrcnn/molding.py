"""Image in, image out: matterport's ``resize_image`` (square mode) and ``mold_image`` before the network,
``unmold_detections`` / ``unmold_mask`` after it, in NumPy alone.

Resizing is scikit-image's ``resize(order=1, mode="constant", anti_aliasing=False)`` (what matterport
calls): bilinear with half-pixel centres where samples beyond the border read 0, then clipped to the
input's range. Boxes are normalised with matterport's convention: pixel ``(y2, x2)`` is outside the box
in pixels and inside it once normalised, so ``(y - shift) / (size - 1)``.
"""

from __future__ import annotations

import numpy as np

from .config import MaskRCNNConfig


def _axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    low = np.floor(src)
    return np.clip(low.astype(np.int64), -1, n_in) + 1, src - low   # index into the zero-padded axis


def resize_bilinear_zero_border(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """skimage.transform.resize(order=1, mode="constant", cval=0, clip=True) in float64."""
    img = np.asarray(image, np.float64)
    pad = [(1, 2), (1, 2)] + [(0, 0)] * (img.ndim - 2)
    padded = np.pad(img, pad)                     # zeros beyond the border
    rows, t = _axis_weights(img.shape[0], height)
    t = t.reshape((-1,) + (1,) * (img.ndim - 1))
    tmp = padded[rows] * (1 - t) + padded[rows + 1] * t
    cols, t = _axis_weights(img.shape[1], width)
    t = t.reshape((1, -1) + (1,) * (img.ndim - 2))
    out = tmp[:, cols] * (1 - t) + tmp[:, cols + 1] * t
    return np.clip(out, img.min(), img.max()) if img.size else out


def resize_image(image: np.ndarray, config: MaskRCNNConfig) -> tuple[np.ndarray, tuple[int, int, int, int], float]:
    """Scale (up to ``image_min_dim`` on the short side, capped by ``image_max_dim`` on the long side) and
    pad to a square; returns the uint8 image, the window (y1, x1, y2, x2) holding it and the scale."""
    h, w = image.shape[:2]
    scale = max(1, config.image_min_dim / min(h, w))
    if round(max(h, w) * scale) > config.image_max_dim:
        scale = config.image_max_dim / max(h, w)
    if scale != 1:
        image = resize_bilinear_zero_border(image, round(h * scale), round(w * scale)).astype(np.uint8)
    h, w = image.shape[:2]
    size = config.image_max_dim
    top, left = (size - h) // 2, (size - w) // 2
    image = np.pad(image, [(top, size - h - top), (left, size - w - left), (0, 0)])
    return image, (top, left, top + h, left + w), scale


def mold_image(image: np.ndarray, config: MaskRCNNConfig) -> np.ndarray:
    """uint8 RGB -> float32 network input (mean pixel subtracted in float64, as matterport does)."""
    return (image.astype(np.float32) - config.mean()).astype(np.float32)


def norm_boxes(boxes: np.ndarray, shape) -> np.ndarray:
    h, w = shape
    return ((np.asarray(boxes) - np.array([0, 0, 1, 1])) / np.array([h - 1, w - 1, h - 1, w - 1])).astype(np.float32)


def denorm_boxes(boxes: np.ndarray, shape) -> np.ndarray:
    h, w = shape
    scale = np.array([h - 1, w - 1, h - 1, w - 1])
    return np.around(boxes * scale + np.array([0, 0, 1, 1])).astype(np.int32)


def unmold_boxes(boxes: np.ndarray, window, molded_shape, original_shape) -> np.ndarray:
    """Normalised boxes in the molded image -> integer pixel boxes (y1, x1, y2, x2) in the original image."""
    wy1, wx1, wy2, wx2 = norm_boxes(np.asarray(window), molded_shape)
    shift = np.array([wy1, wx1, wy1, wx1])
    scale = np.array([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
    return denorm_boxes(np.divide(boxes - shift, scale), original_shape)


def unmold_mask(mask: np.ndarray, box, image_shape, threshold: float = 0.5) -> np.ndarray:
    """A 28x28 probability mask pasted into its pixel box of a boolean image-sized mask."""
    y1, x1, y2, x2 = (int(v) for v in box)
    full = np.zeros(image_shape[:2], bool)
    h, w = y2 - y1, x2 - x1
    if h <= 0 or w <= 0:
        return full
    small = resize_bilinear_zero_border(np.asarray(mask, np.float32), h, w) >= threshold
    y1, x1 = max(y1, 0), max(x1, 0)   # boxes are clipped to the window, so this guards only rounding
    region = full[y1:y2, x1:x2]
    region[...] = small[:region.shape[0], :region.shape[1]]
    return full
