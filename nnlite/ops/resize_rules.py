"""Where a resize reads its source pixels: TensorFlow's coordinate rules, in NumPy alone (used by the compiled
resize of :mod:`nnlite.ops.resize` and by :mod:`nnlite.ops.numpy_engine`).

Source coordinate of output index i (computed in float32, as TF does, so index choices match it):
* scale = (in - 1) / (out - 1) with ``align_corners`` (and out > 1), else in / out;
* bilinear, ``half_pixel_centers=True`` (TF2 ``tf.image.resize``): src = (i + 0.5) * scale - 0.5;
  ``half_pixel_centers=False`` (legacy TF1 / tfjs ``resizeBilinear``): src = i * scale;
  neighbours max(floor(src), 0) and min(ceil(src), in - 1), weight src - floor(src);
* nearest: src = (i + 0.5) * scale with half-pixel centres (no -0.5), else i * scale; index floor(src)
  (round half away from zero with ``align_corners``), clamped to [0, in - 1].
"""

from __future__ import annotations

import numpy as np

from . import checks
from .padding import pair


def _scale(n_in: int, n_out: int, align_corners: bool) -> np.float32:
    if align_corners and n_out > 1:
        return np.float32(n_in - 1) / np.float32(n_out - 1)
    return np.float32(n_in) / np.float32(n_out)


def _source(n_in: int, n_out: int, half_pixel_centers: bool, align_corners: bool, offset: float) -> np.ndarray:
    """float32 source coordinates of output indices 0..n_out-1."""
    i = np.arange(n_out, dtype=np.float32)
    scale = _scale(n_in, n_out, align_corners)
    if half_pixel_centers:
        return (i + np.float32(0.5)) * scale - np.float32(offset)
    return i * scale


def bilinear_axis(n_in, n_out, half_pixel_centers, align_corners):
    """(lower (n_out,), upper (n_out,), weight of upper (n_out,)) for one axis."""
    src = _source(n_in, n_out, half_pixel_centers, align_corners, 0.5)
    floor = np.floor(src)
    lower = np.maximum(floor, 0).astype(np.int64)
    upper = np.minimum(np.ceil(src), n_in - 1).astype(np.int64)
    return lower, upper, (src - floor).astype(np.float32)


def _nearest_axis(n_in, n_out, half_pixel_centers, align_corners):
    src = _source(n_in, n_out, half_pixel_centers, align_corners, 0.0).astype(np.float64)
    idx = np.floor(src + 0.5) if align_corners else np.floor(src)  # TF: roundf / floorf
    return np.clip(idx, 0, n_in - 1).astype(np.int64)


def resize_nearest(x, *, size, half_pixel_centers=True, align_corners=False):
    """Nearest-neighbour resize of x (N, H, W, C) to size (h, w); rules in the module docstring."""
    x = checks.nhwc(x, "resize_nearest")
    oh, ow = pair(size, "resize_nearest size")
    yi = _nearest_axis(x.shape[1], oh, half_pixel_centers, align_corners)
    xi = _nearest_axis(x.shape[2], ow, half_pixel_centers, align_corners)
    return np.ascontiguousarray(x[:, yi[:, None], xi[None, :]])
