"""Fast max and average pooling (Numba, threads split the (image, output row) pairs), and global average pooling.

Padding follows :mod:`nnlite.ops.padding`. Padded cells are skipped: they never win a max (as if -inf) and
are not counted in an average's divisor (TF's 'same' rule; explicit padding is treated the same way).
"""

from __future__ import annotations

import numpy as np

from . import checks, drivers, parallel
from .jit import kernel
from .padding import pair, resolve_padding_2d


@kernel
def _pool(x, kh, kw, sh, sw, top, left, is_max, y, r0, r1):
    # x (N, H, W, C); y (N, oh, ow, C), rows r = n*oh + oy in [r0, r1); windows clipped to the image
    n_, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    for r in range(r0, r1):
        n, oy = r // oh, r % oh
        y0, y1 = max(oy * sh - top, 0), min(oy * sh - top + kh, h)
        for ox in range(ow):
            x0, x1 = max(ox * sw - left, 0), min(ox * sw - left + kw, w)
            for ch in range(c):  # accumulated in place in y (plain indexing: no views in the hot loop)
                y[n, oy, ox, ch] = -np.inf if is_max else 0.0
            for iy in range(y0, y1):
                for ix in range(x0, x1):
                    if is_max:
                        for ch in range(c):
                            y[n, oy, ox, ch] = max(y[n, oy, ox, ch], x[n, iy, ix, ch])
                    else:
                        for ch in range(c):
                            y[n, oy, ox, ch] += x[n, iy, ix, ch]
            if not is_max:
                count = np.float32((y1 - y0) * (x1 - x0))  # real inputs only (TF 'same' divisor)
                for ch in range(c):
                    y[n, oy, ox, ch] /= count


_pool_parallel = drivers.driver(_pool)


def _pool2d(x, pool_size, stride, padding, is_max, op):
    x = np.ascontiguousarray(checks.nhwc(x, op))
    kh, kw = pair(pool_size, f"{op} pool_size")
    sh, sw = (kh, kw) if stride is None else pair(stride, f"{op} stride")
    checks.pool_padding(padding, kh, kw, op)
    (t, _, oh), (l, _, ow) = resolve_padding_2d(x.shape[1], x.shape[2], kh, kw, (sh, sw), 1, padding)
    y = np.empty((x.shape[0], oh, ow, x.shape[3]), np.float32)
    rows = x.shape[0] * oh
    parallel.split(_pool, _pool_parallel, (x, kh, kw, sh, sw, t, l, is_max, y), rows, y.size * kh * kw // 4)
    return y


def max_pool2d(x, *, pool_size, stride=None, padding="valid"):
    """Max over each window; padded cells never win. stride None means pool_size."""
    return _pool2d(x, pool_size, stride, padding, True, "max_pool2d")


def avg_pool2d(x, *, pool_size, stride=None, padding="valid"):
    """Mean over each window, divided by the count of real (unpadded) inputs under it (TF 'same' rule)."""
    return _pool2d(x, pool_size, stride, padding, False, "avg_pool2d")


def global_avg_pool2d(x, *, keepdims=False):
    """Mean over H and W (accumulated in float64): (N, C), or (N, 1, 1, C) with keepdims."""
    x = checks.nhwc(x, "global_avg_pool2d")
    y = x.reshape(x.shape[0], -1, x.shape[3]).mean(axis=1, dtype=np.float64).astype(np.float32)
    return y.reshape(x.shape[0], 1, 1, x.shape[3]) if keepdims else y
