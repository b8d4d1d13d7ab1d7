"""Kernels of two-stage detectors (Mask R-CNN): top-k, non-maximum suppression, box refinement and
clipping, ROIAlign as ``tf.image.crop_and_resize``, and the 2x2/2 transposed convolution of the mask head.

Each follows TensorFlow's definition (float32 arithmetic, ties to the lower index) so a detector gives
the same boxes in the same order as the framework it was trained in. Naive twins:
:mod:`nnlite.ops.reference_detection`. Boxes are ``(y1, x1, y2, x2)``.
"""

from __future__ import annotations

import numba
import numpy as np

from ..errors import ShapeError
from . import compile_notice  # noqa: F401  (before any kernel can compile)


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest of ``scores`` (n,), largest first; equal scores in index order
    (``tf.nn.top_k(sorted=True)``)."""
    scores = np.asarray(scores, np.float32)
    return np.argsort(-scores, kind="stable")[:max(0, int(k))].astype(np.int64)


@numba.njit(cache=True)
def _nms(boxes, order, max_output, threshold):   # boxes (n, 4) float32; order (n,) by score
    n = order.shape[0]
    y1 = np.minimum(boxes[:, 0], boxes[:, 2])
    y2 = np.maximum(boxes[:, 0], boxes[:, 2])
    x1 = np.minimum(boxes[:, 1], boxes[:, 3])
    x2 = np.maximum(boxes[:, 1], boxes[:, 3])
    area = (y2 - y1) * (x2 - x1)
    kept = np.empty(min(n, max_output), np.int64)
    count = 0
    for t in range(n):
        if count >= max_output:
            break
        i = order[t]
        keep = True
        for u in range(count):
            j = kept[u]
            if area[i] <= 0 or area[j] <= 0:
                continue   # a box without area overlaps nothing
            ih = max(min(y2[i], y2[j]) - max(y1[i], y1[j]), np.float32(0))
            iw = max(min(x2[i], x2[j]) - max(x1[i], x1[j]), np.float32(0))
            inter = np.float32(ih * iw)
            iou = np.float32(inter / np.float32(area[i] + area[j] - inter))
            if iou > threshold:
                keep = False
                break
        if keep:
            kept[count] = i
            count += 1
    return kept[:count]


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, max_output: int,
                        iou_threshold: float) -> np.ndarray:
    """``tf.image.non_max_suppression``: indices of the kept boxes (n, 4), best score first."""
    boxes = np.ascontiguousarray(boxes, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32).reshape(-1)
    if len(boxes) != len(scores):
        raise ShapeError(f"non_max_suppression: {len(boxes)} boxes but {len(scores)} scores")
    if len(boxes) == 0 or max_output <= 0:
        return np.zeros(0, np.int64)
    return _nms(boxes, top_k_indices(scores, len(scores)), int(max_output), np.float32(iou_threshold))


def apply_box_deltas(boxes: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """Refine boxes (n, 4) by deltas (n, 4) = (dy, dx, log dh, log dw) relative to each box's size."""
    boxes = np.asarray(boxes, np.float32)
    deltas = np.asarray(deltas, np.float32)
    h = boxes[:, 2] - boxes[:, 0]
    w = boxes[:, 3] - boxes[:, 1]
    cy = boxes[:, 0] + np.float32(0.5) * h + deltas[:, 0] * h
    cx = boxes[:, 1] + np.float32(0.5) * w + deltas[:, 1] * w
    h = h * np.exp(deltas[:, 2])
    w = w * np.exp(deltas[:, 3])
    y1 = cy - np.float32(0.5) * h
    x1 = cx - np.float32(0.5) * w
    return np.stack([y1, x1, y1 + h, x1 + w], axis=1)


def clip_boxes(boxes: np.ndarray, window) -> np.ndarray:
    """Every coordinate of boxes (n, 4) clamped into ``window`` (wy1, wx1, wy2, wx2)."""
    wy1, wx1, wy2, wx2 = np.asarray(window, np.float32)
    lo = np.array([wy1, wx1, wy1, wx1], np.float32)
    hi = np.array([wy2, wx2, wy2, wx2], np.float32)
    return np.maximum(np.minimum(np.asarray(boxes, np.float32), hi), lo)


