"""ONNX Resize on NHWC images: nearest and (bi)linear, with ONNX's coordinate and rounding modes.

Source coordinate of output index i on an axis of ``n`` inputs and ``m`` outputs (scale ``s``, float32
as onnxruntime computes it): half_pixel (i + 0.5) / s - 0.5; pytorch_half_pixel the same but 0 when
m == 1; align_corners i * (n - 1) / (m - 1); asymmetric i / s; tf_half_pixel_for_nn (i + 0.5) / s.
Nearest rounds it (round_prefer_floor / round_prefer_ceil / floor / ceil); linear clamps it into
[0, n - 1] and blends the two neighbours.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError


def source_coords(n: int, m: int, scale: float, mode: str) -> np.ndarray:
    i = np.arange(m, dtype=np.float32)
    s = np.float32(scale)
    if mode == "half_pixel":
        return (i + np.float32(0.5)) / s - np.float32(0.5)
    if mode == "pytorch_half_pixel":
        return (i + np.float32(0.5)) / s - np.float32(0.5) if m > 1 else np.zeros(m, np.float32)
    if mode == "align_corners":
        return i * np.float32(n - 1) / np.float32(m - 1) if m > 1 else np.zeros(m, np.float32)
    if mode == "asymmetric":
        return i / s
    if mode == "tf_half_pixel_for_nn":
        return (i + np.float32(0.5)) / s
    raise ShapeError(f"resize: coordinate_transformation_mode {mode!r} is not supported")


def nearest_index(src: np.ndarray, n: int, rounding: str) -> np.ndarray:
    if rounding == "round_prefer_floor":
        idx = np.ceil(src - np.float32(0.5))
    elif rounding == "round_prefer_ceil":
        idx = np.floor(src + np.float32(0.5))
    elif rounding == "floor":
        idx = np.floor(src)
    elif rounding == "ceil":
        idx = np.ceil(src)
    else:
        raise ShapeError(f"resize: nearest_mode {rounding!r} is not supported")
    return np.clip(idx, 0, n - 1).astype(np.int64)


def _linear_axis(x: np.ndarray, axis: int, src: np.ndarray) -> np.ndarray:
    n = x.shape[axis]
    src = np.clip(src, 0, n - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    w = (src - lo).astype(np.float32)
    shape = [1] * x.ndim
    shape[axis] = -1
    w = w.reshape(shape)
    a, b = np.take(x, lo, axis=axis), np.take(x, hi, axis=axis)
    return a + (b - a) * w


def resize_nhwc(x, *, size, scale, mode="nearest", coordinate_mode="half_pixel",
                nearest_mode="round_prefer_floor"):
    """x (N, H, W, C) -> (N, size[0], size[1], C); ``scale`` (sh, sw) as the file gives it."""
    x = np.asarray(x, np.float32)
    (oh, ow), (sh, sw) = size, scale
    _, h, w, _ = x.shape
    ys, xs = source_coords(h, oh, sh, coordinate_mode), source_coords(w, ow, sw, coordinate_mode)
    if mode == "nearest":
        return np.ascontiguousarray(x[:, nearest_index(ys, h, nearest_mode)][:, :, nearest_index(xs, w,
                                                                                               nearest_mode)])
    return np.ascontiguousarray(_linear_axis(_linear_axis(x, 1, ys), 2, xs))
