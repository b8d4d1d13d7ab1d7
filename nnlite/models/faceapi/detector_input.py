"""What the two face-api.js face detectors (SsdMobilenetv1, TinyFaceDetector) share: input and box mapping.

Input rule (face-api.js ``NetInput.toBatchTensor(size, centred=False)`` on its tensor path):

1. the RGB image (H, W, 3) is zero-padded *bottom/right* to a square of side max(H, W) (image at top-left);
2. the square is bilinearly resized to ``size`` x ``size`` with tfjs ``resizeBilinear``'s rule:
   ``align_corners=False`` and *no* half-pixel centres (source = i * in / out, the legacy TF1 rule),
   skipped when the square already has that size;
3. each net then scales the pixel values its own way (SSD: x / 127.5 - 1; Tiny: (x - mean RGB) / 256).

Output rule: the nets give boxes relative to the padded square. face-api.js maps them to the image with
the *rounded* reshaped size ``(round(W * s), round(H * s))``, ``s = size / max(W, H)``
(``computeReshapedDimensions``, JavaScript ``Math.round``): x_rel = x_square * size / round(W * s), then
pixels = x_rel * W. The rounding shifts a box by at most half a net pixel; we keep it for compatibility.
"""

from __future__ import annotations

import math

import numpy as np

from ... import ops
from ...image import as_rgb, pad_to_square


def detector_input(image, size: int, where: str) -> tuple[np.ndarray, int, int]:
    """Image -> ((1, size, size, 3) float32 pixel values 0..255, width, height) by the rule above; the
    image is made RGB uint8 by :func:`nnlite.image.as_rgb` (greyscale repeated, alpha dropped) first."""
    img = as_rgb(image, name=where)                          # (H, W, 3) uint8
    height, width = img.shape[:2]
    square, _ = pad_to_square(img, center=False)             # (side, side, 3), image at top-left
    x = square[None].astype(np.float32)                      # (1, side, side, 3)
    if square.shape[0] != size:
        x = ops.for_engine("resize_bilinear")(x, size=(size, size), half_pixel_centers=False, align_corners=False)
    return x, width, height


def js_round(value: float) -> int:
    """JavaScript ``Math.round``: halves round up (Python's ``round`` rounds halves to even)."""
    return int(math.floor(value + 0.5))


def square_to_image_scale(width: int, height: int, size: int) -> tuple[float, float]:
    """(sx, sy) with x_rel_to_image = x_rel_to_square * sx (face-api.js's rounded reshaped dimensions)."""
    scale = size / max(width, height)
    # max(1, ...): a sliver image (e.g. 1 x 2000) would round to 0 and face-api.js would divide by zero
    return size / max(1, js_round(width * scale)), size / max(1, js_round(height * scale))
