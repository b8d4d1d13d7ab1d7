"""TensorFlow's StridedSlice on NumPy arrays.

``begin``, ``end`` and ``strides`` form a sparse spec, one entry per position ``i``; the masks are bit
fields over those positions: ``ellipsis_mask`` (this position stands for every dimension not otherwise
named), ``new_axis_mask`` (insert a size-1 axis), ``shrink_axis_mask`` (take index ``begin[i]`` and drop
the dimension), ``begin_mask`` / ``end_mask`` (ignore ``begin[i]`` / ``end[i]``: take the full range in the
stride's direction). Out-of-range bounds clamp and negative ones count from the end, exactly as Python
slices do, so the spec maps one-to-one onto a NumPy index tuple.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError


def strided_slice(x, begin, end, strides, *, begin_mask=0, end_mask=0, ellipsis_mask=0, new_axis_mask=0,
                  shrink_axis_mask=0) -> np.ndarray:
    begin, end, strides = (np.ravel(v).astype(np.int64) for v in (begin, end, strides))
    if not len(begin) == len(end) == len(strides):
        raise ShapeError(f"StridedSlice: begin/end/strides lengths differ ({len(begin)}, {len(end)}, "
                         f"{len(strides)})")
    index = []
    for i in range(len(begin)):
        bit = 1 << i
        if ellipsis_mask & bit:
            index.append(Ellipsis)
        elif new_axis_mask & bit:
            index.append(np.newaxis)
        elif shrink_axis_mask & bit:
            index.append(int(begin[i]))
        else:
            if strides[i] == 0:
                raise ShapeError("StridedSlice: stride 0")
            b = None if begin_mask & bit else int(begin[i])
            e = None if end_mask & bit else int(end[i])
            index.append(slice(b, e, int(strides[i])))
    try:
        return np.array(x[tuple(index)])
    except IndexError as exc:
        raise ShapeError(f"StridedSlice: index {index} does not fit a tensor of shape {x.shape} ({exc})") \
            from None