@numba.njit(parallel=True, cache=True)
def _crop_and_resize(image, boxes, box_indices, ch, cw, extrapolation, out):
    # image (N, H, W, C), boxes (b, 4), out (b, ch, cw, C); every product in float32 like TensorFlow's kernel
    height, width, channels = image.shape[1], image.shape[2], image.shape[3]
    h1, w1 = np.float32(height - 1), np.float32(width - 1)
    for b in numba.prange(boxes.shape[0]):
        y1, x1, y2, x2 = boxes[b, 0], boxes[b, 1], boxes[b, 2], boxes[b, 3]
        n = box_indices[b]
        hs = (y2 - y1) * h1 / np.float32(ch - 1) if ch > 1 else np.float32(0)
        ws = (x2 - x1) * w1 / np.float32(cw - 1) if cw > 1 else np.float32(0)
        for i in range(ch):
            y = y1 * h1 + np.float32(i) * hs if ch > 1 else np.float32(0.5) * (y1 + y2) * h1
            if y < 0 or y > h1:
                out[b, i, :, :] = extrapolation
                continue
            top, bottom = int(np.floor(y)), int(np.ceil(y))
            fy = y - np.float32(top)
            for j in range(cw):
                x = x1 * w1 + np.float32(j) * ws if cw > 1 else np.float32(0.5) * (x1 + x2) * w1
                if x < 0 or x > w1:
                    out[b, i, j, :] = extrapolation
                    continue
                left, right = int(np.floor(x)), int(np.ceil(x))
                fx = x - np.float32(left)
                for c in range(channels):
                    tl = image[n, top, left, c]
                    tr = image[n, top, right, c]
                    bl = image[n, bottom, left, c]
                    br = image[n, bottom, right, c]
                    upper = tl + (tr - tl) * fx
                    lower = bl + (br - bl) * fx
                    out[b, i, j, c] = upper + (lower - upper) * fy


def crop_and_resize(image: np.ndarray, boxes: np.ndarray, box_indices: np.ndarray, crop_size,
                    extrapolation_value: float = 0.0) -> np.ndarray:
    """ROIAlign as ``tf.image.crop_and_resize(method="bilinear")``: image (N, H, W, C), boxes (b, 4)
    normalised so 0 and 1 are the first and last pixel centres, box_indices (b,) -> (b, ch, cw, C)."""
    image = np.ascontiguousarray(image, np.float32)
    boxes = np.ascontiguousarray(boxes, np.float32).reshape(-1, 4)
    box_indices = np.ascontiguousarray(box_indices, np.int64).reshape(-1)
    ch, cw = (int(v) for v in crop_size)
    if len(boxes) != len(box_indices):
        raise ShapeError(f"crop_and_resize: {len(boxes)} boxes but {len(box_indices)} box indices")
    if len(box_indices) and (box_indices.min() < 0 or box_indices.max() >= image.shape[0]):
        raise ShapeError(f"crop_and_resize: box indices must be in [0, {image.shape[0]})")
    out = np.empty((len(boxes), ch, cw, image.shape[3]), np.float32)
    if len(boxes):
        _crop_and_resize(image, boxes, box_indices, ch, cw, np.float32(extrapolation_value), out)
    return out


def conv2d_transpose(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None = None, *, stride: int,
                     activation: str | None = None) -> np.ndarray:
    """Transposed convolution with kernel size = stride (Keras ``Conv2DTranspose(k, k, strides=k)``):
    x (N, H, W, cin), kernel (s, s, cout, cin), bias (cout,) -> (N, s*H, s*W, cout)."""
    n, h, w, cin = x.shape
    s = int(stride)
    if kernel.shape[:2] != (s, s) or kernel.shape[3] != cin:
        raise ShapeError(f"conv2d_transpose: kernel {kernel.shape} does not match stride {s} and {cin} inputs")
    cout = kernel.shape[2]
    k2 = np.ascontiguousarray(kernel.transpose(3, 0, 1, 2).reshape(cin, s * s * cout))   # (cin, s*s*cout)
    y = np.asarray(x, np.float32).reshape(-1, cin) @ k2                                    # (N*H*W, s*s*cout)
    y = y.reshape(n, h, w, s, s, cout).transpose(0, 1, 3, 2, 4, 5).reshape(n, h * s, w * s, cout)
    if bias is not None:
        y = y + bias
    if activation == "relu":
        y = np.maximum(y, 0)
    elif activation is not None:
        raise ShapeError(f"conv2d_transpose: unsupported activation {activation!r}")
    return np.ascontiguousarray(y, np.float32)
