"""Pictures of what a model computes: feature maps of one layer as a PNG grid."""

from __future__ import annotations

import math

import numpy as np

from .errors import ShapeError


def feature_map_grid(activation: np.ndarray, *, max_maps: int = 64, cell: int = 0, gap: int = 2) -> np.ndarray:
    """Tile the channels of one activation (H, W, C) into a grey uint8 image.

    Each channel is min-max scaled on its own (a flat channel is drawn mid-grey), so weak and strong
    channels are both visible. ``cell`` (pixels) enlarges small maps with nearest-neighbour upscaling.
    """
    act = np.asarray(activation, np.float32)
    if act.ndim == 4 and act.shape[0] == 1:
        act = act[0]
    if act.ndim == 1:
        act = act[None, None, :]
    if act.ndim == 2:  # (rows, features): one map per feature is not meaningful; show as one image
        act = act[:, :, None]
    if act.ndim != 3:
        raise ShapeError(f"feature maps need an (H, W, C) activation, got shape {activation.shape}")
    h, w, c = act.shape
    n = min(c, max_maps)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    scale = max(1, cell // max(h, w)) if cell else max(1, 48 // max(h, w))
    ch, cw = h * scale, w * scale
    grid = np.full((rows * (ch + gap) + gap, cols * (cw + gap) + gap), 255, np.uint8)
    for i in range(n):
        m = act[:, :, i]
        lo, hi = float(m.min()), float(m.max())
        img = np.full(m.shape, 128, np.uint8) if hi - lo < 1e-12 else np.rint((m - lo) / (hi - lo) * 255).astype(np.uint8)
        img = np.repeat(np.repeat(img, scale, 0), scale, 1)
        r, q = divmod(i, cols)
        y, x = gap + r * (ch + gap), gap + q * (cw + gap)
        grid[y:y + ch, x:x + cw] = img
    return grid
