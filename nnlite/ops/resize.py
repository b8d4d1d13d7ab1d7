"""Fast image resize (bilinear and nearest) following TensorFlow's coordinate rules exactly.

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

from . import checks, drivers, parallel
from .jit import kernel
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


def _bilinear_axis(n_in, n_out, half_pixel_centers, align_corners):
    """(lower (n_out,), upper (n_out,), weight of upper (n_out,)) for one axis."""
    src = _source(n_in, n_out, half_pixel_centers, align_corners, 0.5)
    floor = np.floor(src)
    lower = np.maximum(floor, 0).astype(np.int64)
    upper = np.minimum(np.ceil(src), n_in - 1).astype(np.int64)
    return lower, upper, (src - floor).astype(np.float32)


@kernel
def _bilinear(x, y0, y1, fy, x0, x1, fx, y, r0, r1):
    # x (N, H, W, C); y0, y1, fy (oh,); x0, x1, fx (ow,); y (N, oh, ow, C), rows r = n*oh + oy in [r0, r1)
    n_, oh, ow, c = y.shape
    for r in range(r0, r1):
        n, oy = r // oh, r % oh
        top_row, bottom_row, wy = x[n, y0[oy]], x[n, y1[oy]], fy[oy]
        for ox in range(ow):
            a, b, wx = x0[ox], x1[ox], fx[ox]
            for ch in range(c):  # TF's order: lerp along x on both rows, then along y
                top = top_row[a, ch] + (top_row[b, ch] - top_row[a, ch]) * wx
                bottom = bottom_row[a, ch] + (bottom_row[b, ch] - bottom_row[a, ch]) * wx
                y[n, oy, ox, ch] = top + (bottom - top) * wy


_bilinear_parallel = drivers.driver(_bilinear)


def resize_bilinear(x, *, size, half_pixel_centers=True, align_corners=False):
    """Bilinear resize of x (N, H, W, C) to (N, h, w, C) for size (h, w); rules in the module docstring."""
    x = np.ascontiguousarray(checks.nhwc(x, "resize_bilinear"))
    oh, ow = pair(size, "resize_bilinear size")
    ys = _bilinear_axis(x.shape[1], oh, half_pixel_centers, align_corners)
    xs = _bilinear_axis(x.shape[2], ow, half_pixel_centers, align_corners)
    y = np.empty((x.shape[0], oh, ow, x.shape[3]), np.float32)
    rows = x.shape[0] * oh
    parallel.split(_bilinear, _bilinear_parallel, (x, *ys, *xs, y), rows, y.size)
    return y


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
