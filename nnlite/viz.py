"""Pictures of what a model computes: one layer's output as a PNG (a grid of feature maps, or a bar plot of a
vector), with a sentence saying what the picture shows."""

from __future__ import annotations

import math

import numpy as np

from .errors import ShapeError

FLAT_GREY = 128


def _squeeze(activation: np.ndarray) -> np.ndarray:
    act = np.asarray(activation, np.float32)
    if act.ndim >= 2 and act.shape[0] == 1:
        act = act[0]
    return act


def _dead_cell(h: int, w: int) -> np.ndarray:
    """A hatched cell: what no scaled map can look like, so an all-zero channel is never mistaken for a flat one."""
    yy, xx = np.mgrid[:h, :w]
    return np.where((yy + xx) % 6 < 2, 200, 40).astype(np.uint8)


def feature_map_grid(activation: np.ndarray, *, max_maps: int = 64, cell: int = 0, gap: int = 2) -> np.ndarray:
    """Tile the channels of one activation (H, W, C) into a grey uint8 image.

    Each channel is min-max scaled on its own (black = its minimum, white = its maximum), so weak and strong
    channels are both visible; a constant non-zero channel is drawn mid-grey and an all-zero ("dead") one
    hatched. ``cell`` (pixels) enlarges small maps with nearest-neighbour upscaling.
    """
    act = _squeeze(activation)
    if act.ndim == 1:
        act = act[None, None, :]
    if act.ndim == 2:  # (rows, features): one map per feature is not meaningful; show as one image
        act = act[:, :, None]
    if act.ndim != 3:
        raise ShapeError(f"feature maps need an (H, W, C) activation, got shape {np.shape(activation)}")
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
        if lo == 0.0 and hi == 0.0:
            img = _dead_cell(ch, cw)
        else:
            img = (np.full(m.shape, FLAT_GREY, np.uint8) if hi - lo < 1e-12
                   else np.rint((m - lo) / (hi - lo) * 255).astype(np.uint8))
            img = np.repeat(np.repeat(img, scale, 0), scale, 1)
        r, q = divmod(i, cols)
        y, x = gap + r * (ch + gap), gap + q * (cw + gap)
        grid[y:y + ch, x:x + cw] = img
    return grid


def vector_plot(values: np.ndarray, *, height: int = 240, min_width: int = 480) -> np.ndarray:
    """A bar plot (grey uint8) of a 1-D activation: one bar per value from the zero line (drawn mid-grey),
    up for positive values, down for negative ones, all on one scale (the largest magnitude fills the plot)."""
    v = np.asarray(values, np.float32).ravel()
    if v.size == 0:
        raise ShapeError("nothing to plot: the activation is empty")
    bar = max(1, min_width // v.size)
    width = v.size * bar
    top, bottom = float(max(v.max(), 0.0)), float(min(v.min(), 0.0))
    span = top - bottom or 1.0
    zero = int(round((top / span) * (height - 1)))
    img = np.full((height, width), 255, np.uint8)
    ends = np.rint(zero - v / span * (height - 1)).astype(int).clip(0, height - 1)
    for i, end in enumerate(ends):
        lo, hi = sorted((zero, int(end)))
        img[lo:hi + 1, i * bar:(i + 1) * bar] = 0
    img[zero, :] = FLAT_GREY
    return img


def render_activation(activation: np.ndarray, *, max_maps: int = 64) -> tuple[np.ndarray, str]:
    """The picture for one layer's output and a sentence saying what it shows (shape, scaling, dead channels)."""
    act = _squeeze(activation)
    shape = tuple(np.shape(activation))
    if act.ndim == 1 or (act.ndim == 3 and act.shape[:2] == (1, 1)):   # vectors, and 1x1 maps (pooled features)
        v = act.ravel()
        return vector_plot(v), (f"output {shape}: a vector of {v.size} values, drawn as one bar each "
                                f"(min {v.min():.4g}, max {v.max():.4g}; {int((v == 0).sum())} exactly zero)")
    grid = feature_map_grid(act, max_maps=max_maps)
    if act.ndim != 3:
        return grid, f"output {shape}: one grey image of all values, black = min, white = max"
    c = act.shape[2]
    n = min(c, max_maps)
    flat = act.reshape(-1, c)[:, :n]
    dead = int(((flat == 0).all(axis=0)).sum())
    const = int(((flat.max(axis=0) - flat.min(axis=0)) < 1e-12).sum()) - dead
    shown = f"all {c} channels" if n == c else f"channels 0-{n - 1} of {c} (--max-maps)"
    return grid, (f"output {shape}: grid of {shown}, row by row, each {act.shape[0]}x{act.shape[1]} map scaled to "
                  f"its own range (black = min, white = max); {dead} dead (all zero, hatched), "
                  f"{const} constant (mid-grey)")
