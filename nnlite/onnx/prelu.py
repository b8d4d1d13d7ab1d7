"""Per-channel PReLU on NHWC tensors in one pass (Numba, threads split the rows): ArcFace's IResNet
applies it after every unit's first convolution. Reference twin: :func:`nnlite.onnx.arrays.prelu`."""

from __future__ import annotations

import numpy as np

from ..ops import drivers, parallel
from ..ops.jit import kernel


@kernel
def _prelu_rows(x, slope, y, r0, r1):
    # x, y (rows, C); slope (C,): y = x where x >= 0, else x * slope
    c = x.shape[1]
    for r in range(r0, r1):
        for ch in range(c):
            v = x[r, ch]
            y[r, ch] = v if v >= 0 else v * slope[ch]


_prelu_parallel = drivers.driver(_prelu_rows)


def prelu_channels(x, *, slope):
    """x (..., C) float32, slope (C,) -> x where x >= 0 else x * slope."""
    x = np.ascontiguousarray(x, np.float32)
    x2 = x.reshape(-1, x.shape[-1])
    y = np.empty_like(x2)
    parallel.split(_prelu_rows, _prelu_parallel, (x2, np.ascontiguousarray(slope, np.float32), y), x2.shape[0],
                   x2.size)
    return y.reshape(x.shape)
