"""Naive twins of the detection kernels in :mod:`nnlite.ops.detection`: one loop per definition, float32
arithmetic where TensorFlow uses float32, written to be read and to check the fast versions against.

Boxes are ``(y1, x1, y2, x2)``. Ties between equal scores go to the lower index, as in TensorFlow's
``tf.nn.top_k`` and ``tf.image.non_max_suppression``.
"""

from __future__ import annotations

import numpy as np


def top_k_indices(scores, k):
    """Indices of the ``k`` largest scores, largest first; equal scores in index order."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    return np.array(order[:k], np.int64)


def iou(a, b):
    """Intersection over union of two boxes in float32, as TensorFlow's NMS computes it: corners
    ordered first, and 0 when either box has no area."""
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    ay1, ay2 = min(a[0], a[2]), max(a[0], a[2])
    ax1, ax2 = min(a[1], a[3]), max(a[1], a[3])
    by1, by2 = min(b[0], b[2]), max(b[0], b[2])
    bx1, bx2 = min(b[1], b[3]), max(b[1], b[3])
    area_a = np.float32((ay2 - ay1) * (ax2 - ax1))
    area_b = np.float32((by2 - by1) * (bx2 - bx1))
    if area_a <= 0 or area_b <= 0:
        return np.float32(0.0)
    ih = max(np.float32(min(ay2, by2) - max(ay1, by1)), np.float32(0))
    iw = max(np.float32(min(ax2, bx2) - max(ax1, bx1)), np.float32(0))
    inter = np.float32(ih * iw)
    return np.float32(inter / np.float32(area_a + area_b - inter))


def non_max_suppression(boxes, scores, max_output, iou_threshold):
    """Greedy NMS: visit boxes by score (ties: lower index first), keep one unless its IoU with a kept
    box is above ``iou_threshold``; stop at ``max_output`` kept. Returns kept indices in keep order."""
    kept = []
    for i in top_k_indices(scores, len(scores)):
        if len(kept) >= max_output:
            break
        if all(iou(boxes[i], boxes[j]) <= np.float32(iou_threshold) for j in kept):
            kept.append(int(i))
    return np.array(kept, np.int64)


def apply_box_deltas(boxes, deltas):
    """Shift box centres by (dy * h, dx * w) and scale h, w by (exp(dh), exp(dw)), in float32."""
    out = np.empty((len(boxes), 4), np.float32)
    for n, ((y1, x1, y2, x2), (dy, dx, dh, dw)) in enumerate(zip(np.float32(boxes), np.float32(deltas))):
        h, w = y2 - y1, x2 - x1
        cy, cx = y1 + np.float32(0.5) * h, x1 + np.float32(0.5) * w
        cy, cx = cy + dy * h, cx + dx * w
        h, w = h * np.exp(dh), w * np.exp(dw)
        ny1, nx1 = cy - np.float32(0.5) * h, cx - np.float32(0.5) * w
        out[n] = (ny1, nx1, ny1 + h, nx1 + w)
    return out


def clip_boxes(boxes, window):
    """Each coordinate clamped into the window ``(wy1, wx1, wy2, wx2)``."""
    wy1, wx1, wy2, wx2 = np.float32(window)
    out = np.empty((len(boxes), 4), np.float32)
    for n, (y1, x1, y2, x2) in enumerate(np.float32(boxes)):
        out[n] = (max(min(y1, wy2), wy1), max(min(x1, wx2), wx1), max(min(y2, wy2), wy1), max(min(x2, wx2), wx1))
    return out


def crop_and_resize(image, boxes, box_indices, crop_size, extrapolation_value=0.0):
    """``tf.image.crop_and_resize`` (bilinear): box corners are normalised so that 0 and 1 are the
    centres of the first and last pixel (``y * (H - 1)``); a crop of size 1 samples the box centre;
    samples outside the image take ``extrapolation_value``."""
    image = np.asarray(image, np.float32)           # (N, H, W, C)
    _, height, width, channels = image.shape
    ch, cw = crop_size
    out = np.zeros((len(boxes), ch, cw, channels), np.float32)
    for b, ((y1, x1, y2, x2), n) in enumerate(zip(np.float32(boxes), box_indices)):
        hs = (y2 - y1) * np.float32(height - 1) / np.float32(ch - 1) if ch > 1 else np.float32(0)
        ws = (x2 - x1) * np.float32(width - 1) / np.float32(cw - 1) if cw > 1 else np.float32(0)
        for i in range(ch):
            y = y1 * np.float32(height - 1) + i * hs if ch > 1 else np.float32(0.5) * (y1 + y2) * np.float32(height - 1)
            for j in range(cw):
                x = (x1 * np.float32(width - 1) + j * ws if cw > 1
                     else np.float32(0.5) * (x1 + x2) * np.float32(width - 1))
                if y < 0 or y > height - 1 or x < 0 or x > width - 1:
                    out[b, i, j] = extrapolation_value
                    continue
                top, left = int(np.floor(y)), int(np.floor(x))
                bottom, right = int(np.ceil(y)), int(np.ceil(x))
                fy, fx = np.float32(y - top), np.float32(x - left)
                img = image[n]
                upper = img[top, left] + (img[top, right] - img[top, left]) * fx
                lower = img[bottom, left] + (img[bottom, right] - img[bottom, left]) * fx
                out[b, i, j] = upper + (lower - upper) * fy
    return out


def conv2d_transpose(x, kernel, bias=None, *, stride):
    """Transposed convolution whose kernel equals its stride (no overlap): each input pixel writes one
    ``stride x stride`` block, ``y[s*i + a, s*j + b] = x[i, j] @ kernel[a, b].T``. kernel (s, s, cout, cin)."""
    n, h, w, _ = x.shape
    s = stride
    cout = kernel.shape[2]
    y = np.zeros((n, h * s, w * s, cout), np.float32)
    for a in range(s):
        for b in range(s):
            for i in range(h):
                for j in range(w):
                    y[:, s * i + a, s * j + b] = x[:, i, j] @ kernel[a, b].T
    return y + bias if bias is not None else y
