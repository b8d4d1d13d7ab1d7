"""Fast image resize: bilinear as a compiled kernel on TensorFlow's coordinate rules
(:mod:`nnlite.ops.resize_rules`, which also holds the nearest-neighbour resize, NumPy's indexing alone)."""

from __future__ import annotations

import numpy as np

from . import checks, drivers, parallel
from .jit import kernel
from .padding import pair
from .resize_rules import bilinear_axis


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
    ys = bilinear_axis(x.shape[1], oh, half_pixel_centers, align_corners)
    xs = bilinear_axis(x.shape[2], ow, half_pixel_centers, align_corners)
    y = np.empty((x.shape[0], oh, ow, x.shape[3]), np.float32)
    rows = x.shape[0] * oh
    parallel.split(_bilinear, _bilinear_parallel, (x, *ys, *xs, y), rows, y.size)
    return y
